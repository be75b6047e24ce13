//! Collecting the rows a message ships: the rows named by operations, and every row they
//! reference, so that a node can write them without breaking a foreign key even when the
//! server changed since the operations were logged.

use super::version_runs;
use crate::error::ServerError;
use crate::server::statement;
use dbsync::messages::{RawRows, Rows};
use dbsync::{Registry, Row, TableInfo};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Rows as `(content type, key)`.
pub(crate) type Keys = HashSet<(u32, i64)>;

/// Fetches the current rows for `wanted` (table to keys) and the transitive closure of the
/// rows they reference in pulled tables, only among `only` when given, adding them to `rows`
/// (whose rows are not fetched again). Keys whose row is gone are skipped: a later delete
/// operation tells the node.
pub(crate) async fn ship(
    txn: &DatabaseTransaction,
    registry: &Registry,
    wanted: BTreeMap<String, BTreeSet<i64>>,
    mut rows: Rows,
    only: Option<&Keys>,
) -> Result<Rows, ServerError> {
    let mut shipped: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (table, list) in &rows {
        if let Some(info) = registry.table(table) {
            let keys = shipped.entry(table.clone()).or_default();
            keys.extend(
                list.iter()
                    .filter_map(|r| r.get(&info.primary_key)?.as_i64()),
            );
        }
    }
    for (table, text) in ship_text(txn, registry, wanted, shipped, only).await? {
        let found: Vec<Row> =
            serde_json::from_str(text.get()).map_err(|e| ServerError::Internal(e.to_string()))?;
        rows.entry(table).or_default().extend(found);
    }
    Ok(rows)
}

