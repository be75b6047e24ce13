//! Keys the server hands out: the largest key of each table, and pushed inserts moved to a
//! fresh key because their key already holds another node's row.
//!
//! Nodes create rows offline with whatever key their database picks, so two nodes that
//! never saw each other's rows pick the same keys. The server keeps the first row under its
//! key and stores the later one under a key no one has used, rewriting every reference to it
//! in the same push; the answer tells the node, which moves its row too
//! ([`MovedKey`]). The moves are recorded with the version, so a retried push, or a pull
//! that finds a push whose answer was lost, gets them again.

use super::rebase::Unseen;
use crate::error::ServerError;
use crate::server::{as_bigint, quote, scalar, statement};
use dbsync::__private::key_ranges;
use dbsync::messages::{MovedKey, PushRequest};
use dbsync::{Command, Registry, TableInfo};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Keys looked up per statement.
const CHUNK: usize = 500;

/// Per pulled table, the largest key the server has handed out, deleted rows included.
pub(crate) async fn max_ids<C: ConnectionTrait>(
    db: &C,
    registry: &Registry,
) -> Result<BTreeMap<String, i64>, ServerError> {
    let backend = db.get_database_backend();
    let tables: Vec<&TableInfo> = registry.pulled().collect();
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    // One statement for every table: each is a round trip a pull's first page waits for.
    let mut selects = Vec::with_capacity(tables.len());
    let mut values = Vec::new();
    for info in &tables {
        let (sql, more) = max_id_sql(backend, info, values.len() + 1);
        selects.push(format!("({sql})"));
        values.extend(more);
    }
    let sql = format!("SELECT {}", selects.join(", "));
    let row = db
        .query_one_raw(statement(backend, &sql, values))
        .await?
        .ok_or_else(|| ServerError::Internal("no row for the largest keys".into()))?;
    tables
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let max: Option<i64> = row.try_get_by_index(index)?;
            Ok((info.name.clone(), max.unwrap_or(0)))
        })
        .collect()
}

/// The largest key of `info`'s table the server has handed out, deleted rows included: the
/// key generator remembers them, and no node may get one of them again.
pub(crate) async fn max_id<C: ConnectionTrait>(
    db: &C,
    info: &TableInfo,
) -> Result<i64, ServerError> {
    let (sql, values) = max_id_sql(db.get_database_backend(), info, 1);
    Ok(scalar::<i64, _>(db, &sql, values).await?.unwrap_or(0))
}

/// The statement [`max_id`] runs, its parameters numbered from `first`.
fn max_id_sql(backend: DbBackend, info: &TableInfo, first: usize) -> (String, Vec<sea_orm::Value>) {
    let (q, pk) = (
        quote(backend, &info.name),
        quote(backend, &info.primary_key),
    );
    let (a, b) = (first, first + 1);
    match backend {
        DbBackend::Postgres => (
            format!(
                "SELECT GREATEST((SELECT MAX({pk})::bigint FROM {q}), \
                 pg_sequence_last_value(pg_get_serial_sequence(${a}, ${b})::regclass))"
            ),
            vec![q.clone().into(), info.primary_key.clone().into()],
        ),
        DbBackend::Sqlite => (
            format!(
                "SELECT MAX(x) FROM (SELECT MAX({pk}) AS x FROM {q} \
                 UNION ALL SELECT seq FROM sqlite_sequence WHERE name = ?)"
            ),
            vec![info.name.clone().into()],
        ),
        _ => (
            format!(
                "SELECT CAST(GREATEST(COALESCE((SELECT MAX({pk}) FROM {q}), 0), \
                 COALESCE((SELECT AUTO_INCREMENT - 1 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1), 0)) AS SIGNED)"
            ),
            vec![info.name.clone().into()],
        ),
    }
}

/// The fresh key for every insert of `push` whose key holds a row on the server, or was
/// used by a version the node has not seen (`unseen`, for a stale push), in the order made;
/// [`rewrite`] applies them to the push.
pub(crate) async fn taken_key_moves(
    txn: &DatabaseTransaction,
    registry: &Registry,
    push: &PushRequest,
    unseen: Option<&Unseen>,
) -> Result<Vec<MovedKey>, ServerError> {
    let mut inserted: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for op in push
        .operations
        .iter()
        .filter(|op| op.command == Command::Insert)
    {
        inserted
            .entry(op.table.as_str())
            .or_default()
            .push(op.row_id);
    }
    let mut moves: Vec<MovedKey> = Vec::new();
    for (table, ids) in inserted {
        let Some(info) = registry.table(table) else {
            continue;
        };
        let (mut taken, max) = existing_keys(txn, info, &ids).await?;
        if let Some(unseen) = unseen {
            taken.extend(ids.iter().copied().filter(|id| unseen.touched(info, *id)));
        }
        if taken.is_empty() {
            continue;
        }
        let max = match max {
            Some(max) => max,
            None => max_id(txn, info).await?,
        };
        let last = max
            .max(ids.iter().copied().max().unwrap_or(0))
            .max(unseen.map_or(0, |u| u.max_id(info)));
        let mut sorted: Vec<i64> = taken.into_iter().collect();
        sorted.sort_unstable();
        for (new, old) in (last + 1..).zip(sorted) {
            moves.push(MovedKey {
                table: info.name.clone(),
                old,
                new,
            });
        }
    }
    Ok(moves)
}

