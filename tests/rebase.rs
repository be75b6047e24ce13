//! Pushes the server applies on top of versions the node has not pulled (or refuses), and
//! the keys it moves, including when answers are slow or lost and the application keeps
//! writing meanwhile.

use dbsync::{Client, Error};
use dbsync_server::{ServerConfig, SyncServer};
use dbsync_tests::entities::{city, note, person};
use dbsync_tests::fixtures::{add_city, add_person, cities, people, rename_city};
use dbsync_tests::harness::{Adapter, TestServer, client, serve, server_db, start};
use dbsync_tests::{Backend, log, on_every_server};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

on_every_server!(
    a_stale_push_over_an_unseen_change_suggests_a_pull_and_sync_recovers,
    a_stale_push_of_unrelated_rows_is_applied_and_the_node_pulls_the_rest,
    a_stale_push_refers_only_to_rows_no_unseen_version_touched,
    an_insert_never_reuses_a_key_an_unseen_version_used,
    keys_moved_by_a_push_whose_answer_was_lost_arrive_with_the_retry_or_the_pull,
    a_pull_during_an_unanswered_push_settles_the_push_first,
    moves_outlive_trimming_for_a_push_whose_answer_was_lost,
    a_move_onto_a_key_used_and_deleted_meanwhile_keeps_the_pushed_row,
    a_stale_push_breaking_a_unique_value_changes_nothing_and_the_pull_names_the_row,
);

/// When a slowed push waits: before it starts (nothing of it is in the database yet), or
/// with its transaction open, after applying.
#[derive(Clone, Copy, PartialEq)]
enum Stall {
    Before,
    Inside,
}

/// A server whose next push, once the returned flag is set, stalls for 1.5 s: a client with
/// a short timeout gives up before the answer, and the server applies the push anyway.
async fn slow_server(
    backend: Backend,
    adapter: Adapter,
    name: &str,
    stall: Stall,
) -> Option<(TestServer, Arc<AtomicBool>)> {
    let db = server_db(backend, name).await?;
    let slow = Arc::new(AtomicBool::new(false));
    let (before, inside) = (slow.clone(), slow.clone());
    let builder = SyncServer::builder(db)
        .authorize(move |info| {
            if stall == Stall::Before
                && info.procedure == dbsync_server::Procedure::Push
                && before.swap(false, Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(1500));
            }
            Ok(())
        })
        .after_push(Arc::new(move |_, _, _| {
            let wait = stall == Stall::Inside && inside.swap(false, Ordering::SeqCst);
            Box::pin(async move {
                if wait {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                Ok(())
            })
        }));
    Some((serve(builder, adapter).await, slow))
}

/// Starts a push of `node`'s log that the server applies after the client gave up.
async fn push_without_answer(server: &TestServer, slow: &AtomicBool, node: &Client) {
    let impatient = Client::builder(node.db().clone(), server.url.clone())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    slow.store(true, Ordering::SeqCst);
    assert!(matches!(impatient.push().await, Err(Error::Timeout)));
}

/// Every node holds the server's cities and persons, with nothing left to push.
async fn equal_to_server(server: &TestServer, nodes: &[&Client]) {
    for node in nodes {
        assert_eq!(cities(node.db()).await, cities(server.db()).await);
        assert_eq!(people(node.db()).await, people(server.db()).await);
        assert_eq!(log(node.db()).await, []);
    }
}

async fn notes(db: &DatabaseConnection) -> Vec<(i64, String)> {
    note::Entity::find()
        .order_by_asc(note::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.text))
        .collect()
}

async fn add_note(db: &DatabaseConnection, text: &str) -> note::Model {
    note::ActiveModel {
        text: Set(text.into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

async fn a_pull_during_an_unanswered_push_settles_the_push_first(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, slow)) = slow_server(backend, adapter, name, Stall::Before).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    add_city(b.db(), "Bob").await;
    b.push().await.unwrap();
    let ann = add_city(a.db(), "Ann").await;
    // A's push of Ann (same key as Bob) has not reached the database when A pulls Bob; the
    // server applies it right after.
    push_without_answer(&server, &slow, &a).await;
    a.pull().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(log(a.db()).await, [], "the pull settled the push");
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
    // Later edits reach the rows they were made on.
    let moved_ann = cities(a.db())
        .await
        .into_iter()
        .find(|(_, n)| n == "Ann")
        .unwrap()
        .0;
    assert_ne!(moved_ann, ann.id);
    rename_city(a.db(), moved_ann, "Ann renamed").await;
    rename_city(a.db(), ann.id, "Bob renamed").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(
        cities(server.db()).await,
        [
            (ann.id, "Bob renamed".to_owned()),
            (moved_ann, "Ann renamed".to_owned())
        ]
    );
    equal_to_server(&server, &[&a, &b]).await;
}

async fn moves_outlive_trimming_for_a_push_whose_answer_was_lost(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, slow)) = slow_server(backend, adapter, name, Stall::Inside).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    // Notes only go up: each node's first note takes key 1, and A's moves on the server.
    add_note(b.db(), "B's note").await;
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    let mine = add_note(a.db(), "A's note").await;
    push_without_answer(&server, &slow, &a).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    b.sync().await.unwrap();
    server.server.trim(None).await.unwrap();
    let retry = a.push().await.unwrap();
    assert!(retry.replayed);
    assert_eq!(
        retry.moved.len(),
        1,
        "the move is answered again: {retry:?}"
    );
    let moved = retry.moved[0].2;
    note::ActiveModel {
        id: Set(moved),
        text: Set("A's note, edited".into()),
    }
    .update(a.db())
    .await
    .unwrap();
    a.sync().await.unwrap();
    assert_eq!(
        notes(server.db()).await,
        [
            (mine.id, "B's note".to_owned()),
            (moved, "A's note, edited".to_owned())
        ]
    );
}

