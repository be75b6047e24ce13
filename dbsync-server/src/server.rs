//! [`SyncServer`]: the database, the registry, the limits and the hooks every handler uses.

use crate::config::{AuthorizeHook, Procedure, PushHook, RequestInfo, ServerConfig};
use crate::error::ServerError;
use crate::schema;
use dbsync::messages::{PROTOCOL_VERSION, RequestMeta, SignedRequest, now_millis, verify};
use dbsync::{Registry, Role};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The server side of dbsync: one value, cheap to clone, that adapters hold in their state.
///
/// It keeps no state of its own between requests: versions, nodes and nonces live in the
/// database, so several processes can serve one PostgreSQL database.
#[derive(Clone)]
pub struct SyncServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: DatabaseConnection,
    pub(crate) registry: &'static Registry,
    pub(crate) config: ServerConfig,
    pub(crate) authorize: Option<AuthorizeHook>,
    pub(crate) before_push: Option<PushHook>,
    pub(crate) after_push: Option<PushHook>,
}

impl std::fmt::Debug for SyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServer")
            .field("backend", &self.inner.db.get_database_backend())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SyncServer {
    /// A server over `db` for every tracked entity of the program, with default limits.
    pub fn new(db: DatabaseConnection) -> Self {
        SyncServer::builder(db).build()
    }

    /// A [`SyncServerBuilder`] to set limits, hooks or an explicit registry.
    pub fn builder(db: DatabaseConnection) -> SyncServerBuilder {
        SyncServerBuilder {
            inner: Inner {
                db,
                registry: Registry::global(),
                config: ServerConfig::default(),
                authorize: None,
                before_push: None,
                after_push: None,
            },
        }
    }

    /// Creates dbsync's server tables and installs change capture on every tracked table, so
    /// that the application's own writes on the server reach the nodes too. Idempotent: run
    /// it on every start, after the application's migrations.
    pub async fn setup(&self) -> Result<(), ServerError> {
        let db = &self.inner.db;
        dbsync::create_all_with(db, self.inner.registry, Role::Server).await?;
        let backend = db.get_database_backend();
        let txn = db.begin().await?;
        if backend == DbBackend::Postgres {
            // Replicas starting together: the same lock as `create_all`, so that their
            // `CREATE ... IF NOT EXISTS` queue instead of colliding in the catalog.
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7381402113)")
                .await?;
        }
        for sql in schema::statements(backend) {
            txn.execute_unprepared(sql).await?;
        }
        txn.commit().await?;
        if backend == DbBackend::MySql {
            let exists: Option<i64> = scalar(
                db,
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = 'dbsync_operations' AND INDEX_NAME = 'dbsync_operations_version'",
                vec![],
            )
            .await?;
            if exists.unwrap_or(0) == 0 {
                db.execute_unprepared(schema::MYSQL_VERSION_INDEX).await?;
            }
        }
        Ok(())
    }

    /// The limits.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The server's latest version.
    pub async fn latest_version(&self) -> Result<i64, ServerError> {
        stamp_pending(&self.inner.db).await?;
        Ok(scalar(
            &self.inner.db,
            "SELECT latest_version FROM dbsync_server_state WHERE id = 1",
            vec![],
        )
        .await?
        .unwrap_or(0))
    }

    /// Checks a signed request and decodes its body: size, node, signature, protocol,
    /// timestamp, nonce, then the authorization hook.
    pub(crate) async fn authenticate<T>(
        &self,
        procedure: Procedure,
        request: &SignedRequest,
        meta: impl Fn(&T) -> &RequestMeta,
    ) -> Result<T, ServerError>
    where
        T: DeserializeOwned,
    {
        let limit = self.inner.config.max_body_bytes;
        if request.body.len() > limit {
            return Err(ServerError::TooLarge { limit });
        }
        let db = &self.inner.db;
        let secret: Option<String> = scalar(
            db,
            "SELECT secret FROM dbsync_nodes WHERE node_id = $1",
            vec![request.node_id.into()],
        )
        .await?;
        let secret = secret.ok_or(ServerError::UnknownNode(request.node_id))?;
        let unsigned_read = procedure.reads()
            && !self.inner.config.require_signed_reads
            && request.signature.is_empty();
        if !unsigned_read && !verify(&secret, procedure.name(), &request.body, &request.signature) {
            return Err(ServerError::BadSignature);
        }
        let message: T = parse(&request.body)?;
        let meta = meta(&message);
        check_protocol(meta.protocol)?;
        if meta.node_id != request.node_id {
            return Err(ServerError::BadSignature);
        }
        let now = now_millis();
        let window = i64::try_from(self.inner.config.replay_window.as_millis()).unwrap_or(i64::MAX);
        if now.abs_diff(meta.timestamp) > window.unsigned_abs() {
            return Err(ServerError::Replayed(format!(
                "timestamp {} is more than {} ms from the server's clock {now}",
                meta.timestamp, window
            )));
        }
        if meta.nonce.is_empty() || meta.nonce.len() > 64 {
            return Err(ServerError::Malformed(
                "nonce must have 1 to 64 characters".into(),
            ));
        }
        let recorded = db
            .execute_raw(statement(
                db.get_database_backend(),
                "INSERT INTO dbsync_nonces (node_id, nonce, created_at) VALUES ($1, $2, $3)",
                vec![
                    request.node_id.into(),
                    meta.nonce.clone().into(),
                    now.into(),
                ],
            ))
            .await;
        if let Err(err) = recorded {
            return Err(match err.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                    ServerError::Replayed("nonce already used".into())
                }
                _ => err.into(),
            });
        }
        self.authorize(procedure, Some(request.node_id), &meta.extra_data)?;
        Ok(message)
    }

    pub(crate) fn authorize(
        &self,
        procedure: Procedure,
        node_id: Option<i64>,
        extra_data: &serde_json::Value,
    ) -> Result<(), ServerError> {
        match &self.inner.authorize {
            Some(hook) => hook(&RequestInfo {
                procedure,
                node_id,
                extra_data,
            })
            .map_err(ServerError::Unauthorized),
            None => Ok(()),
        }
    }

    /// Forgets nonces older than twice the replay window: requests that old are refused by
    /// their timestamp anyway. One call in 16 does it, at random: a delete is a write
    /// transaction of its own, and the table stays small either way.
    pub(crate) async fn prune_nonces(&self) -> Result<(), ServerError> {
        if rand::random_range(0..16) != 0 {
            return Ok(());
        }
        let db = &self.inner.db;
        let window =
            i64::try_from(self.inner.config.replay_window.as_millis()).unwrap_or(i64::MAX / 4);
        db.execute_raw(statement(
            db.get_database_backend(),
            "DELETE FROM dbsync_nonces WHERE created_at < $1",
            vec![(now_millis() - 2 * window).into()],
        ))
        .await?;
        Ok(())
    }
}

