//! What change capture costs an application: 10,000 inserts, then 10,000 updates, through
//! SeaORM on a SQLite file, with dbsync's capture installed and without, in the same run.
//!
//! Run with `cargo bench -p dbsync-tests --bench tracking_overhead`. Each figure is the median
//! of several rounds; tracked and untracked rounds alternate so that both see the same disk
//! and cache conditions.

use dbsync_tests::create_fixture_tables;
use dbsync_tests::entities::city;
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Set,
    TransactionTrait,
};
use std::time::{Duration, Instant};

const ROWS: usize = 10_000;
const ROUNDS: usize = 3;

async fn open(tracked: bool, round: usize) -> DatabaseConnection {
    let path = std::env::temp_dir().join(format!("dbsync_bench_{tracked}_{round}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .max_connections(1)
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        .sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    create_fixture_tables(&db).await;
    // The journal mode `create_all` gives tracked databases, on both sides of the ratio.
    db.execute_unprepared("PRAGMA journal_mode = WAL")
        .await
        .unwrap();
    if tracked {
        dbsync::create_all(&db).await.unwrap();
    }
    db
}

/// Inserts then updates `ROWS` cities; `batched` puts each phase in one transaction,
/// otherwise every statement commits on its own, as most application writes do.
async fn workload(db: &DatabaseConnection, batched: bool) -> (Duration, Duration) {
    let start = Instant::now();
    let txn = if batched {
        Some(db.begin().await.unwrap())
    } else {
        None
    };
    let mut ids = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let model = city::ActiveModel {
            name: Set(format!("city {i}")),
            ..Default::default()
        };
        let inserted = match &txn {
            Some(txn) => model.insert(txn).await,
            None => model.insert(db).await,
        };
        ids.push(inserted.unwrap().id);
    }
    if let Some(txn) = txn {
        txn.commit().await.unwrap();
    }
    let inserts = start.elapsed();

    let start = Instant::now();
    let txn = if batched {
        Some(db.begin().await.unwrap())
    } else {
        None
    };
    for (i, id) in ids.iter().enumerate() {
        let model = city::ActiveModel {
            id: Set(*id),
            name: Set(format!("town {i}")),
        };
        match &txn {
            Some(txn) => model.update(txn).await,
            None => model.update(db).await,
        }
        .unwrap();
    }
    if let Some(txn) = txn {
        txn.commit().await.unwrap();
    }
    (inserts, start.elapsed())
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        println!(
            "tracking overhead: {ROWS} inserts then {ROWS} updates, SQLite file, median of {ROUNDS}"
        );
        println!(
            "{:<34} {:>12} {:>12} {:>8}",
            "workload", "untracked", "tracked", "ratio"
        );
        for batched in [true, false] {
            let mut times = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
            for round in 0..ROUNDS {
                for tracked in [round % 2 == 0, round % 2 == 1] {
                    let db = open(tracked, round).await;
                    let (inserts, updates) = workload(&db, batched).await;
                    if tracked {
                        let logged = dbsync_tests::log(&db).await.len();
                        assert_eq!(logged, 2 * ROWS, "every write is logged");
                    }
                    times[usize::from(tracked)][0].push(inserts);
                    times[usize::from(tracked)][1].push(updates);
                    db.close().await.unwrap();
                }
            }
            let mode = if batched {
                "one transaction"
            } else {
                "autocommit"
            };
            for (phase, name) in [(0, "inserts"), (1, "updates")] {
                let base = median(times[0][phase].clone());
                let tracked = median(times[1][phase].clone());
                println!(
                    "{:<34} {:>10.1}ms {:>10.1}ms {:>7.2}x",
                    format!("{ROWS} {name}, {mode}"),
                    base.as_secs_f64() * 1e3,
                    tracked.as_secs_f64() * 1e3,
                    tracked.as_secs_f64() / base.as_secs_f64()
                );
            }
        }
    });
}
