//! The merge, end to end: each rule and each conflict type between nodes that changed the
//! same rows offline, and python-sync-db's acceptance scenarios (its reference, section 8).

use dbsync::merge::{ConflictKind, ConflictPolicy, Resolution};
use dbsync::{Client, Command, Error};
use dbsync_tests::entities::{city, house};
use dbsync_tests::fixtures::{add_city, add_house, cities, houses, rename_city};
use dbsync_tests::harness::{Adapter, TestServer, client, start};
use dbsync_tests::{Backend, log, on_every_server};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};

on_every_server!(
    an_empty_node_pulls_what_another_pushed,
    update_against_update_keeps_the_local_change_and_pushes_it,
    update_against_update_takes_the_server_row_under_server_wins,
    a_custom_policy_sees_both_rows_and_its_row_is_pushed,
    remote_delete_of_parent_with_local_child_inserts_restores_parent,
    insert_against_insert_moves_the_local_row_and_its_children,
    the_same_unique_value_on_both_sides_fails_the_pull_until_renamed,
    a_three_step_unique_swap_reaches_the_server_and_other_nodes,
    remote_delete_against_local_update_recreates_the_row,
    remote_update_against_local_delete_restores_the_row,
    remote_child_of_a_locally_deleted_parent_restores_the_parent,
    delete_against_delete_leaves_nothing_to_push,
    writes_made_during_a_pull_are_kept_and_pushed,
    a_node_with_nothing_to_merge_ends_where_a_merging_node_does,
);

/// SQLite's own check that every foreign key holds.
async fn foreign_keys_hold(db: &DatabaseConnection) {
    let broken = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "PRAGMA foreign_key_check",
        ))
        .await
        .unwrap();
    assert!(broken.is_empty(), "{} broken foreign keys", broken.len());
}

/// Two registered nodes that both have the server's first city, Lyon.
async fn two_nodes_sharing_lyon(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) -> Option<(TestServer, Client, Client, city::Model)> {
    let server = start(backend, adapter, name).await?;
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    Some((server, a, b, lyon))
}

async fn all_equal(server: &TestServer, nodes: &[&Client]) {
    for node in nodes {
        node.sync().await.unwrap();
    }
    for node in nodes {
        node.sync().await.unwrap();
        assert_eq!(cities(node.db()).await, cities(server.db()).await);
        assert_eq!(houses(node.db()).await, houses(server.db()).await);
        assert_eq!(log(node.db()).await, []);
        foreign_keys_hold(node.db()).await;
    }
}

async fn an_empty_node_pulls_what_another_pushed(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    add_house(a.db(), "1 quai", lyon.id).await;
    assert_eq!(a.push().await.unwrap().new_version, Some(1));
    let nothing = b.push().await.unwrap();
    assert_eq!((nothing.operations, nothing.new_version), (0, None));
    let pulled = b.pull().await.unwrap();
    assert_eq!(pulled.version, 1);
    assert!(pulled.conflicts.is_empty());
    assert_eq!(houses(b.db()).await, houses(a.db()).await);
}

async fn update_against_update_keeps_the_local_change_and_pushes_it(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    rename_city(a.db(), lyon.id, "Lyon A").await;
    a.sync().await.unwrap();
    rename_city(b.db(), lyon.id, "Lyon B").await;
    assert!(matches!(b.push().await, Err(Error::PullSuggested { .. })));
    let pulled = b.pull().await.unwrap();
    assert_eq!(pulled.conflicts.len(), 1);
    let conflict = &pulled.conflicts[0];
    assert_eq!(
        conflict.kind,
        ConflictKind::Direct {
            server: Command::Update,
            local: Command::Update
        }
    );
    assert_eq!(conflict.resolution, Resolution::KeptLocal);
    assert_eq!(cities(b.db()).await, [(lyon.id, "Lyon B".to_owned())]);
    b.push().await.unwrap();
    a.pull().await.unwrap();
    assert_eq!(cities(a.db()).await, [(lyon.id, "Lyon B".to_owned())]);
    all_equal(&server, &[&a, &b]).await;
}