async fn a_move_onto_a_key_used_and_deleted_meanwhile_keeps_the_pushed_row(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, slow)) = slow_server(backend, adapter, name, Stall::Inside).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    add_city(b.db(), "Bob").await;
    b.sync().await.unwrap();
    let ann = add_city(a.db(), "Ann").await;
    push_without_answer(&server, &slow, &a).await;
    // While the answer is lost, the application edits Ann, and creates and deletes a city
    // under the very key the server gives Ann.
    rename_city(a.db(), ann.id, "Ann edited").await;
    let tmp = add_city(a.db(), "Tmp").await;
    city::Entity::delete_by_id(tmp.id)
        .exec(a.db())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let retry = a.push().await.unwrap();
    assert_eq!(
        retry.moved,
        [("city".to_owned(), i64::from(ann.id), i64::from(tmp.id))]
    );
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(
        cities(server.db()).await,
        [
            (ann.id, "Bob".to_owned()),
            (tmp.id, "Ann edited".to_owned())
        ]
    );
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
    assert_eq!(log(a.db()).await, []);
}

async fn a_stale_push_over_an_unseen_change_suggests_a_pull_and_sync_recovers(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    a.push().await.unwrap();
    b.pull().await.unwrap();
    rename_city(a.db(), lyon.id, "Lyon (a)").await;
    a.push().await.unwrap();
    rename_city(b.db(), lyon.id, "Lyon (b)").await;
    match b.push().await {
        Err(Error::PullSuggested { .. }) => {}
        other => panic!("expected PullSuggested, got {other:?}"),
    }
    // Nothing of B's reached the server.
    assert_eq!(
        cities(server.db()).await,
        [(lyon.id, "Lyon (a)".to_owned())]
    );
    assert_eq!(server.versions().await, [1, 2]);
    let report = b.sync().await.unwrap();
    assert_eq!(report.pulls.len(), 1);
    assert!(!report.push.unwrap().rebased);
    a.sync().await.unwrap();
    // The node's change wins by default.
    assert_eq!(
        cities(server.db()).await,
        [(lyon.id, "Lyon (b)".to_owned())]
    );
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
}

/// The rows of a stale push touch nothing an unseen version touched, but one takes a unique
/// value an unseen version gave another row: the database refuses it, and nothing of the
/// push (not even its moved keys) stays on the server.
async fn a_stale_push_breaking_a_unique_value_changes_nothing_and_the_pull_names_the_row(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    a.push().await.unwrap();
    let metz = add_city(b.db(), "Metz").await;
    let theirs = add_city(b.db(), "Lyon").await;
    add_person(b.db(), "Bob", metz.id).await;
    match b.push().await {
        Err(Error::PullSuggested { .. }) => {}
        other => panic!("expected PullSuggested, got {other:?}"),
    }
    assert_eq!(cities(server.db()).await, [(lyon.id, "Lyon".to_owned())]);
    assert_eq!(people(server.db()).await, []);
    assert_eq!(server.versions().await, [1]);
    assert_eq!(log(b.db()).await.len(), 3, "B's writes wait to be pushed");
    match b.pull().await {
        Err(Error::UniqueConstraint { conflicts }) => {
            assert_eq!(conflicts.len(), 1, "{conflicts:?}");
            assert_eq!(conflicts[0].table, "city");
            assert_eq!(conflicts[0].row_id, i64::from(theirs.id));
        }
        other => panic!("expected UniqueConstraint, got {other:?}"),
    }
    rename_city(b.db(), theirs.id, "Lyon (b)").await;
    b.sync().await.unwrap();
    a.pull().await.unwrap();
    equal_to_server(&server, &[&a, &b]).await;
    assert_eq!(cities(server.db()).await.len(), 3);
    assert_eq!(people(server.db()).await.len(), 1);
}

