//! Faults a sync client meets in the field, produced for real: answers lost after the server
//! committed, a pull cancelled half-way (the process killed or the laptop asleep), requests
//! that never reach the server, duplicated requests, and two processes syncing the same local
//! database at once. After each, syncing again converges with nothing lost and nothing applied
//! twice.

use dbsync::{Client, Error};
use dbsync_tests::fixtures::{add_city, cities};
use dbsync_tests::harness::{Adapter, client, start};
use dbsync_tests::{Backend, log, on_every_server};

on_every_server!(
    a_pull_cancelled_half_way_leaves_nothing_and_the_next_one_completes,
    a_request_that_never_reached_the_server_is_simply_retried,
    two_processes_syncing_one_local_database_lose_and_duplicate_nothing,
);

async fn a_pull_cancelled_half_way_leaves_nothing_and_the_next_one_completes(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..20 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    // The process dies right after the first page arrived: the pull future is dropped there.
    let (pages, mut first_page) = tokio::sync::mpsc::unbounded_channel();
    let paged = Client::builder(b.db().clone(), server.url.clone())
        .page_size(5)
        .progress(move |p| {
            if p.phase == dbsync::Phase::Downloading {
                let _ = pages.send(p.items);
            }
        })
        .build()
        .unwrap();
    tokio::select! {
        _ = paged.pull() => panic!("the pull should have been stopped after its first page"),
        items = first_page.recv() => assert_eq!(items, Some(5)),
    }
    assert!(
        cities(b.db()).await.is_empty(),
        "nothing of a cancelled pull is applied"
    );
    assert_eq!(b.version().await.unwrap(), 0);
    paged.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(log(b.db()).await, []);
}

async fn a_request_that_never_reached_the_server_is_simply_retried(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    add_city(a.db(), "Patient").await;
    // The same node, pointed at an address where nothing listens: the request is lost.
    let lost = Client::new(a.db().clone(), "http://127.0.0.1:9/sync");
    assert!(matches!(lost.push().await, Err(Error::Offline(_))));
    assert!(matches!(lost.sync().await, Err(Error::Offline(_))));
    let report = a.sync().await.unwrap();
    assert!(
        !report.push.unwrap().replayed,
        "the server never saw the first attempt"
    );
    assert_eq!(cities(server.db()).await, cities(a.db()).await);
}

async fn two_processes_syncing_one_local_database_lose_and_duplicate_nothing(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let other = client(&server, &format!("{name}_other")).await;
    // A second "process": its own connection pool on the same SQLite file.
    let path = dbsync_tests::sqlite_path(&format!("{name}_a"));
    let second_db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let twin = Client::new(second_db, server.url.clone());
    for round in 0..5 {
        add_city(a.db(), &format!("a{round}")).await;
        add_city(other.db(), &format!("o{round}")).await;
        let (x, y, z) = tokio::join!(a.sync(), twin.sync(), other.sync());
        for result in [x, y, z] {
            match result {
                Ok(_) | Err(Error::PullSuggested { .. }) => {}
                Err(err) => panic!("round {round}: {err}"),
            }
        }
    }
    for _ in 0..3 {
        for node in [&a, &twin, &other] {
            node.sync().await.unwrap();
        }
    }
    let on_server = cities(server.db()).await;
    assert_eq!(
        on_server.len(),
        10,
        "every write arrived once: {on_server:?}"
    );
    assert_eq!(cities(a.db()).await, on_server);
    assert_eq!(cities(other.db()).await, on_server);
    assert_eq!(log(a.db()).await, []);
}
