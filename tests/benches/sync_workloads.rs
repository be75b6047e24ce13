//! The sync workloads of the performance issue, over real HTTP on 127.0.0.1, each beside the
//! raw database doing the same writes (multi-row inserts in one transaction).
//!
//! `cargo bench -p dbsync-tests --bench sync_workloads` (server on SQLite; set
//! `DBSYNC_TEST_POSTGRES` to add the PostgreSQL server). `DBSYNC_BENCH_SCALE=10` multiplies
//! the row counts.

use dbsync::{Client, UnsyncedPolicy};
use dbsync_server::SyncServer;
use dbsync_tests::entities::{city, person};
use dbsync_tests::harness::{Adapter, TestServer, serve, server_db};
use dbsync_tests::{Backend, tracked_db};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait,
};
use std::time::{Duration, Instant};

fn scale() -> usize {
    std::env::var("DBSYNC_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

async fn bench_client(server: &TestServer, name: &str) -> Client {
    let db = tracked_db(Backend::Sqlite, name).await.unwrap();
    let client = Client::builder(db, server.url.clone())
        .timeout(Duration::from_secs(600))
        .page_size(5_000)
        .build()
        .unwrap();
    client.register().await.unwrap();
    client
}

/// Inserts `cities` cities and `people` persons with SeaORM's `insert_many`, in one transaction.
async fn fill(db: &DatabaseConnection, cities: usize, people: usize, offset: usize) {
    let txn = db.begin().await.unwrap();
    for chunk in (0..cities).collect::<Vec<_>>().chunks(1000) {
        city::Entity::insert_many(chunk.iter().map(|i| city::ActiveModel {
            id: Set((offset + i + 1) as i32),
            name: Set(format!("city {}", offset + i)),
        }))
        .exec(&txn)
        .await
        .unwrap();
    }
    for chunk in (0..people).collect::<Vec<_>>().chunks(1000) {
        person::Entity::insert_many(chunk.iter().map(|i| person::ActiveModel {
            id: Set((offset + i + 1) as i32),
            name: Set(format!("person {i}")),
            city_id: Set((offset + i % cities + 1) as i32),
        }))
        .exec(&txn)
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
}

/// The raw baseline: the same rows written straight into a fresh database.
async fn baseline(name: &str, cities: usize, people: usize) -> Duration {
    let db = dbsync_tests::fresh_db(Backend::Sqlite, name).await.unwrap();
    dbsync_tests::create_fixture_tables(&db).await;
    let start = Instant::now();
    fill(&db, cities, people, 0).await;
    start.elapsed()
}

fn line(workload: &str, rows: usize, time: Duration, base: Duration, bytes: u64) {
    println!(
        "{workload:<34} {rows:>8} rows {:>9.3} s {:>10.0} rows/s  baseline {:>7.3} s  ratio {:>6.1}x  {:>6.1} B/row",
        time.as_secs_f64(),
        rows as f64 / time.as_secs_f64(),
        base.as_secs_f64(),
        time.as_secs_f64() / base.as_secs_f64(),
        bytes as f64 / rows as f64,
    );
}

async fn run(backend: Backend) {
    let n = scale();
    let Some(db) = server_db(backend, &format!("bench_{backend:?}")).await else {
        return;
    };
    let server = serve(SyncServer::builder(db), Adapter::Axum).await;
    println!("\nserver on {backend:?}");

    // W1: 1,000 cities and 9,000 persons created offline, pushed at once.
    let (cities, people) = (1_000 * n, 9_000 * n);
    let a = bench_client(&server, &format!("bench_{backend:?}_a")).await;
    fill(a.db(), cities, people, 0).await;
    let base = baseline("bench_base_w1", cities, people).await;
    let start = Instant::now();
    let mut pushed = 0;
    while a.push().await.unwrap().operations > 0 {
        pushed += 1;
    }
    line(
        &format!("W1 push ({pushed} requests)"),
        cities + people,
        start.elapsed(),
        base,
        0,
    );

    // W2: an empty node pulls them.
    let b = bench_client(&server, &format!("bench_{backend:?}_b")).await;
    let start = Instant::now();
    let report = b.pull().await.unwrap();
    line(
        "W2 pull",
        cities + people,
        start.elapsed(),
        base,
        report.bytes,
    );

    // W3: 100,000 rows on the server, an empty node repairs.
    let (cities3, people3) = (10_000 * n, 90_000 * n);
    fill(server.db(), cities3, people3, 1_000_000).await;
    let base3 = baseline("bench_base_w3", cities3, people3).await;
    let c = bench_client(&server, &format!("bench_{backend:?}_c")).await;
    let start = Instant::now();
    let report = c.repair(UnsyncedPolicy::Refuse).await.unwrap();
    let total = (report.rows as usize).max(1);
    line(
        "W3 first sync (repair)",
        total,
        start.elapsed(),
        base3,
        report.bytes,
    );
    let _ = server.db().execute_unprepared("SELECT 1").await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "dbsync sync workloads (scale {}), medians not taken: one run each",
            scale()
        );
        run(Backend::Sqlite).await;
        run(Backend::Postgres).await;
    });
}
