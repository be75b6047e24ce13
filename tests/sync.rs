//! End to end: a real server on 127.0.0.1 (SQLite, PostgreSQL or MariaDB behind axum or
//! actix-web) and nodes with their own SQLite files, through the public API only.

use dbsync::{Client, Error, UnsyncedPolicy};
use dbsync_server::SyncServer;
use dbsync_tests::entities::{city, person};
use dbsync_tests::fixtures::{add_city, add_person, cities, people};
use dbsync_tests::harness::{
    Adapter, TestServer, client, serve, server_db, start, unregistered_client,
};
use dbsync_tests::{Backend, log, on_every_server};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

on_every_server!(
    tracking_survives_bulk_syncs,
    every_compression_setting_syncs_and_compression_shrinks_the_wire,
    register_gives_each_node_its_own_credentials,
    a_push_reaches_another_node_through_its_pull,
    updates_and_deletes_propagate,
    inserts_with_the_same_key_on_two_nodes_move_the_local_row,
    a_retried_push_whose_answer_was_lost_applies_once,
    a_lost_push_followed_by_a_local_delete_deletes_on_the_server,
    a_logged_insert_whose_row_is_gone_is_pushed_as_a_delete,
    the_server_records_a_push_in_its_order_whatever_its_runs_of_keys,
    pulling_while_a_push_is_in_flight_does_not_duplicate_it,
    server_writes_are_versioned_and_pulled,
    explicit_keys_keep_the_server_key_generator_ahead,
    a_long_pull_arrives_in_pages_with_progress,
    pull_pages_cut_across_pushes_and_server_writes_alike,
    pulls_and_repairs_staged_on_disk_or_in_memory_end_the_same,
    repair_refuses_to_lose_unsynced_changes_then_rebuilds,
    a_parent_written_after_its_table_was_paged_arrives_with_its_child,
    repair_moves_unique_values_between_pages,
    repair_pages_asked_ahead_are_dropped_when_the_table_changed,
    query_returns_typed_models,
    concurrent_pushes_from_many_clients_lose_nothing,
);

/// A log entry whose row was removed behind dbsync's back travels as a delete, beside the
/// rows that are there.
async fn a_logged_insert_whose_row_is_gone_is_pushed_as_a_delete(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let kept = add_city(a.db(), "Kept").await;
    let lost = add_city(a.db(), "Lost").await;
    add_person(a.db(), "Ann", kept.id).await;
    let quiet = dbsync::begin_untracked(a.db()).await.unwrap();
    city::Entity::delete_by_id(lost.id)
        .exec(&*quiet)
        .await
        .unwrap();
    quiet.commit().await.unwrap();

    let report = a.push().await.unwrap();
    assert_eq!(report.operations, 3);
    assert_eq!(cities(server.db()).await, [(kept.id, "Kept".to_owned())]);
    assert_eq!(people(server.db()).await, people(a.db()).await);
    let b = client(&server, &format!("{name}_b")).await;
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(a.db()).await);
}