async fn a_stale_push_of_unrelated_rows_is_applied_and_the_node_pulls_the_rest(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    add_person(a.db(), "Ann", lyon.id).await;
    a.push().await.unwrap();
    let metz = add_city(b.db(), "Metz").await;
    b.push().await.unwrap();
    b.pull().await.unwrap();
    let base = b.version().await.unwrap();
    assert_eq!(base, 2);
    // A moves on; B, without pulling, changes rows A's version did not touch.
    add_city(a.db(), "Nice").await;
    a.push().await.unwrap();
    rename_city(b.db(), metz.id, "Metz (b)").await;
    add_person(b.db(), "Bob", metz.id).await;
    let report = b.push().await.unwrap();
    assert!(report.rebased, "{report:?}");
    assert_eq!(report.new_version, Some(4));
    assert_eq!(
        b.version().await.unwrap(),
        base,
        "version 3 is still to pull"
    );
    assert_eq!(log(b.db()).await, []);
    assert_eq!(server.versions().await, [1, 2, 3, 4]);
    // The pull brings A's version, not B's own.
    let pulled = b.pull().await.unwrap();
    assert_eq!(pulled.version, 4);
    assert_eq!(pulled.operations, 1);
    assert!(pulled.conflicts.is_empty());
    a.pull().await.unwrap();
    equal_to_server(&server, &[&a, &b]).await;
    assert_eq!(cities(server.db()).await.len(), 3);
    assert_eq!(people(server.db()).await.len(), 2);
}

async fn a_stale_push_refers_only_to_rows_no_unseen_version_touched(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let lyon = add_city(a.db(), "Lyon").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    // A renames Lyon; B, unaware, adds a person in it: the server refuses until B pulls,
    // as B's person refers to a row B has not seen the latest of.
    rename_city(a.db(), lyon.id, "Lyon (a)").await;
    a.push().await.unwrap();
    add_person(b.db(), "Bea", lyon.id).await;
    assert!(matches!(b.push().await, Err(Error::PullSuggested { .. })));
    assert!(people(server.db()).await.is_empty());
    // With rebasing off the server refuses every stale push, as python-sync-db did.
    let mut config = ServerConfig::default();
    config.rebase_pushes = false;
    let db = server_db(backend, &format!("{name}_strict")).await.unwrap();
    let strict = serve(SyncServer::builder(db).config(config), adapter).await;
    let c = client(&strict, &format!("{name}_c")).await;
    let d = client(&strict, &format!("{name}_d")).await;
    add_city(c.db(), "Caen").await;
    c.push().await.unwrap();
    add_city(d.db(), "Dax").await;
    assert!(matches!(d.push().await, Err(Error::PullSuggested { .. })));
    d.sync().await.unwrap();
    assert_eq!(cities(strict.db()).await.len(), 2);
    b.sync().await.unwrap();
    assert_eq!(people(server.db()).await.len(), 1);
}

async fn keys_moved_by_a_push_whose_answer_was_lost_arrive_with_the_retry_or_the_pull(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some((server, slow)) = slow_server(backend, adapter, name, Stall::Inside).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    add_city(a.db(), "Arles").await;
    a.push().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    let c = client(&server, &format!("{name}_c")).await;
    let mut mine = Vec::new();
    for (node, city) in [(&b, "Brest"), (&c, "Caen")] {
        let made = add_city(node.db(), city).await;
        let person = add_person(node.db(), &format!("{city} person"), made.id).await;
        push_without_answer(&server, &slow, node).await;
        // Written after the push: it takes the key the server gave the pushed city.
        let later = add_city(node.db(), &format!("{city} later")).await;
        mine.push((made, person, later));
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // B retries its push; C pulls first. Either way the answer's moves arrive once.
    let retry = b.push().await.unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.moved.len(), 1, "{retry:?}");
    c.pull().await.unwrap();
    for (node, (made, person, later)) in [&b, &c].into_iter().zip(&mine) {
        let city_now = city::Entity::find()
            .all(node.db())
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.name == made.name)
            .unwrap();
        assert_ne!(city_now.id, made.id, "the pushed city moved");
        // The person may have moved too (C's took a key B's person had taken first).
        let person_now = person::Entity::find()
            .all(node.db())
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.name == person.name)
            .unwrap();
        assert_eq!(person_now.city_id, city_now.id, "its person followed");
        let later_now = cities(node.db())
            .await
            .into_iter()
            .filter(|(_, n)| *n == later.name)
            .collect::<Vec<_>>();
        assert_eq!(later_now.len(), 1, "the later city is there once");
        assert_eq!(
            log(node.db()).await.len(),
            1,
            "only the later write is unsynced"
        );
    }
    for node in [&b, &c, &a, &b, &c] {
        node.sync().await.unwrap();
    }
    assert_eq!(cities(server.db()).await.len(), 5);
    assert_eq!(people(server.db()).await.len(), 2);
    equal_to_server(&server, &[&a, &b, &c]).await;
}

async fn an_insert_never_reuses_a_key_an_unseen_version_used(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    let gone = add_city(a.db(), "Gone").await;
    a.push().await.unwrap();
    city::Entity::delete_by_id(gone.id)
        .exec(a.db())
        .await
        .unwrap();
    a.push().await.unwrap();
    // B never saw city `gone.id` come and go; its own first city gets that free key.
    let kept = add_city(b.db(), "Kept").await;
    assert_eq!(kept.id, gone.id);
    let report = b.push().await.unwrap();
    assert!(report.rebased);
    assert_eq!(
        report.moved.len(),
        1,
        "the pull would replay the old row's delete on that key"
    );
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(cities(b.db()).await.len(), 1);
}
