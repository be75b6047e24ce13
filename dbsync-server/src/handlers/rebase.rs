//! A push from a node that has not pulled the latest versions.
//!
//! python-sync-db refused every such push, so nodes pushing at the same time took turns:
//! each accepted push sent all the others back through a pull, a merge and a push. Most of
//! the time their changes had nothing to do with each other. The server now applies a stale
//! push as it is when that gives the same result as the node pulling first would: when none
//! of the versions the node has not seen touch a row the push changes, a row it refers to,
//! or a row that refers to a row it deletes, and when the database accepts the rows as they
//! are (unique values included). Otherwise the node pulls and merges as before.
//!
//! The node does not move its version past what it pulled; its next pull brings the versions
//! it skipped, without its own pushes.

use super::version_runs;
use crate::error::ServerError;
use crate::server::{Counters, as_bigint, quote, statement};
use dbsync::messages::PushRequest;
use dbsync::{Command, Registry, TableInfo};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde_json::Value as Json;
use std::collections::HashSet;

/// Operations a stale push is checked against at most; a node further behind pulls first.
const MAX_UNSEEN: usize = 100_000;

/// The rows that versions a node has not seen changed, except its own pushes.
pub(crate) struct Unseen(HashSet<(u32, i64)>);

impl Unseen {
    /// The rows versions after `push`'s base changed; `None` when they cannot all be known:
    /// the log before them was trimmed, or there are more than [`MAX_UNSEEN`].
    pub(crate) async fn load(
        txn: &DatabaseTransaction,
        push: &PushRequest,
        counters: Counters,
    ) -> Result<Option<Unseen>, ServerError> {
        let base = push.base_version;
        if base < counters.trimmed || base > counters.latest {
            return Ok(None);
        }
        let found = txn
            .query_all_raw(statement(
                txn.get_database_backend(),
                "SELECT content_type_id, row_id FROM dbsync_operations \
                 WHERE version_id > $1 AND version_id NOT IN \
                 (SELECT version_id FROM dbsync_versions WHERE node_id = $2 AND version_id > $3) \
                 LIMIT $4",
                vec![
                    base.into(),
                    push.meta.node_id.into(),
                    base.into(),
                    i64::try_from(MAX_UNSEEN + 1).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        if found.len() > MAX_UNSEEN {
            return Ok(None);
        }
        // The log holds the server application's writes; pushes are kept as runs.
        let Some(pushed) =
            version_runs::rows_after(txn, push.meta.node_id, base, MAX_UNSEEN - found.len())
                .await?
        else {
            return Ok(None);
        };
        let mut rows = HashSet::with_capacity(found.len() + pushed.len());
        rows.extend(pushed);
        for row in found {
            let ct: i64 = row.try_get_by_index(0)?;
            rows.insert((
                u32::try_from(ct).unwrap_or(u32::MAX),
                row.try_get_by_index(1)?,
            ));
        }
        Ok(Some(Unseen(rows)))
    }

    /// Whether an unseen version changed row `id` of `info`'s table.
    pub(crate) fn touched(&self, info: &TableInfo, id: i64) -> bool {
        self.0.contains(&(info.content_type_id, id))
    }

    /// The largest key of `info`'s table an unseen version used (0 for none): a table
    /// without a key counter could otherwise hand out a key whose history the node has
    /// still to pull.
    pub(crate) fn max_id(&self, info: &TableInfo) -> i64 {
        self.0
            .iter()
            .filter(|(ct, _)| *ct == info.content_type_id)
            .map(|(_, id)| *id)
            .max()
            .unwrap_or(0)
    }
}

/// Whether a stale `push` can be applied as it is, given what the node has not seen.
/// `push` has its inserts moved already, off every key an unseen version used: the node's
/// later pull would otherwise apply that history to its row.
pub(crate) async fn can_rebase(
    txn: &DatabaseTransaction,
    registry: &Registry,
    push: &PushRequest,
    unseen: &Unseen,
) -> Result<bool, ServerError> {
    let inserted: HashSet<(&str, i64)> = push
        .operations
        .iter()
        .filter(|op| op.command == Command::Insert)
        .map(|op| (op.table.as_str(), op.row_id))
        .collect();
    for op in &push.operations {
        let Some(info) = registry.table(&op.table) else {
            return Ok(false);
        };
        if op.command != Command::Insert && unseen.touched(info, op.row_id) {
            return Ok(false);
        }
    }
    for (table, rows) in &push.rows {
        let Some(info) = registry.table(table) else {
            return Ok(false);
        };
        for row in rows {
            for fk in &info.foreign_keys {
                let Some(parent) = registry.table(&fk.to_table) else {
                    continue;
                };
                // A key over several columns, or onto another unique column: not checked
                // here, so the node pulls first.
                let Some(column) = fk.key_column(&parent.primary_key) else {
                    return Ok(false);
                };
                if let Some(id) = row.get(column).and_then(Json::as_i64)
                    && !inserted.contains(&(parent.name.as_str(), id))
                    && unseen.touched(parent, id)
                {
                    return Ok(false);
                }
            }
        }
    }
    deletes_keep_children(txn, registry, push).await
}

/// Whether every server row referring to a row the push deletes is deleted by the push too.
/// The node had every such row when it deleted (it cascaded them itself); any other one was
/// made by a version it has not seen, and its fate is the merge's to decide.
async fn deletes_keep_children(
    txn: &DatabaseTransaction,
    registry: &Registry,
    push: &PushRequest,
) -> Result<bool, ServerError> {
    let deleted: HashSet<(&str, i64)> = push
        .operations
        .iter()
        .filter(|op| op.command == Command::Delete)
        .map(|op| (op.table.as_str(), op.row_id))
        .collect();
    if deleted.is_empty() {
        return Ok(true);
    }
    let backend = txn.get_database_backend();
    for child in registry.tables() {
        for fk in &child.foreign_keys {
            let Some(parent) = registry.table(&fk.to_table) else {
                continue;
            };
            if !deleted.iter().any(|(table, _)| *table == parent.name) {
                continue;
            }
            let Some(column) = fk.key_column(&parent.primary_key) else {
                return Ok(false);
            };
            let parents: Vec<String> = deleted
                .iter()
                .filter(|(table, _)| *table == fk.to_table)
                .map(|(_, id)| id.to_string())
                .collect();
            for chunk in parents.chunks(500) {
                let sql = format!(
                    "SELECT {pk} FROM {table} WHERE {column} IN ({list})",
                    pk = as_bigint(backend, &quote(backend, &child.primary_key)),
                    table = quote(backend, &child.name),
                    column = quote(backend, column),
                    list = chunk.join(","),
                );
                for row in txn.query_all_raw(statement(backend, &sql, vec![])).await? {
                    let id: i64 = row.try_get_by_index(0)?;
                    if !deleted.contains(&(child.name.as_str(), id)) {
                        return Ok(false);
                    }
                }
            }
        }
    }
    Ok(true)
}