/// Long runs of consecutive keys and scattered ones, in one push: the server records each
/// operation once, in the push's order, and another node pulls the same rows.
async fn the_server_records_a_push_in_its_order_whatever_its_runs_of_keys(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(add_city(a.db(), &format!("city {i}")).await.id);
    }
    for i in 0..70 {
        add_person(a.db(), &format!("person {i}"), ids[i % 3]).await;
    }
    // Inserted and deleted before the push, the seventh city is not pushed: its neighbours
    // make a short run of keys and a long one.
    city::Entity::delete_by_id(ids[6])
        .exec(a.db())
        .await
        .unwrap();
    let mut expected: Vec<(String, i64, String)> = ids
        .iter()
        .filter(|id| **id != ids[6])
        .map(|id| ("city".into(), i64::from(*id), "i".into()))
        .collect();
    for person in people(a.db()).await {
        expected.push(("person".into(), i64::from(person.0), "i".into()));
    }

    a.push().await.unwrap();
    let registry = dbsync::Registry::global();
    // A push is recorded as runs of consecutive keys: `[content type, command, first, count]`.
    let recorded: Vec<(i64, String)> = server
        .db()
        .query_all_raw(sea_orm::Statement::from_string(
            server.db().get_database_backend(),
            "SELECT operations, runs FROM dbsync_version_runs ORDER BY version_id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.try_get_by_index(0).unwrap(),
                row.try_get_by_index(1).unwrap(),
            )
        })
        .collect();
    assert_eq!(recorded.len(), 1, "one version");
    let runs: Vec<(u32, String, i64, i64)> = serde_json::from_str(&recorded[0].1).unwrap();
    let logged: Vec<(String, i64, String)> = runs
        .iter()
        .flat_map(|(ct, command, first, count)| {
            let table = registry.by_content_type(*ct).unwrap().name.clone();
            (*first..first + count).map(move |id| (table.clone(), id, command.clone()))
        })
        .collect();
    assert_eq!(recorded[0].0, logged.len() as i64);
    assert_eq!(logged, expected);
    let b = client(&server, &format!("{name}_b")).await;
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(a.db()).await);
    assert_eq!(people(b.db()).await, people(a.db()).await);
}

async fn register_gives_each_node_its_own_credentials(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = unregistered_client(&server, &format!("{name}_a")).await;
    let b = unregistered_client(&server, &format!("{name}_b")).await;
    assert!(!a.is_registered().await.unwrap());
    assert!(matches!(a.push().await, Err(Error::NotRegistered)));
    let id_a = a.register().await.unwrap();
    let id_b = b.register().await.unwrap();
    assert_ne!(id_a, id_b);
    assert!(a.is_registered().await.unwrap());
    assert!(b.is_registered().await.unwrap());
}

async fn a_push_reaches_another_node_through_its_pull(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let paris = add_city(a.db(), "Paris").await;
    add_person(a.db(), "Ann", paris.id).await;

    let report = a.push().await.unwrap();
    assert_eq!(report.operations, 2);
    assert_eq!(report.new_version, Some(1));
    assert_eq!(log(a.db()).await, [], "pushed operations leave the log");
    assert_eq!(a.version().await.unwrap(), 1);

    let pulled = b.pull().await.unwrap();
    assert_eq!(pulled.version, 1);
    assert_eq!(cities(b.db()).await, cities(a.db()).await);
    assert_eq!(people(b.db()).await, people(a.db()).await);
    assert_eq!(cities(server.db()).await, cities(a.db()).await);
    assert_eq!(log(b.db()).await, [], "pulled rows are not local changes");
    assert_eq!(server.versions().await, [1]);
}

async fn updates_and_deletes_propagate(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    let metz = add_city(a.db(), "Metz").await;
    let ann = add_person(a.db(), "Ann", lyon.id).await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();

    let mut renamed: person::ActiveModel = ann.into();
    renamed.name = Set("Anna".into());
    renamed.city_id = Set(metz.id);
    renamed.update(a.db()).await.unwrap();
    city::Entity::delete_by_id(lyon.id)
        .exec(a.db())
        .await
        .unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();

    assert_eq!(cities(b.db()).await, [(metz.id, "Metz".to_owned())]);
    assert_eq!(people(b.db()).await, people(server.db()).await);
    assert_eq!(people(b.db()).await[0].1, "Anna");
    assert_eq!(log(b.db()).await, []);
}

