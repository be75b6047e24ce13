//! Pushes the server applies on top of versions the node has not pulled, and the keys it
//! moves, when answers are slow or lost and the application keeps writing meanwhile.

use dbsync::{Client, Error};
use dbsync_server::SyncServer;
use dbsync_tests::entities::{city, note};
use dbsync_tests::fixtures::{add_city, cities, rename_city};
use dbsync_tests::harness::{Adapter, TestServer, client, serve, server_db};
use dbsync_tests::{Backend, log, on_every_server};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

on_every_server!(
    a_pull_during_an_unanswered_push_settles_the_push_first,
    moves_outlive_trimming_for_a_push_whose_answer_was_lost,
    a_move_onto_a_key_used_and_deleted_meanwhile_keeps_the_pushed_row,
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
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
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