/// The keys among `ids` that hold a row in `info`'s table, and where the database reads it
/// in the same statement, the table's [`max_id`]: the version lock is held, and every round
/// trip counts.
async fn existing_keys(
    txn: &DatabaseTransaction,
    info: &TableInfo,
    ids: &[i64],
) -> Result<(HashSet<i64>, Option<i64>), ServerError> {
    let backend = txn.get_database_backend();
    let (q, pk) = (
        quote(backend, &info.name),
        quote(backend, &info.primary_key),
    );
    let mut out = HashSet::new();
    // One parameter for every key, as runs of consecutive keys (a node's new rows mostly
    // are one run): one range scan per run, and no statement to parse per thousand keys.
    let found = match backend {
        DbBackend::Sqlite => Some(format!(
            "SELECT json_group_array(t.{pk}) FROM json_each(?) AS r JOIN {q} AS t \
             ON t.{pk} BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')"
        )),
        DbBackend::Postgres => Some(format!(
            "SELECT COALESCE(json_agg(t.{pk}), '[]')::text FROM json_array_elements($1::json) \
             AS r(k) JOIN {q} AS t ON t.{pk} BETWEEN (r.k ->> 0)::int8 AND (r.k ->> 1)::int8"
        )),
        _ => None,
    };
    if let Some(found) = found {
        let keys = serde_json::to_string(&key_ranges(ids))
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        let (max, max_values) = max_id_sql(backend, info, 2);
        let sql = format!("SELECT ({found}), ({max})");
        let mut values = vec![keys.into()];
        values.extend(max_values);
        let row = txn
            .query_one_raw(statement(backend, &sql, values))
            .await?
            .ok_or_else(|| ServerError::Internal("no row for the taken keys".into()))?;
        let found: String = row.try_get_by_index(0)?;
        let max: Option<i64> = row.try_get_by_index(1)?;
        let found: Vec<i64> =
            serde_json::from_str(&found).map_err(|e| ServerError::Internal(e.to_string()))?;
        out.extend(found);
        return Ok((out, Some(max.unwrap_or(0))));
    }
    for chunk in ids.chunks(CHUNK) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT {} FROM {q} WHERE {pk} IN ({list})",
            as_bigint(backend, &pk)
        );
        for row in txn.query_all_raw(statement(backend, &sql, vec![])).await? {
            out.insert(row.try_get_by_index::<i64>(0)?);
        }
    }
    Ok((out, None))
}

/// Applies `moves` to the push: the operations, the rows' keys and every foreign key that
/// points at a moved row.
pub(crate) fn rewrite(registry: &Registry, push: &mut PushRequest, moves: &[MovedKey]) {
    let by_key: HashMap<(&str, i64), i64> = moves
        .iter()
        .map(|m| ((m.table.as_str(), m.old), m.new))
        .collect();
    for op in &mut push.operations {
        if op.command == Command::Insert
            && let Some(new) = by_key.get(&(op.table.as_str(), op.row_id))
        {
            op.row_id = *new;
        }
    }
    for (table, rows) in &mut push.rows {
        let Some(info) = registry.table(table) else {
            continue;
        };
        for row in rows {
            if let Some(new) = row
                .get(&info.primary_key)
                .and_then(Json::as_i64)
                .and_then(|id| by_key.get(&(info.name.as_str(), id)))
            {
                row.insert(info.primary_key.clone(), Json::from(*new));
            }
            for fk in &info.foreign_keys {
                let Some(column) = registry
                    .table(&fk.to_table)
                    .and_then(|parent| fk.key_column(&parent.primary_key))
                else {
                    continue;
                };
                if let Some(new) = row
                    .get(column)
                    .and_then(Json::as_i64)
                    .and_then(|id| by_key.get(&(fk.to_table.as_str(), id)))
                {
                    row.insert(column.to_owned(), Json::from(*new));
                }
            }
        }
    }
}

/// Records the moves of the push that created `version`.
pub(crate) async fn record_moves(
    txn: &DatabaseTransaction,
    version: i64,
    moves: &[MovedKey],
) -> Result<(), ServerError> {
    for chunk in moves.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO dbsync_moved_keys (version_id, table_name, old_id, new_id) VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 4);
        for (i, m) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = i * 4;
            sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
            values.extend([
                version.into(),
                m.table.clone().into(),
                m.old.into(),
                m.new.into(),
            ]);
        }
        txn.execute_raw(statement(txn.get_database_backend(), &sql, values))
            .await?;
    }
    Ok(())
}

/// The moves of the pushes of `node_id` in the versions `(after, upto]`, by push id.
pub(crate) async fn moves_of<C: ConnectionTrait>(
    db: &C,
    node_id: i64,
    after: i64,
    upto: i64,
) -> Result<BTreeMap<String, Vec<MovedKey>>, ServerError> {
    let rows = db
        .query_all_raw(statement(
            db.get_database_backend(),
            "SELECT v.push_id, m.table_name, m.old_id, m.new_id FROM dbsync_moved_keys m \
             JOIN dbsync_versions v ON v.version_id = m.version_id \
             WHERE v.node_id = $1 AND v.version_id > $2 AND v.version_id <= $3 \
             AND v.push_id IS NOT NULL ORDER BY m.version_id, m.new_id",
            vec![node_id.into(), after.into(), upto.into()],
        ))
        .await?;
    let mut out: BTreeMap<String, Vec<MovedKey>> = BTreeMap::new();
    for row in rows {
        out.entry(row.try_get_by_index(0)?)
            .or_default()
            .push(MovedKey {
                table: row.try_get_by_index(1)?,
                old: row.try_get_by_index(2)?,
                new: row.try_get_by_index(3)?,
            });
    }
    Ok(out)
}