async fn inserts_with_the_same_key_on_two_nodes_move_the_local_row(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let a_city = add_city(a.db(), "Arles").await;
    let b_city = add_city(b.db(), "Brest").await;
    assert_eq!(
        a_city.id, b_city.id,
        "both nodes hand out the same first key"
    );
    let b_person = add_person(b.db(), "Bea", b_city.id).await;
    a.sync().await.unwrap();

    // B has not pulled A's version, which touched nothing of B's: the server applies B's
    // push, storing Brest under a fresh key, and B moves it too.
    let report = b.sync().await.unwrap();
    let push = report.push.unwrap();
    assert!(push.rebased);
    let moved = &push.moved;
    assert_eq!(moved.len(), 1);
    let (table, old, new) = &moved[0];
    assert_eq!((table.as_str(), *old), ("city", i64::from(b_city.id)));
    assert!(*new > *old);
    // The local person followed its city, and B then pulled A's Arles.
    let bea = person::Entity::find_by_id(b_person.id)
        .one(b.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(i64::from(bea.city_id), *new);
    assert_eq!(report.pulls.len(), 1);
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(people(b.db()).await, people(server.db()).await);
    a.sync().await.unwrap();

    let expected = vec![
        (a_city.id, "Arles".to_owned()),
        (*new as i32, "Brest".to_owned()),
    ];
    assert_eq!(cities(server.db()).await, expected);
    assert_eq!(cities(a.db()).await, expected);
    assert_eq!(cities(b.db()).await, expected);
    assert_eq!(people(a.db()).await, people(b.db()).await);
}

async fn a_retried_push_whose_answer_was_lost_applies_once(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    // The server commits, then takes longer to answer than the client waits.
    let slow = dbsync_server::SyncServer::builder(db).after_push(Arc::new(|_, _, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(())
        })
    }));
    let server = serve(slow, adapter).await;
    let a = client(&server, &format!("{name}_a")).await;
    let impatient = Client::builder(a.db().clone(), server.url.clone())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    add_city(a.db(), "Once").await;
    assert!(matches!(impatient.push().await, Err(Error::Timeout)));
    // Meanwhile the application writes again: that write is not part of the lost push.
    add_city(a.db(), "Later").await;
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let retry = a.push().await.unwrap();
    assert!(retry.replayed, "the server recognised the retry");
    assert_eq!(retry.new_version, Some(1));
    assert_eq!(
        cities(server.db()).await.len(),
        1,
        "applied once, without the later write"
    );
    assert_eq!(
        log(a.db()).await.len(),
        1,
        "the later write is still unsynced"
    );
    let next = a.push().await.unwrap();
    assert_eq!(next.new_version, Some(2));
    assert!(!next.replayed);
    assert_eq!(cities(server.db()).await, cities(a.db()).await);
    assert_eq!(server.versions().await, [1, 2]);
}

async fn server_writes_are_versioned_and_pulled(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let hq = add_city(server.db(), "Headquarters").await;
    add_person(server.db(), "Boss", hq.id).await;
    let pulled = a.pull().await.unwrap();
    assert_eq!(pulled.version, 1);
    assert_eq!(cities(a.db()).await, [(hq.id, "Headquarters".to_owned())]);
    assert_eq!(people(a.db()).await.len(), 1);
    // A node that had not pulled them pushes beside them: its city, which took the key of
    // the server's, moves.
    let b = client(&server, &format!("{name}_b")).await;
    let branch = add_city(b.db(), "Branch").await;
    let pushed = b.push().await.unwrap();
    assert!(pushed.rebased);
    assert_eq!(pushed.moved.len(), 1);
    assert_eq!(pushed.moved[0].1, i64::from(branch.id));
    b.sync().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    a.sync().await.unwrap();
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
}

async fn explicit_keys_keep_the_server_key_generator_ahead(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    city::ActiveModel {
        id: Set(500),
        name: Set("Explicit".into()),
    }
    .insert(a.db())
    .await
    .unwrap();
    a.sync().await.unwrap();
    // The server application's next generated key must not collide with 500.
    let generated = add_city(server.db(), "Generated").await;
    assert!(generated.id > 500, "generated {}", generated.id);
}