/// What [`ship`] gathers, with `shipped` already sent, each table's rows as one JSON array:
/// the text the database built where it can, so that a pull's rows pass from the database
/// to the node without being decoded and encoded again on the way.
pub(crate) async fn ship_text(
    txn: &DatabaseTransaction,
    registry: &Registry,
    wanted: BTreeMap<String, BTreeSet<i64>>,
    mut shipped: BTreeMap<String, BTreeSet<i64>>,
    only: Option<&Keys>,
) -> Result<RawRows, ServerError> {
    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pending = wanted;
    while !pending.is_empty() {
        let mut next: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for (table, keys) in pending {
            let Some(info) = registry.table(&table) else {
                continue;
            };
            let done = shipped.entry(table.clone()).or_default();
            let ids: Vec<i64> = keys
                .into_iter()
                .filter(|id| only.is_none_or(|o| o.contains(&(info.content_type_id, *id))))
                .filter(|id| done.insert(*id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let links = parent_links(registry, info);
            let columns: Vec<String> = links.iter().map(|(c, _)| (*c).to_owned()).collect();
            let text = match info.ops().fetch_text(txn, &ids, &columns).await? {
                Some(fetched) => {
                    for ((_, parent), keys) in links.iter().zip(fetched.parents) {
                        next.entry(parent.name.clone()).or_default().extend(keys);
                    }
                    fetched.rows.json
                }
                None => {
                    let found = info.ops().fetch(txn, &ids).await?;
                    for row in &found {
                        references(registry, info, row, &mut next);
                    }
                    serde_json::to_string(&found)
                        .map_err(|e| ServerError::Internal(e.to_string()))?
                }
            };
            texts.entry(table).or_default().push(text);
        }
        pending = next;
    }
    texts
        .into_iter()
        .map(|(table, parts)| Ok((table, one_array(parts)?)))
        .collect()
}

/// JSON arrays as one.
fn one_array(mut parts: Vec<String>) -> Result<Box<RawValue>, ServerError> {
    let text = if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        let mut items = Vec::with_capacity(parts.len());
        for part in &parts {
            let inner = part
                .trim()
                .strip_prefix('[')
                .and_then(|p| p.strip_suffix(']'))
                .ok_or_else(|| ServerError::Internal("rows are not a JSON array".into()))?
                .trim();
            if !inner.is_empty() {
                items.push(inner);
            }
        }
        format!("[{}]", items.join(","))
    };
    RawValue::from_string(text).map_err(|e| ServerError::Internal(e.to_string()))
}

/// `rows` of a repair page with the rows they reference, transitively, among the rows that
/// changed after the snapshot: a parent inserted or changed after its table was paged still
/// arrives before its children are written, and the others, which the node has from their
/// own pages, are not sent again.
pub(crate) async fn with_references(
    txn: &DatabaseTransaction,
    registry: &Registry,
    rows: Rows,
    snapshot_version: i64,
) -> Result<Rows, ServerError> {
    let mut wanted: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (table, list) in &rows {
        if let Some(info) = registry.table(table) {
            for row in list {
                references(registry, info, row, &mut wanted);
            }
        }
    }
    if wanted.is_empty() {
        return Ok(rows);
    }
    let changed = changed_since(txn, snapshot_version).await?;
    ship(txn, registry, wanted, rows, Some(&changed)).await
}

/// Whether any row has an operation after `version`, or one not versioned yet, `latest`
/// being the server's latest version: asked for every repair page, so answered from the
/// latest version and the index of unversioned entries rather than by reading the log after
/// `version` (which a generic plan on PostgreSQL reads whole: 8 to 17 ms a page at 100,000
/// entries).
pub(crate) async fn changed_after(
    txn: &DatabaseTransaction,
    version: i64,
    latest: i64,
) -> Result<bool, ServerError> {
    if latest > version {
        return Ok(true);
    }
    let unversioned = txn
        .query_one_raw(statement(
            txn.get_database_backend(),
            "SELECT 1 FROM dbsync_operations WHERE version_id IS NULL LIMIT 1",
            vec![],
        ))
        .await?;
    Ok(unversioned.is_some())
}

/// The rows with an operation after `version`, or one not versioned yet (a server write
/// committed a moment ago).
pub(crate) async fn changed_since(
    txn: &DatabaseTransaction,
    version: i64,
) -> Result<Keys, ServerError> {
    let backend = txn.get_database_backend();
    // The log holds the server application's writes; pushes are kept as runs.
    let mut keys: Keys = version_runs::rows_after(txn, 0, version, usize::MAX)
        .await?
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (sql, values) in [
        (
            "SELECT content_type_id, row_id FROM dbsync_operations WHERE version_id > $1",
            vec![version.into()],
        ),
        (
            "SELECT content_type_id, row_id FROM dbsync_operations WHERE version_id IS NULL",
            vec![],
        ),
    ] {
        for row in txn.query_all_raw(statement(backend, sql, values)).await? {
            let content_type: i64 = row.try_get_by_index(0)?;
            keys.insert((
                u32::try_from(content_type).unwrap_or(0),
                row.try_get_by_index(1)?,
            ));
        }
    }
    Ok(keys)
}

/// Adds to `out` the rows `row` references through single-column foreign keys to pulled
/// tables.
fn references(
    registry: &Registry,
    info: &TableInfo,
    row: &Row,
    out: &mut BTreeMap<String, BTreeSet<i64>>,
) {
    for (column, parent) in parent_links(registry, info) {
        if let Some(id) = row.get(column).and_then(serde_json::Value::as_i64) {
            out.entry(parent.name.clone()).or_default().insert(id);
        }
    }
}

/// The single-column foreign keys of `info` to the primary key of a pulled table: the
/// column, and the table.
fn parent_links<'r>(registry: &'r Registry, info: &'r TableInfo) -> Vec<(&'r str, &'r TableInfo)> {
    info.foreign_keys
        .iter()
        .filter_map(|fk| {
            let [column] = &fk.columns[..] else {
                return None;
            };
            let parent = registry.table(&fk.to_table)?;
            (parent.direction.pulls() && fk.to_columns.first() == Some(&parent.primary_key))
                .then_some((column.as_str(), parent))
        })
        .collect()
}
