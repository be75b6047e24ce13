//! [`Client`]: a node's side of the protocol over HTTP(S), one file per procedure.

mod merge;
mod pull;
mod pull_direct;
mod push;
mod query;
mod register;
mod rekey;
mod repair;
mod staging;
mod transport;

pub use pull::PullReport;
pub use push::PushReport;
pub use repair::{RepairReport, UnsyncedPolicy};

use crate::error::{Error, Result};
use crate::merge::ConflictPolicy;
use crate::messages::{Compression, PROTOCOL_VERSION, RequestMeta, nonce, now_millis};
use crate::node_state::{self, NodeState};
use crate::registry::Registry;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::time::Duration;

/// What a long procedure reports while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The procedure: `"pull"` or `"repair"`.
    pub procedure: &'static str,
    /// What it is doing.
    pub phase: Phase,
    /// Operations (pull) or rows (repair) so far.
    pub items: u64,
    /// Bytes received so far.
    pub bytes: u64,
}

/// The phase of a long procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Receiving pages from the server.
    Downloading,
    /// Writing what was received, in one transaction.
    Applying,
    /// Finished.
    Done,
}

type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;
type AuthFn = Arc<dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Send + Sync>;

/// A node of a dbsync network: its local database and the server it syncs with.
///
/// ```no_run
/// # async fn run(db: sea_orm::DatabaseConnection) -> dbsync::Result<()> {
/// let client = dbsync::Client::new(db, "https://example.org/sync");
/// if !client.is_registered().await? {
///     client.register().await?;
/// }
/// client.sync().await?; // push; if the server moved on: pull, merge, push again
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    base_url: String,
    http: reqwest::Client,
    registry: &'static Registry,
    extra_data: serde_json::Value,
    headers: Vec<(String, String)>,
    auth: Option<AuthFn>,
    progress: Option<ProgressFn>,
    page_size: u32,
    staging_memory: usize,
    max_sync_attempts: u32,
    policies: merge::Policies,
    compression: Compression,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server whose dbsync routes are under `base_url` (for example
    /// `https://example.org/sync`), with a 30-second timeout.
    ///
    /// # Panics
    ///
    /// If `db` is not SQLite; [`Client::builder`] returns that as an error instead.
    pub fn new(db: DatabaseConnection, base_url: impl Into<String>) -> Client {
        Client::builder(db, base_url)
            .build()
            .expect("a node's database is SQLite")
    }

    /// A [`ClientBuilder`] to set timeouts, headers, authentication and progress reporting.
    pub fn builder(db: DatabaseConnection, base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            db,
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            registry: Registry::global(),
            extra_data: serde_json::Value::Null,
            headers: Vec::new(),
            auth: None,
            progress: None,
            page_size: 10_000,
            staging_memory: staging::MEMORY_BUDGET,
            max_sync_attempts: 8,
            policies: merge::Policies::default(),
            compression: Compression::Zstd,
        }
    }

    /// The local database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Whether this node has credentials.
    pub async fn is_registered(&self) -> Result<bool> {
        Ok(node_state::load(&self.inner.db).await?.is_some())
    }

    /// The latest server version this node has.
    pub async fn version(&self) -> Result<i64> {
        Ok(self.node().await?.version)
    }

    /// Push; if the server needs this node to pull first, pull (merging local changes) and
    /// push again, at most a few times; then pull whatever the node has not seen yet (the
    /// server may apply a push on top of versions the node has not pulled, when they touch
    /// none of its rows). With nothing to push, just pull.
    #[tracing::instrument(name = "dbsync.client.sync", skip_all)]
    pub async fn sync(&self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut refused = 0;
        // Whether the node has versions left to pull: always when there was nothing to push,
        // and after a push the server applied on top of versions the node had not seen.
        let mut behind = true;
        while refused < self.inner.max_sync_attempts {
            match self.push().await {
                Ok(push) if push.operations == 0 => {
                    if behind {
                        report.pulls.push(self.pull().await?);
                    }
                    return Ok(report);
                }
                // A long backlog goes in several pushes.
                Ok(push) => {
                    behind = push.rebased;
                    report.push = Some(push);
                }
                Err(Error::PullSuggested { .. }) => {
                    refused += 1;
                    if refused > 1 {
                        // Nodes that keep losing the race to push back off by a random delay, so
                        // that under contention they take turns instead of colliding again.
                        let ceiling = 25u64 << (refused - 1).min(5);
                        let delay = rand::random_range(0..=ceiling);
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    report.pulls.push(self.pull().await?);
                }
                Err(err) => return Err(err),
            }
        }
        Err(Error::PullSuggested {
            message: format!(
                "the server kept moving on during {} attempts",
                self.inner.max_sync_attempts
            ),
        })
    }

    async fn node(&self) -> Result<NodeState> {
        node_state::load(&self.inner.db)
            .await?
            .ok_or(Error::NotRegistered)
    }

    fn meta(&self, node_id: i64) -> RequestMeta {
        RequestMeta {
            protocol: PROTOCOL_VERSION,
            node_id,
            timestamp: now_millis(),
            nonce: nonce(),
            extra_data: self.inner.extra_data.clone(),
        }
    }

    fn report(&self, progress: Progress) {
        if let Some(callback) = &self.inner.progress {
            callback(&progress);
        }
    }
}