async fn update_against_update_takes_the_server_row_under_server_wins(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    let b = Client::builder(b.db().clone(), server.url.clone())
        .conflict_policy_for::<city::Entity>(ConflictPolicy::ServerWins)
        .build()
        .unwrap();
    rename_city(a.db(), lyon.id, "Lyon A").await;
    a.sync().await.unwrap();
    rename_city(b.db(), lyon.id, "Lyon B").await;
    let report = b.sync().await.unwrap();
    assert_eq!(
        report.pulls[0].conflicts[0].resolution,
        Resolution::TookServer
    );
    assert_eq!(cities(b.db()).await, [(lyon.id, "Lyon A".to_owned())]);
    assert_eq!(log(b.db()).await, [], "the local change was dropped");
    all_equal(&server, &[&a, &b]).await;
}

async fn a_custom_policy_sees_both_rows_and_its_row_is_pushed(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    let b = Client::builder(b.db().clone(), server.url.clone())
        .conflict_policy(ConflictPolicy::custom(|rows| {
            let mut merged = rows.server?.clone();
            let local = rows.local?["name"].as_str()?.to_owned();
            let server = rows.server?["name"].as_str()?.to_owned();
            merged.insert("name".into(), format!("{server} + {local}").into());
            Some(merged)
        }))
        .build()
        .unwrap();
    rename_city(a.db(), lyon.id, "A").await;
    a.sync().await.unwrap();
    rename_city(b.db(), lyon.id, "B").await;
    let report = b.sync().await.unwrap();
    assert_eq!(report.pulls[0].conflicts[0].resolution, Resolution::Merged);
    assert_eq!(cities(server.db()).await, [(lyon.id, "A + B".to_owned())]);
    all_equal(&server, &[&a, &b]).await;
}

async fn remote_delete_of_parent_with_local_child_inserts_restores_parent(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    city::Entity::delete_by_id(lyon.id)
        .exec(a.db())
        .await
        .unwrap();
    a.sync().await.unwrap();
    // Two consecutive local operations: python-sync-db failed here (its `order` shift bug).
    let first = add_house(b.db(), "1 rue", lyon.id).await;
    let second = add_house(b.db(), "2 rue", lyon.id).await;
    let report = b.sync().await.unwrap();
    let conflicts = &report.pulls[0].conflicts;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, ConflictKind::Dependency);
    assert_eq!(conflicts[0].resolution, Resolution::KeptParent);
    assert_eq!(
        cities(server.db()).await,
        [(lyon.id, "Lyon".to_owned())],
        "the parent was re-created"
    );
    assert_eq!(houses(server.db()).await.len(), 2);
    all_equal(&server, &[&a, &b]).await;
    assert_eq!(
        houses(a.db()).await.iter().map(|h| h.0).collect::<Vec<_>>(),
        [first.id, second.id]
    );
}

async fn insert_against_insert_moves_the_local_row_and_its_children(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, _)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    let a_city = add_city(a.db(), "Arles").await;
    let b_city = add_city(b.db(), "Brest").await;
    assert_eq!(a_city.id, b_city.id);
    let b_house = add_house(b.db(), "3 quai", b_city.id).await;
    a.sync().await.unwrap();
    // Pulling before pushing: the merge moves the local row (a push would have the server
    // move it; `tests/sync.rs` covers that).
    let pulled = b.pull().await.unwrap();
    b.sync().await.unwrap();
    let moved = pulled
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::Insert)
        .unwrap();
    let Resolution::Moved { new_id } = moved.resolution else {
        panic!("{moved:?}")
    };
    let house = house::Entity::find_by_id(b_house.id)
        .one(b.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(house.city_id.map(i64::from), Some(new_id));
    all_equal(&server, &[&a, &b]).await;
    assert_eq!(cities(server.db()).await.len(), 3);
}

