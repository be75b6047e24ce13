//! Processes killed for real (SIGKILL, no clean-up) in the middle of a procedure: the server
//! before and after it commits a push, the client in the middle of a push, a pull and a
//! repair. After each, syncing again converges with nothing lost and nothing applied twice.
//!
//! Servers and clients run as `dbsync-test-process` children (`tests/bin/process.rs`) over
//! the same databases this test reads.

use dbsync::Client;
use dbsync_tests::fixtures::{add_city, cities};
use dbsync_tests::harness::{ServerProcess, server_db};
use dbsync_tests::{Backend, database_url, log, on_every_backend, tracked_db};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

on_every_backend!(
    a_server_killed_before_commit_applies_nothing_and_the_push_goes_through_later,
    a_server_killed_after_commit_answers_the_retry_from_its_first_attempt,
    a_client_killed_mid_push_finds_its_push_applied_once,
    a_client_killed_mid_pull_keeps_all_or_nothing_and_the_next_pull_completes,
    a_client_killed_mid_repair_keeps_all_or_nothing_and_the_next_repair_completes,
);

/// A child process and the lines it prints.
struct Process {
    child: tokio::process::Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Process {
    fn spawn(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dbsync-test-process"))
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn dbsync-test-process");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Process { child, lines }
    }

    /// The next line that starts with `prefix`; `None` once the process has exited.
    async fn wait_for(&mut self, prefix: &str) -> Option<String> {
        let wait = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if line.starts_with(prefix) {
                    return Some(line);
                }
            }
            None
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the child process answers within a minute")
    }

    /// SIGKILL: the process gets no chance to clean anything up.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }
}

/// A server process over the database of `name`, and its URL.
async fn server_process(
    backend: Backend,
    name: &str,
    hang: Option<&PathBuf>,
) -> (ServerProcess, String) {
    let database = database_url(backend, &format!("{name}_srv")).unwrap();
    let program = env!("CARGO_BIN_EXE_dbsync-test-process");
    let server = ServerProcess::start(program, &database, hang.map(PathBuf::as_path)).await;
    let url = server.url.clone();
    (server, url)
}

/// A folder for a server's push hang points.
fn hang_folder(name: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("dbsync_hang_{name}"));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

async fn wait_for_file(path: PathBuf) {
    for _ in 0..6_000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}

/// A registered node with its own SQLite file, `count` new cities in its log.
async fn node_with_cities(url: &str, name: &str, count: usize) -> Client {
    let db = tracked_db(Backend::Sqlite, name).await.unwrap();
    let client = Client::new(db, url);
    client.register().await.unwrap();
    for i in 0..count {
        add_city(client.db(), &format!("{name} {i}")).await;
    }
    client
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

async fn versions(db: &DatabaseConnection) -> i64 {
    count(db, "SELECT COUNT(*) FROM dbsync_versions").await
}

async fn a_server_killed_before_commit_applies_nothing_and_the_push_goes_through_later(
    backend: Backend,
    name: &str,
) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let hang = hang_folder(name);
    let (server, url) = server_process(backend, name, Some(&hang)).await;
    let a = node_with_cities(&url, &format!("{name}_a"), 50).await;
    let pushing = tokio::spawn({
        let a = a.clone();
        async move { a.push().await }
    });
    // The push's rows are written, its transaction is open: the process dies.
    wait_for_file(hang.join("entered")).await;
    server.kill().await;
    assert!(pushing.await.unwrap().is_err(), "the push got no answer");
    assert!(cities(&db).await.is_empty(), "nothing uncommitted survives");
    assert_eq!(versions(&db).await, 0);

    let (_server, url) = server_process(backend, name, None).await;
    let a = Client::new(a.db().clone(), url.clone());
    let report = a.sync().await.unwrap();
    assert!(
        !report.push.unwrap().replayed,
        "the first attempt never committed"
    );
    assert_eq!(cities(&db).await.len(), 50);
    assert_eq!(versions(&db).await, 1);
    assert_eq!(log(a.db()).await, []);
    let b = node_with_cities(&url, &format!("{name}_b"), 0).await;
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(&db).await);
}

