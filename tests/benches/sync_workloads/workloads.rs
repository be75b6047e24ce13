//! The workloads, each on a fresh server process and fresh client files, each beside its raw
//! baseline: the same rows written straight into the same kind of database.

use crate::measure::{Figures, median, peak_mb, percentile, reset_peak};
use dbsync::{Client, UnsyncedPolicy};
use dbsync_tests::entities::{city, note, person};
use dbsync_tests::harness::{ServerProcess, server_db};
use dbsync_tests::{Backend, database_url, fresh_db, tracked_db};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, Statement, TransactionTrait,
};
use std::time::{Duration, Instant};

/// A server process over a fresh database, and what the workload needs of it.
pub struct Server {
    pub backend: Backend,
    pub url: String,
    pub db: DatabaseConnection,
    pub name: String,
    process: ServerProcess,
}

impl Server {
    pub async fn start(backend: Backend, name: &str) -> Option<Server> {
        let db = server_db(backend, name).await?;
        let url = database_url(backend, &format!("{name}_srv"))?;
        let process =
            ServerProcess::start(env!("CARGO_BIN_EXE_dbsync-test-process"), &url, None).await;
        Some(Server {
            backend,
            url: process.url.clone(),
            db,
            name: name.to_owned(),
            process,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub async fn client(&self, suffix: &str) -> Client {
        let db = tracked_db(Backend::Sqlite, &format!("{}_{suffix}", self.name))
            .await
            .unwrap();
        let client = Client::builder(db, self.url.clone())
            .timeout(Duration::from_secs(3_600))
            .build()
            .unwrap();
        client.register().await.unwrap();
        client
    }

    /// Peaks of the bench process (the clients) and the server process from now on.
    pub fn reset_peaks(&self) {
        reset_peak(None);
        reset_peak(self.pid());
    }

    pub fn peaks(&self, figures: &mut Figures) {
        figures.client_mb = peak_mb(None);
        figures.server_mb = peak_mb(self.pid());
    }
}

/// Writes `cities` cities and `people` persons (person `i` lives in city `i % cities`) with
/// SeaORM's multi-row inserts, in one transaction.
pub async fn fill(db: &DatabaseConnection, cities: usize, people: usize) {
    let txn = db.begin().await.unwrap();
    for chunk in (0..cities).collect::<Vec<_>>().chunks(1_000) {
        city::Entity::insert_many(chunk.iter().map(|i| city::ActiveModel {
            id: Set(*i as i32 + 1),
            name: Set(format!("city {i}")),
        }))
        .exec(&txn)
        .await
        .unwrap();
    }
    for chunk in (0..people).collect::<Vec<_>>().chunks(1_000) {
        person::Entity::insert_many(chunk.iter().map(|i| person::ActiveModel {
            id: Set(*i as i32 + 1),
            name: Set(format!("person {i}")),
            city_id: Set((i % cities) as i32 + 1),
        }))
        .exec(&txn)
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
}

/// The raw baseline: `fill` on a fresh database of `backend` without dbsync.
pub async fn raw_fill(backend: Backend, name: &str, cities: usize, people: usize) -> Duration {
    let db = fresh_db(backend, name).await.unwrap();
    dbsync_tests::create_fixture_tables(&db).await;
    if backend == Backend::Sqlite {
        // The journal mode `dbsync::create_all` gives synced databases: the same settings
        // on both sides of the ratio.
        db.execute_unprepared("PRAGMA journal_mode = WAL")
            .await
            .unwrap();
    }
    let start = Instant::now();
    fill(&db, cities, people).await;
    let time = start.elapsed();
    db.close().await.unwrap();
    time
}

/// W1: 1,000 cities and 9,000 persons created offline, pushed at once.
pub async fn push(server: &Server, scale: usize) -> Figures {
    let (cities, people) = (1_000 * scale, 9_000 * scale);
    let a = server.client("a").await;
    fill(a.db(), cities, people).await;
    let baseline = raw_fill(
        server.backend,
        &format!("{}_raw", server.name),
        cities,
        people,
    )
    .await;
    server.reset_peaks();
    let start = Instant::now();
    let (mut requests, mut bytes) = (0, 0);
    loop {
        let report = a.push().await.unwrap();
        if report.operations == 0 {
            break;
        }
        requests += 1;
        bytes += report.bytes;
    }
    let time = start.elapsed();
    let mut figures = Figures {
        items: cities + people,
        time,
        baseline,
        wire_bytes: bytes,
        note: format!("{requests} requests"),
        ..Figures::default()
    };
    server.peaks(&mut figures);
    figures
}

/// W2: an empty node pulls the 10,000 rows of W1.
pub async fn pull(server: &Server, scale: usize) -> Figures {
    let (cities, people) = (1_000 * scale, 9_000 * scale);
    let a = server.client("a").await;
    fill(a.db(), cities, people).await;
    while a.push().await.unwrap().operations > 0 {}
    let baseline = raw_fill(
        Backend::Sqlite,
        &format!("{}_raw", server.name),
        cities,
        people,
    )
    .await;
    let b = server.client("b").await;
    server.reset_peaks();
    let start = Instant::now();
    let report = b.pull().await.unwrap();
    let time = start.elapsed();
    assert_eq!(report.operations as usize, cities + people);
    let mut figures = Figures {
        items: cities + people,
        time,
        baseline,
        wire_bytes: report.bytes,
        ..Figures::default()
    };
    server.peaks(&mut figures);
    figures
}

/// W3 and W6: the server holds `cities` + `people` rows; an empty node makes its first
/// sync (a repair: rows without their history). With `own_process` the node runs in a
/// process of its own, so that its peak memory is its own.
pub async fn first_sync(
    server: &Server,
    cities: usize,
    people: usize,
    own_process: bool,
) -> Figures {
    fill(&server.db, cities, people).await;
    let baseline = raw_fill(
        Backend::Sqlite,
        &format!("{}_raw", server.name),
        cities,
        people,
    )
    .await;
    let versioning = version_server_writes(server).await;
    let c = server.client("c").await;
    server.reset_peaks();
    let mut figures = Figures {
        items: cities + people,
        baseline,
        ..Figures::default()
    };
    if own_process {
        let node = database_url(Backend::Sqlite, &format!("{}_c", server.name)).unwrap();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbsync-test-process"))
            .args(["client", &node, &server.url, "repair", "10000"])
            .output()
            .await
            .expect("run the client process");
        let text = String::from_utf8_lossy(&output.stdout);
        let done = text
            .lines()
            .find_map(|l| l.strip_prefix("done "))
            .unwrap_or_else(|| panic!("the client process failed: {text}"));
        let field = |name: &str| -> f64 {
            done.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        figures.time = Duration::from_millis(field("elapsed_ms=") as u64);
        figures.note = "client in its own process".into();
        server.peaks(&mut figures);
        figures.client_mb = field("peak_mb=");
    } else {
        let start = Instant::now();
        let report = c.repair(UnsyncedPolicy::Refuse).await.unwrap();
        figures.time = start.elapsed();
        assert_eq!(report.rows as usize, cities + people, "every row sent once");
        figures.wire_bytes = report.bytes;
        server.peaks(&mut figures);
    }
    let rows = city::Entity::find().all(c.db()).await.unwrap().len()
        + person::Entity::find().all(c.db()).await.unwrap().len();
    assert_eq!(rows, cities + people, "every row arrived, once");
    let versioned = format!("server versioned its writes first: {versioning:.2?}");
    figures.note = if figures.note.is_empty() {
        versioned
    } else {
        format!("{}; {versioned}", figures.note)
    };
    figures
}

/// The server gives the rows its application wrote a version at the first request after
/// them, whoever makes it: here a push of another node, to a push-only table (nothing a
/// first sync then downloads). Timed apart, as it is the server's work for its own writes,
/// done once, not the new node's.
async fn version_server_writes(server: &Server) -> Duration {
    let other = server.client("s").await;
    note::Entity::insert(note::ActiveModel {
        id: Set(1),
        text: Set("versions the server's writes".into()),
    })
    .exec(other.db())
    .await
    .unwrap();
    let start = Instant::now();
    match other.push().await {
        Ok(report) => assert_eq!(report.operations, 1),
        // Versioned before the push was looked at: too many rows for a stale push to be
        // applied past them, which changes nothing here.
        Err(dbsync::Error::PullSuggested { .. }) => {}
        Err(err) => panic!("{err}"),
    }
    // After versioning that many writes, a server on PostgreSQL vacuums its log in the
    // background: part of the same one-time work, waited for here.
    if server.db.get_database_backend() == DbBackend::Postgres {
        tokio::time::sleep(Duration::from_millis(50)).await;
        loop {
            let busy = server
                .db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                     AND query ILIKE 'VACUUM%' AND pid <> pg_backend_pid()",
                ))
                .await
                .unwrap()
                .and_then(|row| row.try_get_by_index::<i64>(0).ok())
                .unwrap_or(0);
            if busy == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    start.elapsed()
}

async fn rename(db: &impl ConnectionTrait, ids: impl Iterator<Item = usize>, prefix: &str) {
    for id in ids {
        person::Entity::update_many()
            .col_expr(
                person::Column::Name,
                sea_orm::sea_query::Expr::value(format!("{prefix} {id}")),
            )
            .filter(person::Column::Id.eq(id as i32))
            .exec(db)
            .await
            .unwrap();
    }
}

async fn delete(db: &impl ConnectionTrait, ids: std::ops::RangeInclusive<usize>) {
    person::Entity::delete_many()
        .filter(person::Column::Id.between(*ids.start() as i32, *ids.end() as i32))
        .exec(db)
        .await
        .unwrap();
}

/// W4: A and B hold the same 10,000 rows; A updates 2,000 persons and pushes; B updates
/// 2,000 (1,000 of A's among them) and deletes 500 others, then syncs: its push is refused,
/// it pulls and merges, and pushes again. B's sync is timed.
pub async fn merge(server: &Server, scale: usize) -> Figures {
    let (cities, people) = (1_000 * scale, 9_000 * scale);
    let (n, half, gone) = (2_000 * scale, 1_000 * scale, 500 * scale);
    fill(&server.db, cities, people).await;
    let a = server.client("a").await;
    let b = server.client("b").await;
    a.repair(UnsyncedPolicy::Refuse).await.unwrap();
    b.repair(UnsyncedPolicy::Refuse).await.unwrap();
    let txn = a.db().begin().await.unwrap();
    rename(&txn, 1..=n, "a").await;
    txn.commit().await.unwrap();
    a.push().await.unwrap();
    let txn = b.db().begin().await.unwrap();
    rename(&txn, half + 1..=half + n, "b").await;
    delete(&txn, 5 * n / 2 + 1..=5 * n / 2 + gone).await;
    txn.commit().await.unwrap();

    // The raw baseline: the same changes written straight into both databases.
    let raw_client = fresh_db(Backend::Sqlite, &format!("{}_rawc", server.name))
        .await
        .unwrap();
    let raw_server = fresh_db(server.backend, &format!("{}_raws", server.name))
        .await
        .unwrap();
    for db in [&raw_client, &raw_server] {
        dbsync_tests::create_fixture_tables(db).await;
        fill(db, cities, people).await;
    }
    let start = Instant::now();
    let txn = raw_client.begin().await.unwrap();
    rename(&txn, 1..=n, "a").await;
    txn.commit().await.unwrap();
    let txn = raw_server.begin().await.unwrap();
    rename(&txn, half + 1..=half + n, "b").await;
    delete(&txn, 5 * n / 2 + 1..=5 * n / 2 + gone).await;
    txn.commit().await.unwrap();
    let baseline = start.elapsed();

    server.reset_peaks();
    let start = Instant::now();
    let report = b.sync().await.unwrap();
    let time = start.elapsed();
    let pulled: u64 = report.pulls.iter().map(|p| p.bytes).sum();
    let conflicts: usize = report.pulls.iter().map(|p| p.conflicts.len()).sum();
    let pushed = report.push.as_ref().map_or(0, |p| p.bytes);
    assert_eq!(conflicts, half, "A's and B's common updates");
    let mut figures = Figures {
        items: 2 * n + gone,
        time,
        baseline,
        wire_bytes: pulled + pushed,
        note: format!("{conflicts} conflicts, local wins"),
        ..Figures::default()
    };
    server.peaks(&mut figures);
    figures
}

/// W5: `clients` nodes, each with 100 new rows (20 cities, 80 persons, every node using
/// the keys 1 to 100), push at once; then all pull. The time is the push phase's. Checks that every row arrived once and every node has them all.
pub async fn many_clients(server: &Server, clients: usize) -> (Figures, String) {
    let mut nodes = Vec::new();
    for i in 0..clients {
        let node = server.client(&format!("n{i}")).await;
        let txn = node.db().begin().await.unwrap();
        for c in 0..20 {
            let city = city::ActiveModel {
                id: Set(c + 1),
                name: Set(format!("node {i} city {c}")),
            };
            city::Entity::insert(city).exec(&txn).await.unwrap();
        }
        person::Entity::insert_many((0..80).map(|p| person::ActiveModel {
            id: Set(p + 1),
            name: Set(format!("node {i} person {p}")),
            city_id: Set(p % 20 + 1),
        }))
        .exec(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
        nodes.push(node);
    }
    let baseline = raw_fill(
        server.backend,
        &format!("{}_raw", server.name),
        clients * 20,
        clients * 80,
    )
    .await;
    server.reset_peaks();
    let start = Instant::now();
    let syncs = futures::future::join_all(nodes.iter().map(|node| async move {
        let started = Instant::now();
        let mut failed = 0;
        // Each node pushes; a push the server cannot apply over versions the node has not
        // seen becomes a sync (pull, merge, push). An application retries a sync that gave
        // up; count how often either was needed.
        loop {
            let result = match node.push().await {
                Err(dbsync::Error::PullSuggested { .. }) => node.sync().await.map(|_| ()),
                other => other.map(|_| ()),
            };
            match result {
                Ok(()) => break,
                Err(err) => {
                    failed += 1;
                    assert!(failed < 20, "a node could not push: {err}");
                }
            }
        }
        (started.elapsed(), failed)
    }))
    .await;
    let push_phase = start.elapsed();
    let pulls = futures::future::join_all(nodes.iter().map(|node| async move {
        let started = Instant::now();
        node.pull().await.unwrap();
        started.elapsed()
    }))
    .await;
    let time = start.elapsed();
    let rows = clients * 100;
    let on_server = city::Entity::find().all(&server.db).await.unwrap().len()
        + person::Entity::find().all(&server.db).await.unwrap().len();
    assert_eq!(on_server, rows, "every operation arrived once");
    for node in &nodes {
        let local = city::Entity::find().all(node.db()).await.unwrap().len()
            + person::Entity::find().all(node.db()).await.unwrap().len();
        assert_eq!(local, rows, "every node has every row");
    }
    let retries: usize = syncs.iter().map(|(_, f)| f).sum();
    let times: Vec<Duration> = syncs.iter().map(|(t, _)| *t).collect();
    let mut figures = Figures {
        items: rows,
        time: push_phase,
        baseline,
        note: format!(
            "{clients} clients; one push median {:.3} s, p99 {:.3} s; {retries} refused or \
             gave up and went through a sync; then all pull in {:.2} s (median {:.2} s)",
            median(times.clone()).as_secs_f64(),
            percentile(times, 99).as_secs_f64(),
            (time - push_phase).as_secs_f64(),
            median(pulls).as_secs_f64(),
        ),
        ..Figures::default()
    };
    server.peaks(&mut figures);
    let summary = format!("{rows} operations, 0 lost, {retries} retried");
    (figures, summary)
}