async fn the_same_unique_value_on_both_sides_fails_the_pull_until_renamed(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, _)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    add_city(a.db(), "Dup").await;
    a.sync().await.unwrap();
    let mine = add_city(b.db(), "Dup").await;
    let _ = add_city(b.db(), "Padding").await;
    let before = cities(b.db()).await;
    match b.sync().await {
        Err(Error::UniqueConstraint { conflicts }) => {
            assert_eq!(conflicts.len(), 1);
            assert_eq!(conflicts[0].table, "city");
            assert_eq!(conflicts[0].columns, ["name"]);
            // The local row in the way, by the key the application still sees.
            assert_eq!(conflicts[0].row_id, i64::from(mine.id));
        }
        other => panic!("expected UniqueConstraint, got {other:?}"),
    }
    assert_eq!(
        cities(b.db()).await,
        before,
        "a failed pull changes nothing"
    );
    rename_city(b.db(), mine.id, "Dup (b)").await;
    b.sync().await.unwrap();
    all_equal(&server, &[&a, &b]).await;
    assert_eq!(cities(server.db()).await.len(), 4);
}

async fn a_three_step_unique_swap_reaches_the_server_and_other_nodes(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    let nice = add_city(a.db(), "Nice").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    rename_city(a.db(), lyon.id, "tmp").await;
    rename_city(a.db(), nice.id, "Lyon").await;
    rename_city(a.db(), lyon.id, "Nice").await;
    a.sync().await.unwrap();
    let swapped = vec![(lyon.id, "Nice".to_owned()), (nice.id, "Lyon".to_owned())];
    assert_eq!(cities(server.db()).await, swapped);
    b.sync().await.unwrap();
    assert_eq!(cities(b.db()).await, swapped);
    all_equal(&server, &[&a, &b]).await;
}