/// A proxy in front of `upstream` that forwards requests and, as soon as the server starts
/// answering one (it has committed), reports it and forwards nothing more: the answer dies
/// with the server.
async fn answer_holding_proxy(upstream: &str) -> (String, tokio::sync::mpsc::Receiver<()>) {
    let upstream: std::net::SocketAddr = upstream
        .trim_start_matches("http://")
        .trim_end_matches("/sync")
        .parse()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (answered, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let answered = answered.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut from_client, _to_client) = inbound.split();
                let (mut from_server, mut to_server) = outbound.split();
                let requests = tokio::io::copy(&mut from_client, &mut to_server);
                let first_byte = async {
                    let mut byte = [0u8; 1];
                    let _ = from_server.read(&mut byte).await;
                    let _ = answered.send(()).await;
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    _ = requests => {}
                    _ = first_byte => {}
                }
                let _ = to_server.shutdown().await;
            });
        }
    });
    (format!("http://{address}/sync"), receiver)
}

async fn a_server_killed_after_commit_answers_the_retry_from_its_first_attempt(
    backend: Backend,
    name: &str,
) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let (server, url) = server_process(backend, name, None).await;
    let a = node_with_cities(&url, &format!("{name}_a"), 50).await;
    let (proxy, mut answered) = answer_holding_proxy(&url).await;
    let through_proxy = Client::builder(a.db().clone(), proxy)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let pushing = tokio::spawn(async move { through_proxy.push().await });
    answered.recv().await.unwrap();
    server.kill().await;
    assert!(pushing.await.unwrap().is_err(), "the answer never arrived");
    assert_eq!(cities(&db).await.len(), 50, "the push had committed");
    assert_eq!(log(a.db()).await.len(), 50, "the node does not know it yet");

    let (_server, url) = server_process(backend, name, None).await;
    let a = Client::new(a.db().clone(), url);
    let report = a.sync().await.unwrap();
    assert!(
        report.push.unwrap().replayed,
        "answered from the first attempt"
    );
    assert_eq!(cities(&db).await.len(), 50, "nothing applied twice");
    assert_eq!(versions(&db).await, 1);
    assert_eq!(log(a.db()).await, []);
    assert_eq!(cities(a.db()).await, cities(&db).await);
}

async fn a_client_killed_mid_push_finds_its_push_applied_once(backend: Backend, name: &str) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let hang = hang_folder(name);
    let (_server, url) = server_process(backend, name, Some(&hang)).await;
    let a_name = format!("{name}_a");
    let a = node_with_cities(&url, &a_name, 50).await;
    let node_url = database_url(Backend::Sqlite, &a_name).unwrap();
    let pushing = Process::spawn(&["client", &node_url, &url, "push", "100"]);
    // The server holds the push; the client process dies waiting for the answer.
    wait_for_file(hang.join("entered")).await;
    pushing.kill().await;
    std::fs::write(hang.join("release"), b"").unwrap();
    for _ in 0..1_000 {
        if versions(&db).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cities(&db).await.len(), 50, "the server finished the push");

    // The node restarts: a new connection pool on its file.
    let restarted = Client::new(dbsync_tests::connect(&node_url).await, url);
    let report = restarted.sync().await.unwrap();
    assert!(report.push.unwrap().replayed);
    assert_eq!(cities(&db).await.len(), 50);
    assert_eq!(versions(&db).await, 1);
    assert_eq!(log(restarted.db()).await, []);
    assert_eq!(cities(a.db()).await, cities(&db).await);
}

/// The node's state seen from a fresh connection: its version and its cities.
async fn node_state(file_url: &str) -> (i64, Vec<(i32, String)>) {
    let db = dbsync_tests::connect(file_url).await;
    let version = count(&db, "SELECT version FROM dbsync_node").await;
    let rows = cities(&db).await;
    db.close().await.unwrap();
    (version, rows)
}