/// A registered node pulling in pages of `page_size`, and the count of pages it downloads.
async fn counting_pages(
    server: &TestServer,
    name: &str,
    page_size: u32,
) -> (Client, Arc<AtomicU64>) {
    let pages = Arc::new(AtomicU64::new(0));
    let counter = pages.clone();
    let db = dbsync_tests::tracked_db(Backend::Sqlite, name)
        .await
        .unwrap();
    let node = Client::builder(db, server.url.clone())
        .page_size(page_size)
        .progress(move |p| {
            if p.phase == dbsync::Phase::Downloading {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    node.register().await.unwrap();
    (node, pages)
}

async fn a_long_pull_arrives_in_pages_with_progress(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..25 {
        add_city(a.db(), &format!("city {i}")).await;
    }
    a.sync().await.unwrap();
    let (b, pages) = counting_pages(&server, &format!("{name}_b"), 4).await;
    let report = b.pull().await.unwrap();
    assert_eq!(report.operations, 25);
    assert_eq!(
        pages.load(Ordering::SeqCst),
        7,
        "25 operations in pages of 4"
    );
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
}

/// Pages are full whatever the versions: pushes are read from their runs of keys and the
/// server application's own writes from the log, and a page may end inside either kind and
/// hold both. Every operation arrives once, in order.
async fn pull_pages_cut_across_pushes_and_server_writes_alike(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let mut doomed = None;
    for push in 0..4 {
        for i in 0..4 {
            let city = add_city(a.db(), &format!("city {push}.{i}")).await;
            doomed.get_or_insert(city.id);
        }
        a.push().await.unwrap();
    }
    // A version of the server's own: three inserts and a delete of a pushed city.
    for i in 0..3 {
        add_city(server.db(), &format!("server {i}")).await;
    }
    city::Entity::delete_by_id(doomed.unwrap())
        .exec(server.db())
        .await
        .unwrap();
    for i in 0..10 {
        add_city(a.db(), &format!("late {i}")).await;
    }
    a.sync().await.unwrap();

    let (b, pages) = counting_pages(&server, &format!("{name}_b"), 6).await;
    let report = b.pull().await.unwrap();
    assert_eq!(report.operations, 16 + 4 + 10);
    assert_eq!(
        pages.load(Ordering::SeqCst),
        5,
        "4 + 4 + 4 + 4 pushed, the server's 4, 10 pushed: 30 in pages of 6, cut inside the \
         second push, the server's version and the last push"
    );
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
    // A node's own pushes are not pulled back, read from runs or from the log.
    let again = a.pull().await.unwrap();
    assert_eq!(again.operations, 0);
}

async fn pulls_and_repairs_staged_on_disk_or_in_memory_end_the_same(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..30 {
        let city = add_city(a.db(), &format!("city {i}")).await;
        add_person(a.db(), &format!("person {i}"), city.id).await;
    }
    a.sync().await.unwrap();
    // All on disk, spilling after a few pages, and all in memory.
    for (earlier, (suffix, budget)) in [("disk", 0), ("spill", 1_500), ("memory", 1 << 20)]
        .into_iter()
        .enumerate()
    {
        let db = dbsync_tests::tracked_db(Backend::Sqlite, &format!("{name}_{suffix}"))
            .await
            .unwrap();
        let node = Client::builder(db, server.url.clone())
            .page_size(7)
            .staging_memory(budget)
            .build()
            .unwrap();
        node.register().await.unwrap();
        // A local city under a key the server uses, with a person: the merge moves both.
        let mine = add_city(node.db(), &format!("mine {suffix}")).await;
        add_person(node.db(), "my person", mine.id).await;
        let report = node.pull().await.unwrap();
        // A's 60 rows, and the city and person each earlier node pushed.
        assert_eq!(report.operations, 60 + 2 * earlier as u64, "{suffix}");
        assert_eq!(report.moved.len(), 2, "{suffix}: {:?}", report.moved);
        node.sync().await.unwrap();
        assert_eq!(
            cities(node.db()).await,
            cities(server.db()).await,
            "{suffix}"
        );
        assert_eq!(
            people(node.db()).await,
            people(server.db()).await,
            "{suffix}"
        );
        assert_eq!(log(node.db()).await, [], "{suffix}");
        let staged: Option<i64> = node
            .db()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) FROM dbsync_staged",
            ))
            .await
            .unwrap()
            .and_then(|row| row.try_get_by_index(0).ok());
        assert_eq!(staged, Some(0), "{suffix}: the session's entries are gone");
        // A repair rebuilds the same state, through the same staging.
        let report = node.repair(UnsyncedPolicy::Refuse).await.unwrap();
        assert!(report.rows > 0, "{suffix}");
        assert_eq!(
            cities(node.db()).await,
            cities(server.db()).await,
            "{suffix}"
        );
        assert_eq!(
            people(node.db()).await,
            people(server.db()).await,
            "{suffix}"
        );
    }
}