/// A node without local changes takes a pull's page as it comes, without merging it row by
/// row; one with a change of its own merges the same page. Both must end at the server's rows
/// and report the same work, through a unique swap, a delete, and a key deleted then
/// written again.
async fn a_node_with_nothing_to_merge_ends_where_a_merging_node_does(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let c = client(&server, &format!("{name}_c")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    let nice = add_city(a.db(), "Nice").await;
    let metz = add_city(a.db(), "Metz").await;
    let pau = add_city(a.db(), "Pau").await;
    let home = add_house(a.db(), "1 rue de Lyon", lyon.id).await;
    for node in [&a, &b, &c] {
        node.sync().await.unwrap();
    }

    rename_city(a.db(), lyon.id, "tmp").await;
    rename_city(a.db(), nice.id, "Lyon").await;
    rename_city(a.db(), lyon.id, "Nice").await;
    city::Entity::delete_by_id(metz.id)
        .exec(a.db())
        .await
        .unwrap();
    // Deleted, then written again under its key with a house of its own.
    city::Entity::delete_by_id(pau.id)
        .exec(a.db())
        .await
        .unwrap();
    city::ActiveModel {
        id: Set(pau.id),
        name: Set("Pau".into()),
    }
    .insert(a.db())
    .await
    .unwrap();
    let arles = add_city(a.db(), "Arles").await;
    add_house(a.db(), "2 rue de Pau", pau.id).await;
    add_house(a.db(), "3 rue d'Arles", arles.id).await;
    a.sync().await.unwrap();

    // C's own change touches none of A's rows: its pull merges, and keeps it.
    let mut moved: house::ActiveModel = home.clone().into();
    moved.address = Set("1 rue de Nice".into());
    moved.update(c.db()).await.unwrap();

    let direct = b.pull().await.unwrap();
    let merged = c.pull().await.unwrap();
    assert_eq!(log(b.db()).await, [], "nothing to push after a pull");
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(houses(b.db()).await, houses(server.db()).await);
    assert_eq!(cities(c.db()).await, cities(server.db()).await);
    assert!(
        houses(c.db())
            .await
            .contains(&(home.id, "1 rue de Nice".into(), Some(lyon.id)))
    );
    // The swap (2 rows), Pau and Arles with a house each (4 rows), Metz (1 delete).
    assert_eq!(direct.applied, 7);
    assert_eq!(
        (direct.operations, direct.applied, direct.version),
        (merged.operations, merged.applied, merged.version)
    );
    assert!(direct.conflicts.is_empty() && merged.conflicts.is_empty());
    foreign_keys_hold(b.db()).await;
    all_equal(&server, &[&a, &b, &c]).await;
}

async fn remote_delete_against_local_update_recreates_the_row(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    city::Entity::delete_by_id(lyon.id)
        .exec(a.db())
        .await
        .unwrap();
    a.sync().await.unwrap();
    rename_city(b.db(), lyon.id, "Lyon kept").await;
    let report = b.sync().await.unwrap();
    assert_eq!(
        report.pulls[0].conflicts[0].kind,
        ConflictKind::Direct {
            server: Command::Delete,
            local: Command::Update
        }
    );
    assert_eq!(
        cities(server.db()).await,
        [(lyon.id, "Lyon kept".to_owned())]
    );
    all_equal(&server, &[&a, &b]).await;
}

async fn remote_update_against_local_delete_restores_the_row(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    rename_city(a.db(), lyon.id, "Lyon renamed").await;
    a.sync().await.unwrap();
    city::Entity::delete_by_id(lyon.id)
        .exec(b.db())
        .await
        .unwrap();
    let report = b.sync().await.unwrap();
    assert_eq!(
        report.pulls[0].conflicts[0].resolution,
        Resolution::Restored
    );
    assert_eq!(cities(b.db()).await, [(lyon.id, "Lyon renamed".to_owned())]);
    assert_eq!(log(b.db()).await, [], "the local delete was dropped");
    all_equal(&server, &[&a, &b]).await;
}

async fn remote_child_of_a_locally_deleted_parent_restores_the_parent(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    add_house(a.db(), "9 place", lyon.id).await;
    a.sync().await.unwrap();
    city::Entity::delete_by_id(lyon.id)
        .exec(b.db())
        .await
        .unwrap();
    let report = b.sync().await.unwrap();
    assert!(
        report.pulls[0]
            .conflicts
            .iter()
            .any(|c| c.kind == ConflictKind::ReversedDependency
                && c.resolution == Resolution::Restored),
        "{:?}",
        report.pulls[0].conflicts
    );
    assert_eq!(cities(b.db()).await, [(lyon.id, "Lyon".to_owned())]);
    all_equal(&server, &[&a, &b]).await;
    assert_eq!(houses(b.db()).await.len(), 1);
}

async fn delete_against_delete_leaves_nothing_to_push(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, lyon)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    city::Entity::delete_by_id(lyon.id)
        .exec(a.db())
        .await
        .unwrap();
    a.sync().await.unwrap();
    city::Entity::delete_by_id(lyon.id)
        .exec(b.db())
        .await
        .unwrap();
    let report = b.sync().await.unwrap();
    assert_eq!(
        report.pulls[0].conflicts[0].resolution,
        Resolution::BothDeleted
    );
    assert!(report.push.is_none(), "nothing left to push");
    all_equal(&server, &[&a, &b]).await;
    assert!(cities(server.db()).await.is_empty());
}

async fn writes_made_during_a_pull_are_kept_and_pushed(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, a, b, _)) = two_nodes_sharing_lyon(backend, adapter, name).await else {
        return;
    };
    for i in 0..10 {
        add_city(a.db(), &format!("remote {i}")).await;
    }
    a.sync().await.unwrap();
    let db = b.db().clone();
    let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = written.clone();
    let busy = Client::builder(b.db().clone(), server.url.clone())
        .page_size(3)
        .progress(move |p| {
            if p.phase == dbsync::Phase::Downloading {
                // The application writes while the pull is downloading.
                let db = db.clone();
                let name = format!("local during pull {}", p.items);
                let city = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async move {
                        city::ActiveModel {
                            name: Set(name),
                            ..Default::default()
                        }
                        .insert(&db)
                        .await
                        .unwrap()
                    })
                });
                seen.lock().unwrap().push(city.id);
            }
        })
        .build()
        .unwrap();
    busy.pull().await.unwrap();
    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), 4, "one write per page");
    assert_eq!(dbsync::unsynced_objects(b.db()).await.unwrap().len(), 4);
    b.sync().await.unwrap();
    all_equal(&server, &[&a, &b]).await;
    assert_eq!(cities(server.db()).await.len(), 15);
}
