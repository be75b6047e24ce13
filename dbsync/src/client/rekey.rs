//! Moving a local row to another key, with every local reference to it: a merge moves a
//! local insert out of the way of a server row with the same key, and a push's answer moves
//! the rows the server stored under fresh keys.

use crate::capture::quote;
use crate::error::Result;
use crate::messages::MovedKey;
use crate::node_state::stmt;
use crate::registry::Registry;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DbBackend};

/// Gives the local row `old` of `info` the key `new`, which must be free: its references in
/// other local rows, its unsynced log entries and SQLite's key counter follow. Runs inside
/// an untracked transaction with foreign keys deferred.
pub(super) async fn move_row<C: ConnectionTrait>(
    txn: &C,
    registry: &Registry,
    info: &TableInfo,
    old: i64,
    new: i64,
) -> Result<()> {
    let backend = txn.get_database_backend();
    let (table, pk) = (quote(&info.name), quote(&info.primary_key));
    let exec =
        |sql: String, values: Vec<sea_orm::Value>| txn.execute_raw(stmt(backend, &sql, values));
    exec(
        format!("UPDATE {table} SET {pk} = ? WHERE {pk} = ?"),
        vec![new.into(), old.into()],
    )
    .await?;
    for child in registry.tables() {
        for fk in &child.foreign_keys {
            if fk.to_table == info.name
                && let Some(column) = fk.key_column(&info.primary_key)
            {
                exec(
                    format!(
                        "UPDATE {} SET {} = ? WHERE {} = ?",
                        quote(&child.name),
                        quote(column),
                        quote(column)
                    ),
                    vec![new.into(), old.into()],
                )
                .await?;
            }
        }
    }
    exec(
        "UPDATE dbsync_operations SET row_id = ? WHERE content_type_id = ? AND row_id = ? \
         AND version_id IS NULL"
            .into(),
        vec![
            new.into(),
            i64::from(info.content_type_id).into(),
            old.into(),
        ],
    )
    .await?;
    if backend == DbBackend::Sqlite {
        // An UPDATE of the key does not move SQLite's AUTOINCREMENT counter.
        exec(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?".into(),
            vec![new.into(), info.name.clone().into(), new.into()],
        )
        .await?;
    }
    Ok(())
}

/// The largest key of `info`'s table here, SQLite's key counter included.
pub(super) async fn local_max<C: ConnectionTrait>(txn: &C, info: &TableInfo) -> Result<i64> {
    let backend = txn.get_database_backend();
    let (table, pk) = (quote(&info.name), quote(&info.primary_key));
    let max = match backend {
        // PostgreSQL keeps a 32-bit column's type through `MAX`.
        DbBackend::Postgres => format!("SELECT CAST(MAX({pk}) AS BIGINT) FROM {table}"),
        _ => format!("SELECT MAX({pk}) FROM {table}"),
    };
    let mut out = scalar(txn, &max, vec![]).await?.unwrap_or(0);
    if backend == DbBackend::Sqlite {
        let seq = scalar(
            txn,
            "SELECT seq FROM sqlite_sequence WHERE name = ?",
            vec![info.name.clone().into()],
        )
        .await?;
        out = out.max(seq.unwrap_or(0));
    }
    Ok(out)
}

/// Applies the moves the server made to a push's inserts. A local row that holds a key the
/// server handed out (one written after the push was built, or its log if it was deleted
/// since) moves above every key in play first; it is unsynced, and its own push may move it
/// again. The pushed rows are under the keys they were pushed with: a pull never merges
/// while a push's fate is unknown.
pub(super) async fn apply_moves<C: ConnectionTrait>(
    txn: &C,
    registry: &Registry,
    moves: &[MovedKey],
) -> Result<()> {
    for m in moves {
        let Some(info) = registry.table(&m.table) else {
            continue;
        };
        if m.old == m.new {
            continue;
        }
        // The key is taken by a local row, or by the log of one written and deleted since
        // the push was built: its entries must not end up on the pushed row.
        let holder = scalar(
            txn,
            &format!(
                "SELECT {pk} FROM {table} WHERE {pk} = ? UNION ALL \
                 SELECT row_id FROM dbsync_operations WHERE content_type_id = ? AND row_id = ? \
                 AND version_id IS NULL",
                pk = quote(&info.primary_key),
                table = quote(&info.name)
            ),
            vec![
                m.new.into(),
                i64::from(info.content_type_id).into(),
                m.new.into(),
            ],
        )
        .await?;
        if holder.is_some() {
            let above = moves
                .iter()
                .filter(|other| other.table == m.table)
                .map(|other| other.new)
                .max()
                .unwrap_or(0);
            let fresh = local_max(txn, info).await?.max(above) + 1;
            move_row(txn, registry, info, m.new, fresh).await?;
        }
        move_row(txn, registry, info, m.old, m.new).await?;
    }
    Ok(())
}

async fn scalar<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Option<i64>> {
    let row = db
        .query_one_raw(stmt(db.get_database_backend(), sql, values))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index::<Option<i64>>(0)?,
        None => None,
    })
}