/// Kills a client process running `procedure` on `node` at several points: on its first
/// page, and at growing delays after it starts applying, until one is too late. Each time
/// the node must hold either nothing of the procedure or all of it, and at least one kill
/// must have left a hot journal behind (it landed inside the write transaction). Returns how
/// many kills landed before the procedure finished.
async fn kill_repeatedly(
    node: &str,
    server_url: &str,
    procedure: &str,
    before: &(i64, Vec<(i32, String)>),
    after: &[(i32, String)],
) -> usize {
    let node_url = database_url(Backend::Sqlite, node).unwrap();
    let mut interrupted = 0;
    let mut mid_transaction = 0;
    let delays = [0, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1_280, 5_000];
    for delay in std::iter::once(None).chain(delays.map(Some)) {
        let mut child = Process::spawn(&["client", &node_url, server_url, procedure, "200"]);
        let point = match delay {
            None => "progress Downloading",
            Some(_) => "progress Applying",
        };
        let reached = child.wait_for(point).await.is_some();
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        child.kill().await;
        let file = dbsync_tests::sqlite_path(node);
        let hot = ["-journal", "-wal"].iter().any(|suffix| {
            std::fs::metadata(format!("{}{suffix}", file.display())).is_ok_and(|m| m.len() > 0)
        });
        mid_transaction += usize::from(hot);
        let state = node_state(&node_url).await;
        eprintln!(
            "{procedure} killed at {point} + {delay:?} ms (journal left: {hot}): {}",
            if state == *before {
                "nothing applied"
            } else {
                "all applied"
            }
        );
        if state == *before {
            interrupted += usize::from(reached);
            continue;
        }
        assert_eq!(
            state.1, after,
            "{procedure} killed after {delay:?}: all or nothing"
        );
        assert!(state.0 > before.0);
        break;
    }
    assert!(
        mid_transaction >= 1,
        "at least one kill landed inside the apply transaction"
    );
    interrupted
}

async fn a_client_killed_mid_pull_keeps_all_or_nothing_and_the_next_pull_completes(
    backend: Backend,
    name: &str,
) {
    killed_mid_download(backend, name, "pull").await;
}

async fn a_client_killed_mid_repair_keeps_all_or_nothing_and_the_next_repair_completes(
    backend: Backend,
    name: &str,
) {
    killed_mid_download(backend, name, "repair").await;
}

/// A node downloads 3,000 rows by `procedure` in a client process killed again and again
/// (see [`kill_repeatedly`]); then the procedure, run to its end, leaves it equal to the
/// server with nothing to push.
async fn killed_mid_download(backend: Backend, name: &str, procedure: &str) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let (_server, url) = server_process(backend, name, None).await;
    let a = node_with_cities(&url, &format!("{name}_a"), 3_000).await;
    a.push().await.unwrap();
    let b_name = format!("{name}_b");
    let b = node_with_cities(&url, &b_name, 0).await;
    b.db().clone().close().await.unwrap();
    // WAL, which `create_all` sets, keeps a transaction that is not committed in memory and
    // leaves no file to show that a kill landed inside it; the rollback journal leaves one.
    // Leaving WAL takes the only connection to the file.
    let b_url = database_url(Backend::Sqlite, &b_name).unwrap();
    let alone = dbsync_tests::connect(&b_url).await;
    alone
        .execute_unprepared("PRAGMA journal_mode = DELETE")
        .await
        .unwrap();
    alone.close().await.unwrap();
    let all = cities(&db).await;
    let interrupted = kill_repeatedly(&b_name, &url, procedure, &(0, Vec::new()), &all).await;
    assert!(interrupted >= 1, "at least the first-page kill interrupts");

    let b = Client::new(dbsync_tests::connect(&b_url).await, url);
    match procedure {
        "pull" => drop(b.pull().await.unwrap()),
        _ => drop(b.repair(dbsync::UnsyncedPolicy::Refuse).await.unwrap()),
    }
    assert_eq!(cities(b.db()).await, all);
    assert_eq!(b.version().await.unwrap(), a.version().await.unwrap());
    assert_eq!(log(b.db()).await, []);
}