/// What [`Client::sync`] did.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SyncReport {
    /// The push that was accepted, if there was anything to push.
    pub push: Option<PushReport>,
    /// Every pull, in order.
    pub pulls: Vec<PullReport>,
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    db: DatabaseConnection,
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    registry: &'static Registry,
    extra_data: serde_json::Value,
    headers: Vec<(String, String)>,
    auth: Option<AuthFn>,
    progress: Option<ProgressFn>,
    page_size: u32,
    staging_memory: usize,
    max_sync_attempts: u32,
    policies: merge::Policies,
    compression: Compression,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The longest a request may take, answer included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Syncs the tables of `registry` instead of every tracked entity of the program.
    pub fn registry(mut self, registry: &'static Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Application data sent with every request, for the server's authorization hook.
    pub fn extra_data(mut self, extra_data: serde_json::Value) -> Self {
        self.extra_data = extra_data;
        self
    }

    /// A header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Called on every request before it is sent, to add authentication (a bearer token,
    /// basic auth, ...).
    pub fn auth(
        mut self,
        callback: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Send + Sync + 'static,
    ) -> Self {
        self.auth = Some(Arc::new(callback));
        self
    }

    /// Called as pulls and repairs progress, on the task that runs them: it should return
    /// quickly (hand the figures to a channel), as it holds up the procedure meanwhile.
    pub fn progress(mut self, callback: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(callback));
        self
    }

    /// Operations (pull) or rows (repair) asked per page (default 10,000).
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// How many bytes of downloaded rows (counted as JSON) a pull or repair keeps in memory
    /// before it stages them in the node's database (default 32 MiB). Below it a pull writes
    /// each row once; above it memory stays flat however long the history.
    pub fn staging_memory(mut self, bytes: usize) -> Self {
        self.staging_memory = bytes;
        self
    }

    /// How request bodies over 1 KiB are compressed, and whether answers may be (default
    /// [`Compression::Zstd`]). dbsync's server speaks zstd and gzip; [`Compression::None`]
    /// suits a proxy that cannot pass compressed bodies.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// How many pushes [`Client::sync`] tries before giving up (default 8). After the second
    /// refusal it waits a random, growing delay before pulling again, so that nodes racing to
    /// push take turns.
    pub fn max_sync_attempts(mut self, attempts: u32) -> Self {
        self.max_sync_attempts = attempts.max(1);
        self
    }

    /// Who wins when the server and this node changed the same row (default
    /// [`ConflictPolicy::LocalWins`]), for every table without a policy of its own.
    pub fn conflict_policy(mut self, policy: ConflictPolicy) -> Self {
        self.policies.default = policy;
        self
    }

    /// Who wins conflicts on entity `E`'s table.
    pub fn conflict_policy_for<E: crate::Tracked>(mut self, policy: ConflictPolicy) -> Self {
        self.policies.by_table.insert(
            sea_orm::EntityName::table_name(&E::default()).to_owned(),
            policy,
        );
        self
    }

    /// The client. Fails if the local database is not SQLite (a node's database is embedded;
    /// the merge relies on SQLite's single writer and deferred foreign keys) or the TLS
    /// backend cannot initialise.
    pub fn build(self) -> Result<Client> {
        let backend = self.db.get_database_backend();
        if backend != sea_orm::DbBackend::Sqlite {
            return Err(Error::UnsupportedBackend(format!(
                "{backend:?}: a node's local database must be SQLite (servers may use any)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|err| Error::Offline(err.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                db: self.db,
                base_url: self.base_url.trim_end_matches('/').to_owned(),
                http,
                registry: self.registry,
                extra_data: self.extra_data,
                headers: self.headers,
                auth: self.auth,
                progress: self.progress,
                page_size: self.page_size,
                staging_memory: self.staging_memory,
                max_sync_attempts: self.max_sync_attempts,
                policies: self.policies,
                compression: self.compression,
            }),
        })
    }
}