/// Builds a [`SyncServer`].
pub struct SyncServerBuilder {
    inner: Inner,
}

impl std::fmt::Debug for SyncServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServerBuilder").finish_non_exhaustive()
    }
}

impl SyncServerBuilder {
    /// Serves the tables of `registry` instead of every tracked entity of the program.
    pub fn registry(mut self, registry: &'static Registry) -> Self {
        self.inner.registry = registry;
        self
    }

    /// Sets the limits.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.inner.config = config;
        self
    }

    /// Decides, per request, whether a node (or, for `register`, anyone) may proceed.
    pub fn authorize(
        mut self,
        hook: impl Fn(&RequestInfo<'_>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.inner.authorize = Some(Arc::new(hook));
        self
    }

    /// Runs inside each push's transaction before its operations are applied.
    pub fn before_push(mut self, hook: PushHook) -> Self {
        self.inner.before_push = Some(hook);
        self
    }

    /// Runs inside each push's transaction after its operations are applied, with the new
    /// version.
    pub fn after_push(mut self, hook: PushHook) -> Self {
        self.inner.after_push = Some(hook);
        self
    }

    /// The server.
    pub fn build(self) -> SyncServer {
        SyncServer {
            inner: Arc::new(self.inner),
        }
    }
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServerError> {
    serde_json::from_slice(body).map_err(|err| {
        // Another version's message may not parse as this one's: its version says why.
        #[derive(serde::Deserialize)]
        struct Versioned {
            protocol: u32,
        }
        match serde_json::from_slice::<Versioned>(body) {
            Ok(Versioned { protocol }) if protocol != PROTOCOL_VERSION => {
                ServerError::ProtocolMismatch {
                    client: protocol,
                    server: PROTOCOL_VERSION,
                }
            }
            _ => ServerError::Malformed(err.to_string()),
        }
    })
}

pub(crate) fn check_protocol(client: u32) -> Result<(), ServerError> {
    if client != PROTOCOL_VERSION {
        return Err(ServerError::ProtocolMismatch {
            client,
            server: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// A statement written with `$n` placeholders, rewritten for backends that use `?`.
/// `name` quoted as an identifier for `backend`.
pub(crate) fn quote(backend: DbBackend, name: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `expr` read as a 64-bit integer: PostgreSQL keeps a 32-bit column's type.
pub(crate) fn as_bigint(backend: DbBackend, expr: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST({expr} AS BIGINT)"),
        _ => expr.to_owned(),
    }
}

pub(crate) fn statement(backend: DbBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        sql.to_owned()
    } else {
        let mut out = String::with_capacity(sql.len());
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The rows of `sql` (with `$n` placeholders) as `T`s, read through one JSON aggregate
/// where the database can build it (`dbsync::__private::select_json`).
pub(crate) async fn select_json<T: serde::de::DeserializeOwned, C: ConnectionTrait>(
    db: &C,
    sql: &str,
    columns: &[&str],
    values: Vec<sea_orm::Value>,
) -> Result<Vec<T>, ServerError> {
    let query = statement(db.get_database_backend(), sql, values);
    let values = query.values.map(|v| v.0).unwrap_or_default();
    Ok(dbsync::__private::select_json(db, &query.sql, columns, values).await?)
}

/// The first column of the first row, `None` for no row or `NULL`.
pub(crate) async fn scalar<T: sea_orm::TryGetable, C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Option<T>, ServerError> {
    let row = db
        .query_one_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    match row {
        Some(row) => Ok(row.try_get_by_index::<Option<T>>(0)?),
        None => Ok(None),
    }
}

/// The server's counters, as one statement reads them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counters {
    /// The latest version.
    pub(crate) latest: i64,
    /// The version up to which operations were trimmed.
    pub(crate) trimmed: i64,
}

/// Locks the version counter for the rest of `txn` and returns the latest version. Every
/// version assignment goes through here, so concurrent pushes, from any number of server
/// processes, get consecutive versions in commit order.
pub(crate) async fn lock_latest(txn: &DatabaseTransaction) -> Result<i64, ServerError> {
    Ok(lock_counters(txn).await?.latest)
}

/// [`lock_latest`], reading the trimmed version in the same statement: every statement a
/// push makes holding the lock is a round trip every other push waits for.
pub(crate) async fn lock_counters(txn: &DatabaseTransaction) -> Result<Counters, ServerError> {
    let backend = txn.get_database_backend();
    // SQLite locks the whole database for the first write; take it at once.
    if backend == DbBackend::Sqlite {
        txn.execute_unprepared(
            "UPDATE dbsync_server_state SET latest_version = latest_version WHERE id = 1",
        )
        .await?;
        return read_counters(txn, "").await;
    }
    read_counters(txn, " FOR UPDATE").await
}

/// The server's counters, without locking anything (see [`lock_counters`]).
pub(crate) async fn counters<C: ConnectionTrait>(db: &C) -> Result<Counters, ServerError> {
    read_counters(db, "").await
}

async fn read_counters<C: ConnectionTrait>(db: &C, lock: &str) -> Result<Counters, ServerError> {
    let sql = format!(
        "SELECT latest_version, trimmed_version FROM dbsync_server_state WHERE id = 1{lock}"
    );
    let row = db
        .query_one_raw(statement(db.get_database_backend(), &sql, vec![]))
        .await?
        .ok_or_else(|| ServerError::Internal("dbsync_server_state has no row".into()))?;
    Ok(Counters {
        latest: row.try_get_by_index(0)?,
        trimmed: row.try_get_by_index(1)?,
    })
}

/// Records `version` as the latest. `false` when `push_id` already has a version: another
/// attempt of the same push committed while this one waited for the version lock.
pub(crate) async fn set_latest(
    txn: &DatabaseTransaction,
    version: i64,
    node_id: Option<i64>,
    push_id: Option<&str>,
) -> Result<bool, ServerError> {
    let backend = txn.get_database_backend();
    let values = vec![
        version.into(),
        node_id.into(),
        push_id.map(str::to_owned).into(),
        now_millis().into(),
    ];
    let insert = "INSERT INTO dbsync_versions (version_id, node_id, push_id, created_at) \
                  VALUES ($1, $2, $3, $4)";
    let update = "UPDATE dbsync_server_state SET latest_version = $1 WHERE id = 1";
    let taken = |err: &sea_orm::DbErr| {
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        )
    };
    // One round trip where the database can take both: the version lock is held.
    let inserted = if backend == DbBackend::Postgres {
        let sql = format!("WITH v AS ({insert}) {update}");
        txn.execute_raw(statement(backend, &sql, values)).await
    } else {
        txn.execute_raw(statement(backend, insert, values)).await
    };
    match inserted {
        Ok(_) => {}
        Err(err) if push_id.is_some() && taken(&err) => return Ok(false),
        Err(err) => return Err(err.into()),
    }
    if backend != DbBackend::Postgres {
        txn.execute_raw(statement(backend, update, vec![version.into()]))
            .await?;
    }
    Ok(true)
}

/// Stamped entries past which the log is vacuumed at once (see [`stamp_pending`]).
const MASS_STAMP: u64 = 10_000;

/// Gives the operations the server application's own writes logged (they have no version
/// yet) a version of their own, so that nodes pull them.
pub(crate) async fn stamp_pending(db: &DatabaseConnection) -> Result<(), ServerError> {
    let pending: Option<i64> = scalar(
        db,
        "SELECT seq FROM dbsync_operations WHERE version_id IS NULL LIMIT 1",
        vec![],
    )
    .await?;
    if pending.is_none() {
        return Ok(());
    }
    let txn = db.begin().await?;
    let latest = lock_latest(&txn).await?;
    let version = latest + 1;
    let stamped = txn
        .execute_raw(statement(
            txn.get_database_backend(),
            "UPDATE dbsync_operations SET version_id = $1 WHERE version_id IS NULL",
            vec![version.into()],
        ))
        .await?;
    if stamped.rows_affected() > 0 {
        set_latest(&txn, version, None, None).await?;
        txn.commit().await?;
        tracing::debug!(
            version,
            operations = stamped.rows_affected(),
            "server writes versioned"
        );
        if stamped.rows_affected() >= MASS_STAMP && db.get_database_backend() == DbBackend::Postgres
        {
            // Stamping rewrote every entry, and the old versions' index entries stay until a
            // vacuum: until autovacuum comes, the check above (on every request) would walk
            // them all, tens of milliseconds for a bulk load. Vacuuming blocks no reader or
            // writer, and this request need not wait for it.
            let db = db.clone();
            let vacuum = async move {
                if let Err(err) = db.execute_unprepared("VACUUM dbsync_operations").await {
                    tracing::warn!(%err, "vacuuming the log after a bulk write failed");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(vacuum)),
                Err(_) => vacuum.await,
            }
        }
    }
    Ok(())
}

/// What [`mark_seen`] and [`mark_read`] write: the node's last request, and its version if
/// higher.
const SEEN: &str = "UPDATE dbsync_nodes SET last_seen = $1, \
     pulled_version = CASE WHEN pulled_version < $2 THEN $3 ELSE pulled_version END";

/// Records that `node_id` has every version up to `version` (it pulled, pushed or repaired to
/// it): trimming keeps what the least advanced active node still needs.
pub(crate) async fn mark_seen<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    version: i64,
) -> Result<(), ServerError> {
    db.execute_raw(statement(
        db.get_database_backend(),
        &format!("{SEEN} WHERE node_id = $4"),
        seen_values(node_id, version),
    ))
    .await?;
    Ok(())
}

/// [`mark_seen`] as a transaction of its own, after a pull or a repair: on PostgreSQL it
/// commits without waiting for the disk (about 1 ms of each pull). A crash may lose the
/// last few: a node then counts as less advanced than it is, which delays trimming, or as
/// last seen earlier, which may make a node near the inactivity cutoff repair; no row is
/// lost either way.
pub(crate) async fn mark_read(
    db: &DatabaseConnection,
    node_id: i64,
    version: i64,
) -> Result<(), ServerError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return mark_seen(db, node_id, version).await;
    }
    // `set_config` local to the statement's own transaction, which ends with the statement.
    db.execute_raw(statement(
        DbBackend::Postgres,
        &format!(
            "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) \
             {SEEN} FROM relaxed WHERE node_id = $4"
        ),
        seen_values(node_id, version),
    ))
    .await?;
    Ok(())
}

fn seen_values(node_id: i64, version: i64) -> Vec<sea_orm::Value> {
    vec![
        now_millis().into(),
        version.into(),
        version.into(),
        node_id.into(),
    ]
}
