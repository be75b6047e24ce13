//! A node's own bookkeeping: its credentials, the latest server version it has, the push in
//! flight, and the staging table where pulled pages wait to be applied.

use crate::error::Result;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

pub(crate) fn tables(backend: DbBackend) -> Vec<&'static str> {
    // `dbsync_incoming` was the staging table of an earlier layout; staging is transient, so
    // it is simply dropped.
    match backend {
        DbBackend::Sqlite => vec![
            "CREATE TABLE IF NOT EXISTS dbsync_node (id INTEGER PRIMARY KEY CHECK (id = 1), \
             node_id BIGINT NOT NULL, secret TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 0, \
             pending_push TEXT)",
            "DROP TABLE IF EXISTS dbsync_incoming",
            // Keyed by row, without a rowid: a page upserts each row's newest state, and
            // applying reads a table's rows in key order.
            "CREATE TABLE IF NOT EXISTS dbsync_staged (session TEXT NOT NULL, \
             table_name TEXT NOT NULL, row_id INTEGER NOT NULL, command TEXT, data TEXT, \
             created_at INTEGER NOT NULL, PRIMARY KEY (session, table_name, row_id)) WITHOUT ROWID",
            // Repair pages, whole and in order: a snapshot needs no merging.
            "CREATE TABLE IF NOT EXISTS dbsync_staged_pages (session TEXT NOT NULL, \
             page INTEGER NOT NULL, walked TEXT, from_cursor TEXT, next_cursor TEXT, page_rows TEXT NOT NULL, \
             created_at INTEGER NOT NULL, PRIMARY KEY (session, page))",
        ],
        DbBackend::Postgres => vec![
            "CREATE TABLE IF NOT EXISTS dbsync_node (id INTEGER PRIMARY KEY CHECK (id = 1), \
             node_id BIGINT NOT NULL, secret TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 0, \
             pending_push TEXT)",
            "DROP TABLE IF EXISTS dbsync_incoming",
            "CREATE TABLE IF NOT EXISTS dbsync_staged (session TEXT NOT NULL, \
             table_name TEXT NOT NULL, row_id BIGINT NOT NULL, command TEXT, data TEXT, \
             created_at BIGINT NOT NULL, PRIMARY KEY (session, table_name, row_id))",
            "CREATE TABLE IF NOT EXISTS dbsync_staged_pages (session TEXT NOT NULL, \
             page BIGINT NOT NULL, walked TEXT, from_cursor TEXT, next_cursor TEXT, page_rows TEXT NOT NULL, \
             created_at BIGINT NOT NULL, PRIMARY KEY (session, page))",
        ],
        _ => vec![
            "CREATE TABLE IF NOT EXISTS dbsync_node (id INT NOT NULL PRIMARY KEY, \
             node_id BIGINT NOT NULL, secret VARCHAR(128) NOT NULL, version BIGINT NOT NULL DEFAULT 0, \
             pending_push LONGTEXT)",
            "DROP TABLE IF EXISTS dbsync_incoming",
            "CREATE TABLE IF NOT EXISTS dbsync_staged (session VARCHAR(64) NOT NULL, \
             table_name VARCHAR(255) NOT NULL, row_id BIGINT NOT NULL, command CHAR(1), data LONGTEXT, \
             created_at BIGINT NOT NULL, PRIMARY KEY (session, table_name, row_id))",
            "CREATE TABLE IF NOT EXISTS dbsync_staged_pages (session VARCHAR(64) NOT NULL, \
             page BIGINT NOT NULL, walked VARCHAR(255), from_cursor LONGTEXT, next_cursor LONGTEXT, page_rows LONGTEXT NOT NULL, \
             created_at BIGINT NOT NULL, PRIMARY KEY (session, page))",
        ],
    }
}