async fn repair_refuses_to_lose_unsynced_changes_then_rebuilds(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    add_person(a.db(), "Ann", lyon.id).await;
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    b.sync().await.unwrap();
    add_city(b.db(), "Unpushed").await;
    // Local damage that sync cannot see.
    b.db()
        .execute_unprepared("DELETE FROM dbsync_operations")
        .await
        .unwrap();
    let damaged = dbsync::begin_untracked(b.db()).await.unwrap();
    damaged
        .execute_unprepared("DELETE FROM person")
        .await
        .unwrap();
    damaged.commit().await.unwrap();
    add_city(b.db(), "Also unpushed").await;

    match b.repair(UnsyncedPolicy::Refuse).await {
        Err(Error::UnsyncedChanges { count }) => assert_eq!(count, 1),
        other => panic!("expected UnsyncedChanges, got {other:?}"),
    }
    assert_eq!(
        cities(b.db()).await.len(),
        3,
        "a refused repair changes nothing"
    );
    let report = b.repair(UnsyncedPolicy::Discard).await.unwrap();
    assert_eq!(report.discarded, 1);
    assert_eq!(report.version, 1);
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(people(b.db()).await, people(server.db()).await);
    assert_eq!(log(b.db()).await, []);
    add_city(b.db(), "After repair").await;
    b.sync().await.unwrap();
    assert_eq!(cities(server.db()).await.len(), 2);
}

async fn query_returns_typed_models(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    add_city(server.db(), "Paris").await;
    add_city(server.db(), "Rome").await;
    let found = a
        .query::<city::Entity>([(city::Column::Name, "Rome".into())])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "Rome");
    let none = a
        .query::<city::Entity>([(city::Column::Name, "Oslo".into())])
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(a.query::<city::Entity>([]).await.unwrap().len(), 2);
}

