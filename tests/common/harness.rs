//! A real server on 127.0.0.1 and clients with their own SQLite files.

use crate::{Backend, create_fixture_tables, fresh_db, tracked_db};
use dbsync::Client;
use dbsync_server::{SyncServer, SyncServerBuilder};
use sea_orm::DatabaseConnection;

/// Which web framework serves the handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    Axum,
    Actix,
}

/// A server listening on 127.0.0.1; it stops when the test's runtime ends.
pub struct TestServer {
    pub url: String,
    pub server: SyncServer,
}

impl TestServer {
    pub fn db(&self) -> &DatabaseConnection {
        self.server.db()
    }

    /// The server's versions, in order.
    pub async fn versions(&self) -> Vec<i64> {
        use sea_orm::ConnectionTrait;
        let rows = self
            .db()
            .query_all_raw(sea_orm::Statement::from_string(
                self.db().get_database_backend(),
                "SELECT version_id FROM dbsync_versions ORDER BY version_id",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect()
    }
}

/// The server database for a test: the fixture tables, as the server application creates
/// them, or `None` when the backend is not configured.
pub async fn server_db(backend: Backend, name: &str) -> Option<DatabaseConnection> {
    let db = fresh_db(backend, &format!("{name}_srv")).await?;
    create_fixture_tables(&db).await;
    Some(db)
}

/// Starts a default server.
pub async fn start(backend: Backend, adapter: Adapter, name: &str) -> Option<TestServer> {
    let db = server_db(backend, name).await?;
    Some(serve(SyncServer::builder(db), adapter).await)
}

/// Sets up and serves `builder`'s server on a free port.
pub async fn serve(builder: SyncServerBuilder, adapter: Adapter) -> TestServer {
    let server = builder.build();
    server.setup().await.expect("server setup");
    let url = match adapter {
        Adapter::Axum => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let app =
                axum::Router::new().nest("/sync", dbsync_server::axum::router(server.clone()));
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{address}/sync")
        }
        Adapter::Actix => {
            let (sender, receiver) = std::sync::mpsc::channel();
            let served = server.clone();
            std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let http = actix_web::HttpServer::new(move || {
                        actix_web::App::new().service(
                            actix_web::web::scope("/sync")
                                .configure(dbsync_server::actix::configure(served.clone())),
                        )
                    })
                    .workers(2)
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                    sender.send(http.addrs()[0]).unwrap();
                    http.run().await
                })
            });
            let address = receiver.recv().unwrap();
            format!("http://{address}/sync")
        }
    };
    TestServer { url, server }
}

/// A registered client with its own SQLite file.
pub async fn client(server: &TestServer, name: &str) -> Client {
    let client = unregistered_client(server, name).await;
    client.register().await.expect("register");
    client
}

/// A client that has not registered yet.
pub async fn unregistered_client(server: &TestServer, name: &str) -> Client {
    let db = tracked_db(Backend::Sqlite, name)
        .await
        .expect("sqlite is always there");
    Client::new(db, server.url.clone())
}

/// Runs one async scenario against each server backend and adapter, as its own test.
#[macro_export]
macro_rules! on_every_server {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::Backend;
                use $crate::harness::Adapter;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_axum() { super::$name(Backend::Sqlite, Adapter::Axum, concat!(stringify!($name), "_sa")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_axum() { super::$name(Backend::Postgres, Adapter::Axum, concat!(stringify!($name), "_pa")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql_axum() { super::$name(Backend::MySql, Adapter::Axum, concat!(stringify!($name), "_ma")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_actix() { super::$name(Backend::Sqlite, Adapter::Actix, concat!(stringify!($name), "_sx")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_actix() { super::$name(Backend::Postgres, Adapter::Actix, concat!(stringify!($name), "_px")).await }
            }
        )*
    };
}

/// Runs `procedure` on a client of the node database `node` (a test name) built in a thread
/// and runtime of its own, so that its progress callback may block without stalling the
/// test's runtime. Join the handle from a blocking task.
pub fn on_own_thread<T, F, Fut>(
    node: &str,
    url: &str,
    configure: impl FnOnce(dbsync::ClientBuilder) -> dbsync::ClientBuilder + Send + 'static,
    procedure: F,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let file = crate::database_url(crate::Backend::Sqlite, node).unwrap();
    let url = url.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let db = crate::connect(&file).await;
                let client = configure(Client::builder(db, url)).build().unwrap();
                procedure(client).await
            })
    })
}

/// A server in a process of its own (`tests/bin/process.rs`, axum), killed when dropped.
pub struct ServerProcess {
    /// Where its routes are, like [`TestServer::url`].
    pub url: String,
    child: tokio::process::Child,
}

impl ServerProcess {
    /// Starts `program` (the test's `env!("CARGO_BIN_EXE_dbsync-test-process")`) serving
    /// `database_url`, with the push hang folder `hang` if given, and waits for its address.
    pub async fn start(program: &str, database_url: &str, hang: Option<&std::path::Path>) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::new(program);
        command.args(["server", database_url]);
        if let Some(folder) = hang {
            command.arg(folder);
        }
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a server process");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("the server starts within a minute")
            .unwrap()
            .expect("the server prints its address");
        ServerProcess {
            url: line.trim_start_matches("listening ").to_owned(),
            child,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to clean anything up.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }
}