pub(crate) const DROP: [&str; 4] = [
    "DROP TABLE IF EXISTS dbsync_node",
    "DROP TABLE IF EXISTS dbsync_incoming",
    "DROP TABLE IF EXISTS dbsync_staged",
    "DROP TABLE IF EXISTS dbsync_staged_pages",
];

/// The node's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeState {
    pub node_id: i64,
    pub secret: String,
    pub version: i64,
    pub pending_push: Option<String>,
}

/// A statement written with `?` placeholders, numbered for PostgreSQL.
pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

pub(crate) async fn load<C: ConnectionTrait>(db: &C) -> Result<Option<NodeState>> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT node_id, secret, version, pending_push FROM dbsync_node WHERE id = 1",
        ))
        .await?;
    Ok(match row {
        None => None,
        Some(row) => Some(NodeState {
            node_id: row.try_get_by_index(0)?,
            secret: row.try_get_by_index(1)?,
            version: row.try_get_by_index(2)?,
            pending_push: row.try_get_by_index(3)?,
        }),
    })
}

pub(crate) async fn save_credentials<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    secret: &str,
) -> Result<()> {
    let backend = db.get_database_backend();
    let updated = db
        .execute_raw(stmt(
            backend,
            "UPDATE dbsync_node SET node_id = ?, secret = ? WHERE id = 1",
            vec![node_id.into(), secret.into()],
        ))
        .await?;
    if updated.rows_affected() == 0 {
        db.execute_raw(stmt(
            backend,
            "INSERT INTO dbsync_node (id, node_id, secret, version) VALUES (1, ?, ?, 0)",
            vec![node_id.into(), secret.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Moves the node's version forward, never back: a late answer must not undo a pull.
pub(crate) async fn advance_version<C: ConnectionTrait>(db: &C, version: i64) -> Result<()> {
    db.execute_raw(stmt(
        db.get_database_backend(),
        "UPDATE dbsync_node SET version = ? WHERE id = 1 AND version < ?",
        vec![version.into(), version.into()],
    ))
    .await?;
    Ok(())
}

/// Takes the version a push created if the node had every version before it; returns
/// whether the node is now at `version` or later. A push the server applied on top of
/// versions the node has not pulled leaves the version where it is: those versions still
/// have to come.
pub(crate) async fn take_pushed_version<C: ConnectionTrait>(db: &C, version: i64) -> Result<bool> {
    let backend = db.get_database_backend();
    db.execute_raw(stmt(
        backend,
        "UPDATE dbsync_node SET version = ? WHERE id = 1 AND version = ?",
        vec![version.into(), (version - 1).into()],
    ))
    .await?;
    let row = db
        .query_one_raw(stmt(
            backend,
            "SELECT version FROM dbsync_node WHERE id = 1",
            vec![],
        ))
        .await?;
    let now: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(now >= version)
}

pub(crate) async fn set_version<C: ConnectionTrait>(db: &C, version: i64) -> Result<()> {
    db.execute_raw(stmt(
        db.get_database_backend(),
        "UPDATE dbsync_node SET version = ? WHERE id = 1",
        vec![version.into()],
    ))
    .await?;
    Ok(())
}

/// Clears the push in flight if it is still `pending` (another process may have finished it
/// and started the next); returns whether it was.
pub(crate) async fn clear_pending<C: ConnectionTrait>(db: &C, pending: &str) -> Result<bool> {
    let cleared = db
        .execute_raw(stmt(
            db.get_database_backend(),
            "UPDATE dbsync_node SET pending_push = NULL WHERE id = 1 AND pending_push = ?",
            vec![pending.into()],
        ))
        .await?;
    Ok(cleared.rows_affected() > 0)
}

pub(crate) async fn set_pending<C: ConnectionTrait>(db: &C, pending: Option<String>) -> Result<()> {
    db.execute_raw(stmt(
        db.get_database_backend(),
        "UPDATE dbsync_node SET pending_push = ? WHERE id = 1",
        vec![pending.into()],
    ))
    .await?;
    Ok(())
}
