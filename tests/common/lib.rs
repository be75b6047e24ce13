//! Shared pieces of dbsync's integration tests: fixture entities, a fresh database per test
//! on each backend, and readable views of the operations log.
//!
//! SQLite tests always run. PostgreSQL and MariaDB/MySQL tests run when
//! `DBSYNC_TEST_POSTGRES` / `DBSYNC_TEST_MYSQL` hold a server URL without a database
//! (`.ci/run` sets both); otherwise they print why they skip and pass.

pub mod entities;
pub mod fixtures;
pub mod harness;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use std::time::Duration;

/// The databases a test can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    fn env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("DBSYNC_TEST_POSTGRES"),
            Backend::MySql => Some("DBSYNC_TEST_MYSQL"),
        }
    }
}

fn options(url: String) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    // No idle reaper: sqlx 0.9's can spin at 100% CPU once many pools were opened
    // (rust-ecosystem.md section 8), and a test suite opens many.
    options
        .max_connections(8)
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        .sqlx_logging(false);
    options
}

/// The database name a test's `name` maps to: MySQL allows 64 characters, so long names
/// keep a hash suffix.
fn db_name(name: &str) -> String {
    let mut name = format!("dbsync_{}", name.replace([':', '-'], "_")).to_lowercase();
    if name.len() > 60 {
        let hash = name
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        name = format!("{}_{hash:08x}", &name[..50]);
    }
    name
}

/// The file of the SQLite database `fresh_db(Backend::Sqlite, name)` creates.
pub fn sqlite_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.db", db_name(name)))
}

/// A new, empty database named after the test, or `None` (with the reason printed) when the
/// backend is not configured. SQLite databases are files in the system temp folder, so that
/// several connections see the same data, as in an application.
pub async fn fresh_db(backend: Backend, name: &str) -> Option<DatabaseConnection> {
    let name = db_name(name);
    let url = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
        _ => {
            let var = backend.env().expect("server backends have a variable");
            let Ok(base) = std::env::var(var) else {
                eprintln!("skipped on {backend:?}: set {var} to a server URL to run it");
                return None;
            };
            let base = base.trim_end_matches('/').to_owned();
            let admin = Database::connect(options(match backend {
                Backend::Postgres => format!("{base}/postgres"),
                _ => base.clone(),
            }))
            .await
            .expect("connect to the test server");
            let drop = match backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            admin.execute_unprepared(&drop).await.expect("drop test db");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test db");
            admin.close().await.expect("close admin connection");
            format!("{base}/{name}")
        }
    };
    Some(connect(&url).await)
}

/// The URL of the database `fresh_db(backend, name)` creates, for a process of its own to
/// connect to, or `None` when the backend is not configured.
pub fn database_url(backend: Backend, name: &str) -> Option<String> {
    let name = db_name(name);
    match backend {
        Backend::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            std::env::temp_dir().join(format!("{name}.db")).display()
        )),
        _ => {
            let base = std::env::var(backend.env()?).ok()?;
            Some(format!("{}/{name}", base.trim_end_matches('/')))
        }
    }
}

/// A connection pool to `url` with the tests' settings.
pub async fn connect(url: &str) -> DatabaseConnection {
    Database::connect(options(url.to_owned()))
        .await
        .expect("connect")
}

/// A connection pool for a long-running server process: the tests' settings, and, for a
/// database server, a few connections opened up front, as a production server keeps its
/// pool warm. A connection opened on demand costs a request about 4 ms on 127.0.0.1, and
/// about 90 ms when it negotiates TLS (PostgreSQL's default): sqlx 0.9.0 leaves Nagle's
/// algorithm on, and the handshake waits on delayed acknowledgements. A handler's
/// connection goes back to the pool in a task of its own, so the next statement of the
/// same request may find none idle. A SQLite connection opens in microseconds, and more of
/// them only spread the work over more cold caches.
pub async fn connect_server(url: &str) -> DatabaseConnection {
    let mut options = options(url.to_owned());
    if !url.starts_with("sqlite:") {
        options.min_connections(4);
    }
    Database::connect(options).await.expect("connect")
}

/// Creates the fixture tables with SeaORM's schema builder, as an application would.
pub async fn create_fixture_tables(db: &DatabaseConnection) {
    use entities::*;
    db.get_schema_builder()
        .register(city::Entity)
        .register(person::Entity)
        .register(pet::Entity)
        .register(house::Entity)
        .register(tag::Entity)
        .register(note::Entity)
        .register(every_type::Entity)
        .apply(db)
        .await
        .expect("create fixture tables");
}

/// A fresh database with the fixture tables and dbsync installed.
pub async fn tracked_db(backend: Backend, name: &str) -> Option<DatabaseConnection> {
    let db = fresh_db(backend, name).await?;
    create_fixture_tables(&db).await;
    dbsync::create_all(&db).await.expect("create_all");
    Some(db)
}

/// The raw log as `(table, row_id, command letter)`, oldest first.
pub async fn log(db: &impl ConnectionTrait) -> Vec<(String, i64, &'static str)> {
    let registry = dbsync::Registry::global();
    dbsync::unsynced_operations(db)
        .await
        .expect("read log")
        .into_iter()
        .map(|op| {
            let table = registry
                .by_content_type(op.content_type_id)
                .map_or("?".to_owned(), |t| t.name.clone());
            (table, op.row_id, op.command.letter())
        })
        .collect()
}

/// Builds the expected log from `(table, row_id, letter)` literals.
pub fn ops(expected: &[(&str, i64, &'static str)]) -> Vec<(String, i64, &'static str)> {
    expected
        .iter()
        .map(|&(t, id, c)| (t.to_owned(), id, c))
        .collect()
}

/// The backend of a connection, for tests whose expectations differ per database.
pub fn backend_of(db: &impl ConnectionTrait) -> Backend {
    match db.get_database_backend() {
        DbBackend::Sqlite => Backend::Sqlite,
        DbBackend::Postgres => Backend::Postgres,
        _ => Backend::MySql,
    }
}

/// Runs one async scenario on each backend as its own test.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::Backend;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { super::$name(Backend::Sqlite, concat!(stringify!($name), "_sqlite")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { super::$name(Backend::Postgres, concat!(stringify!($name), "_pg")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() { super::$name(Backend::MySql, concat!(stringify!($name), "_my")).await }
            }
        )*
    };
}
