//! Trimming the server's log: what every active node has pulled goes, and a node left behind
//! is told to repair instead of getting an incomplete history (python-sync-db's scenario 12,
//! where a fresh node's pull silently missed rows).

use dbsync::{Error, UnsyncedPolicy};
use dbsync_tests::fixtures::{add_city, cities};
use dbsync_tests::harness::{Adapter, client, start};
use dbsync_tests::{Backend, log, on_every_server};
use std::time::Duration;

on_every_server!(
    trim_removes_what_every_active_node_has_and_sync_goes_on,
    a_node_behind_the_trimmed_horizon_is_told_to_repair,
    a_node_that_never_pulled_holds_the_log_until_it_counts_as_inactive,
);

async fn trim_removes_what_every_active_node_has_and_sync_goes_on(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    add_city(a.db(), "One").await;
    a.sync().await.unwrap();
    add_city(b.db(), "Two").await;
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    let report = server.server.trim(None).await.unwrap();
    assert_eq!(report.horizon, 2, "both nodes have version 2");
    assert_eq!(report.removed, 2);
    add_city(a.db(), "Three").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(cities(server.db()).await.len(), 3);
}

async fn a_node_behind_the_trimmed_horizon_is_told_to_repair(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let b = client(&server, &format!("{name}_b")).await;
    add_city(a.db(), "Lyon").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    add_city(b.db(), "Nice").await;
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    server.server.trim(None).await.unwrap();

    let fresh = client(&server, &format!("{name}_fresh")).await;
    match fresh.pull().await {
        Err(Error::RepairRequired { .. }) => {}
        other => panic!("expected RepairRequired, got {other:?}"),
    }
    assert!(
        cities(fresh.db()).await.is_empty(),
        "no partial history was applied"
    );
    fresh.repair(UnsyncedPolicy::Refuse).await.unwrap();
    assert_eq!(cities(fresh.db()).await, cities(server.db()).await);
    add_city(fresh.db(), "Metz").await;
    fresh.sync().await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
    assert_eq!(log(fresh.db()).await, []);
}

async fn a_node_that_never_pulled_holds_the_log_until_it_counts_as_inactive(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let idle = client(&server, &format!("{name}_idle")).await;
    add_city(a.db(), "Lyon").await;
    a.sync().await.unwrap();
    assert_eq!(
        server.server.trim(None).await.unwrap().removed,
        0,
        "the idle node needs it"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.sync().await.unwrap();
    let report = server
        .server
        .trim(Some(Duration::from_millis(20)))
        .await
        .unwrap();
    assert_eq!(report.removed, 1);
    assert!(matches!(
        idle.pull().await,
        Err(Error::RepairRequired { .. })
    ));
    idle.repair(UnsyncedPolicy::Refuse).await.unwrap();
    assert_eq!(cities(idle.db()).await, cities(server.db()).await);
}