async fn concurrent_pushes_from_many_clients_lose_nothing(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    const CLIENTS: usize = 6;
    const EACH: usize = 5;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let c = client(&server, &format!("{name}_{i}")).await;
        for j in 0..EACH {
            add_city(c.db(), &format!("c{i}-{j}")).await;
        }
        clients.push(c);
    }
    let results = futures::future::join_all(clients.iter().map(|c| async move {
        // Sync retries a bounded number of times; under contention a node may need more rounds.
        for _ in 0..10 {
            match c.sync().await {
                Ok(_) => return Ok(()),
                Err(Error::PullSuggested { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(Error::Timeout)
    }))
    .await;
    for result in results {
        result.unwrap();
    }
    for c in &clients {
        c.sync().await.unwrap();
    }
    let on_server = cities(server.db()).await;
    assert_eq!(on_server.len(), CLIENTS * EACH, "every insert arrived once");
    for c in &clients {
        assert_eq!(cities(c.db()).await, on_server);
        assert_eq!(log(c.db()).await, []);
    }
    let v = server.versions().await;
    assert_eq!(
        v,
        (1..=v.len() as i64).collect::<Vec<_>>(),
        "versions are consecutive"
    );
    assert_eq!(v.len(), CLIENTS, "one version per accepted push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_over_one_postgres_lose_nothing() {
    let name = "two_servers_pg";
    let Some(db) = server_db(Backend::Postgres, name).await else {
        return;
    };
    let first = serve(SyncServer::builder(db), Adapter::Axum).await;
    // A second server with its own connection pool: it shares nothing with the first but
    // the database, like another process.
    let url = std::env::var("DBSYNC_TEST_POSTGRES").unwrap();
    let other_db =
        sea_orm::Database::connect(format!("{}/dbsync_{name}_srv", url.trim_end_matches('/')))
            .await
            .unwrap();
    let second = serve(SyncServer::builder(other_db), Adapter::Axum).await;
    let mut clients = Vec::new();
    for i in 0..8 {
        let server = if i % 2 == 0 { &first } else { &second };
        let c = client(server, &format!("{name}_{i}")).await;
        for j in 0..4 {
            add_city(c.db(), &format!("n{i}-{j}")).await;
        }
        clients.push(c);
    }
    let results = futures::future::join_all(clients.iter().map(|c| async move {
        for _ in 0..20 {
            match c.sync().await {
                Ok(_) => return Ok(()),
                Err(Error::PullSuggested { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(Error::Timeout)
    }))
    .await;
    for result in results {
        result.unwrap();
    }
    for c in &clients {
        c.sync().await.unwrap();
    }
    let on_server = cities(first.db()).await;
    assert_eq!(on_server.len(), 32);
    for c in &clients {
        assert_eq!(cities(c.db()).await, on_server);
    }
    let v = first.versions().await;
    assert_eq!(v, (1..=8).collect::<Vec<i64>>());
}

/// A server that commits pushes, then answers after the client gave up waiting.
async fn slow_server(backend: Backend, adapter: Adapter, name: &str) -> Option<TestServer> {
    let db = server_db(backend, name).await?;
    let slow = SyncServer::builder(db).after_push(Arc::new(|_, _, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok(())
        })
    }));
    Some(serve(slow, adapter).await)
}

async fn lose_the_answer_to_a_push(server: &TestServer, node: &Client) {
    let impatient = Client::builder(node.db().clone(), server.url.clone())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(matches!(impatient.push().await, Err(Error::Timeout)));
    tokio::time::sleep(Duration::from_millis(900)).await;
}

async fn a_lost_push_followed_by_a_local_delete_deletes_on_the_server(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = slow_server(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let row = add_city(a.db(), "Short-lived").await;
    lose_the_answer_to_a_push(&server, &a).await;
    city::Entity::delete_by_id(row.id)
        .exec(a.db())
        .await
        .unwrap();
    a.sync().await.unwrap();
    a.sync().await.unwrap();
    assert!(
        cities(server.db()).await.is_empty(),
        "the delete reached the server"
    );
    assert!(cities(a.db()).await.is_empty());
    assert_eq!(log(a.db()).await, []);
}

async fn pulling_while_a_push_is_in_flight_does_not_duplicate_it(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = slow_server(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let ann = add_city(a.db(), "Ann's town").await;
    lose_the_answer_to_a_push(&server, &a).await;
    let report = a.pull().await.unwrap();
    assert!(
        report.moved.is_empty(),
        "its own insert is not someone else's: {:?}",
        report.moved
    );
    a.sync().await.unwrap();
    assert_eq!(
        cities(server.db()).await,
        [(ann.id, "Ann's town".to_owned())]
    );
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
}

async fn every_compression_setting_syncs_and_compression_shrinks_the_wire(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    use dbsync::messages::Compression;
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let settings = [Compression::None, Compression::Gzip, Compression::Zstd];
    let node = |name: String, compression: Compression| {
        let url = server.url.clone();
        async move {
            let db = dbsync_tests::tracked_db(Backend::Sqlite, &name)
                .await
                .unwrap();
            let node = Client::builder(db, url)
                .compression(compression)
                .build()
                .unwrap();
            node.register().await.unwrap();
            node
        }
    };
    let mut pushed = Vec::new();
    for (i, compression) in settings.into_iter().enumerate() {
        let writer = node(format!("{name}_w{i}"), compression).await;
        for j in 0..200 {
            add_city(writer.db(), &format!("{compression:?} city number {j}")).await;
        }
        pushed.push(writer.sync().await.unwrap().push.unwrap().bytes);
    }
    let mut pulled = Vec::new();
    for (i, compression) in settings.into_iter().enumerate() {
        let reader = node(format!("{name}_r{i}"), compression).await;
        pulled.push(reader.pull().await.unwrap().bytes);
        assert_eq!(cities(reader.db()).await, cities(server.db()).await);
    }
    assert_eq!(cities(server.db()).await.len(), 600);
    // 200 new rows each; the compressed pushes are a fraction of the plain one.
    assert!(pushed[1] * 3 < pushed[0], "gzip {pushed:?}");
    assert!(pushed[2] * 3 < pushed[0], "zstd {pushed:?}");
    assert!(pulled[1] * 3 < pulled[0], "gzip {pulled:?}");
    assert!(pulled[2] * 3 < pulled[0], "zstd {pulled:?}");
}

async fn a_parent_written_after_its_table_was_paged_arrives_with_its_child(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..10 {
        let home = add_city(a.db(), &format!("c{i}")).await;
        add_person(a.db(), &format!("p{i}"), home.id).await;
    }
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    // The repair stops once the cities are paged; then the server gets a new city and a
    // person living there, which the person pages will carry.
    // Every city is in, and no person page has been asked for yet (pages are asked two at a
    // time, before this page's progress is reported).
    let (resume, repairing) =
        paused_repair(&server, &format!("{name}_b"), |items| items >= 10).await;
    let late = add_city(server.db(), "Late").await;
    add_person(server.db(), "Late comer", late.id).await;
    // And another node pushes the same (a push is recorded apart from the log).
    let c = client(&server, &format!("{name}_c")).await;
    let pushed = add_city(c.db(), "Pushed").await;
    add_person(c.db(), "Pushed comer", pushed.id).await;
    c.sync().await.unwrap();
    resume.send(()).unwrap();
    let report = tokio::task::spawn_blocking(move || repairing.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    // Unchanged cities are not sent again with their persons; the late ones may come twice
    // (in the last city page, and as the late persons' parents).
    assert!(report.rows <= 10 + 12 + 4, "{} rows", report.rows);
    for (person, city) in [("Late comer", "Late"), ("Pushed comer", "Pushed")] {
        assert!(
            people(b.db()).await.iter().any(|p| p.1 == person),
            "{person}"
        );
        assert!(cities(b.db()).await.iter().any(|c| c.1 == city), "{city}");
    }
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(people(b.db()).await, people(server.db()).await);
}

/// Starts `node`'s repair, with pages of 5 rows, on a thread of its own, and returns once it
/// is paused at its first download progress whose row count `pause` accepts: with the
/// sender that resumes it, and the thread.
async fn paused_repair(
    server: &TestServer,
    node: &str,
    pause: impl Fn(u64) -> bool + Send + Sync + 'static,
) -> (
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<dbsync::Result<dbsync::RepairReport>>,
) {
    let fired = std::sync::atomic::AtomicBool::new(false);
    let (paused, on_pause) = std::sync::mpsc::channel();
    let (resume, on_resume) = std::sync::mpsc::channel::<()>();
    let on_resume = std::sync::Mutex::new(on_resume);
    let repairing = dbsync_tests::harness::on_own_thread(
        node,
        &server.url,
        move |builder| {
            builder.page_size(5).progress(move |p| {
                if p.phase == dbsync::Phase::Downloading
                    && pause(p.items)
                    && !fired.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    paused.send(()).unwrap();
                    on_resume.lock().unwrap().recv().unwrap();
                }
            })
        },
        |paged| async move { paged.repair(UnsyncedPolicy::Refuse).await },
    );
    tokio::task::spawn_blocking(move || on_pause.recv().unwrap())
        .await
        .unwrap();
    (resume, repairing)
}

/// A repair asks for pages two at a time, at the cursors an earlier page predicted. Rows
/// written meanwhile into a key range not yet paged make a page end before the predicted
/// cursor: the page asked there is dropped and the walk goes on from where the page ended,
/// so no unchanged row is skipped.
async fn repair_pages_asked_ahead_are_dropped_when_the_table_changed(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 1..=30 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    a.sync().await.unwrap();
    for id in [17, 18] {
        city::Entity::delete_by_id(id).exec(a.db()).await.unwrap();
    }
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    // After the first page, with the next two fetched: the pages after those will be asked
    // at cursors predicted before the writes below.
    let (resume, repairing) = paused_repair(&server, &format!("{name}_b"), |_| true).await;
    for id in [17, 18] {
        city::ActiveModel {
            id: Set(id),
            name: Set(format!("late {id}")),
        }
        .insert(server.db())
        .await
        .unwrap();
    }
    resume.send(()).unwrap();
    tokio::task::spawn_blocking(move || repairing.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    let repaired = cities(b.db()).await;
    for id in [16, 19, 20, 21, 22, 30] {
        assert!(
            repaired.iter().any(|c| c.0 == id),
            "city {id}: {repaired:?}"
        );
    }
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(cities(b.db()).await.len(), 30);
}

async fn repair_moves_unique_values_between_pages(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..10 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    b.pull().await.unwrap();
    // City 1 and city 10 swap names: their pages are far apart.
    for (id, name) in [(1, "swap"), (10, "c0"), (1, "c9")] {
        city::ActiveModel {
            id: Set(id),
            name: Set(name.into()),
        }
        .update(a.db())
        .await
        .unwrap();
    }
    a.sync().await.unwrap();
    let paged = Client::builder(b.db().clone(), server.url.clone())
        .page_size(5)
        .build()
        .unwrap();
    paged.repair(UnsyncedPolicy::Refuse).await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(cities(b.db()).await[0], (1, "c9".to_owned()));
    assert_eq!(log(b.db()).await, []);
}

/// A sync that writes 1,000 rows or more drops SQLite's tracking triggers for its
/// transaction and creates them again at commit, or keeps them on a rollback: the
/// application's writes after it are recorded, on the server and on the nodes.
async fn tracking_survives_bulk_syncs(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let c = client(&server, &format!("{name}_c")).await;
    city::Entity::insert_many((0..1_200).map(|i| city::ActiveModel {
        name: Set(format!("City {i}")),
        ..Default::default()
    }))
    .exec(a.db())
    .await
    .unwrap();
    assert_eq!(a.push().await.unwrap().operations, 1_200);

    // The server's application writes after the bulk push are versioned for the nodes.
    add_city(server.db(), "Server side").await;
    let pulled = b.pull().await.unwrap();
    assert_eq!(pulled.operations, 1_201);
    assert_eq!(cities(b.db()).await.len(), 1_201);
    assert_eq!(log(b.db()).await, [], "pulled rows are not local changes");
    let local = add_city(b.db(), "Local").await;
    assert_eq!(
        log(b.db()).await,
        [("city".to_owned(), i64::from(local.id), "i")],
        "a write after the bulk pull is recorded"
    );

    // A bulk pull that fails (a local row holds a name the server's rows take) rolls back.
    let mine = add_city(c.db(), "City 7").await;
    match c.pull().await {
        Err(Error::UniqueConstraint { conflicts }) => {
            assert_eq!(conflicts[0].row_id, i64::from(mine.id));
        }
        other => panic!("expected UniqueConstraint, got {other:?}"),
    }
    let after = add_city(c.db(), "After").await;
    assert_eq!(
        log(c.db()).await,
        [
            ("city".to_owned(), i64::from(mine.id), "i"),
            ("city".to_owned(), i64::from(after.id), "i"),
        ],
        "writes after the failed bulk pull are recorded"
    );
}
