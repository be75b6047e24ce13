//! Applying operations that arrive with their rows, in an order foreign keys accept.

use crate::error::{Error, Result};
use crate::messages::{RawRows, Rows, WireOperation};
use crate::oplog::Command;
use crate::registry::Registry;
use crate::row::Row;
use crate::table::TableInfo;
use crate::table_ops::row_id;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use std::collections::{BTreeMap, HashMap};

/// Lets foreign keys be violated until commit where the database allows it (SQLite), so that
/// rows can be written in any order within the transaction.
pub(crate) async fn defer_foreign_keys(txn: &DatabaseTransaction) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Sqlite {
        txn.execute_unprepared("PRAGMA defer_foreign_keys = ON")
            .await?;
    }
    Ok(())
}

fn with_table(err: Error, table: &str) -> Error {
    match err {
        Error::RowCodec { column, reason, .. } => Error::RowCodec {
            table: table.to_owned(),
            column,
            reason,
        },
        other => other,
    }
}

/// Applies pushed operations on the server: deletes children first, then inserts and
/// updates parents first. An insert whose key holds a different row is refused; an update
/// of a missing row re-creates it; a delete of a missing row is no error.
pub async fn apply_operations(
    txn: &DatabaseTransaction,
    registry: &Registry,
    operations: &[WireOperation],
    rows: &Rows,
) -> Result<()> {
    apply(txn, registry, operations, decoded(registry, rows)?, true).await
}

/// [`apply_operations`] for operations whose inserted keys are known to be free in `txn`
/// (the server moved every taken one, holding its version lock): it skips reading the
/// inserted keys back.
pub async fn apply_operations_to_free_keys(
    txn: &DatabaseTransaction,
    registry: &Registry,
    operations: &[WireOperation],
    rows: &Rows,
) -> Result<()> {
    apply(txn, registry, operations, decoded(registry, rows)?, false).await
}

/// [`apply_operations_to_free_keys`] for rows still in the text they arrived as: each table
/// whose rows the database can write from their text (see
/// [`crate::table_ops::TableOps::write_pushed_text`]) skips decoding them into [`Row`]s,
/// which costs about as much as writing them.
pub async fn apply_pushed_to_free_keys(
    txn: &DatabaseTransaction,
    registry: &Registry,
    operations: &[WireOperation],
    rows: &RawRows,
) -> Result<()> {
    let rows = by_table(registry, rows, |json| TableRows::Text(json.get()))?;
    apply(txn, registry, operations, rows, false).await
}

/// One table's rows, as they came.
enum TableRows<'r> {
    Decoded(&'r [Row]),
    /// A JSON array of rows.
    Text(&'r str),
}

/// `rows` by registered table name, refusing a table that is not tracked.
fn by_table<'r, T>(
    registry: &'r Registry,
    rows: &'r BTreeMap<String, T>,
    each: impl Fn(&'r T) -> TableRows<'r>,
) -> Result<HashMap<&'r str, TableRows<'r>>> {
    rows.iter()
        .map(|(table, list)| {
            let info = registry.table(table).ok_or_else(|| Error::UnknownTable {
                table: table.clone(),
            })?;
            Ok((info.name.as_str(), each(list)))
        })
        .collect()
}

fn decoded<'r>(registry: &'r Registry, rows: &'r Rows) -> Result<HashMap<&'r str, TableRows<'r>>> {
    by_table(registry, rows, |list| TableRows::Decoded(list))
}

async fn apply(
    txn: &DatabaseTransaction,
    registry: &Registry,
    operations: &[WireOperation],
    rows: HashMap<&str, TableRows<'_>>,
    check_inserted_keys: bool,
) -> Result<()> {
    let mut by_table: HashMap<&str, Vec<&WireOperation>> = HashMap::new();
    for op in operations {
        let info = registry
            .table(&op.table)
            .ok_or_else(|| Error::UnknownTable {
                table: op.table.clone(),
            })?;
        by_table.entry(info.name.as_str()).or_default().push(op);
    }
    defer_foreign_keys(txn).await?;
    for info in registry.tables().iter().rev() {
        let Some(ops) = by_table.get(info.name.as_str()) else {
            continue;
        };
        let deletes: Vec<i64> = ops
            .iter()
            .filter(|op| op.command == Command::Delete)
            .map(|op| op.row_id)
            .collect();
        info.ops().delete(txn, &deletes).await?;
    }
    let mut written: Vec<&TableInfo> = Vec::new();
    for info in registry.tables() {
        let Some(ops) = by_table.get(info.name.as_str()) else {
            continue;
        };
        let commands: HashMap<i64, Command> = ops
            .iter()
            .filter(|op| op.command != Command::Delete)
            .map(|op| (op.row_id, op.command))
            .collect();
        if commands.is_empty() {
            continue;
        }
        written.push(info);
        let decoded: Vec<Row>;
        let list: &[Row] = match rows.get(info.name.as_str()) {
            None => &[],
            Some(TableRows::Decoded(list)) => list,
            Some(TableRows::Text(json)) => {
                // Updates of a table with unique columns may need its rows' values moved
                // aside first (`vacate_unique_values`), which reads them decoded.
                let updates = commands.values().any(|c| *c == Command::Update);
                if (info.unique.is_empty() || !updates)
                    && info
                        .ops()
                        .write_pushed_text(txn, json, &commands)
                        .await
                        .map_err(|e| with_table(e, &info.name))?
                {
                    continue;
                }
                decoded = decode_rows(&info.name, json)?;
                &decoded
            }
        };
        let rows = decoded_index(info, list)?;
        write_decoded(txn, info, ops, &rows, check_inserted_keys).await?;
    }
    advance_key_generators(txn, &written).await
}

/// Writes one table's part of a snapshot of the server's rows, a JSON array of rows: local
/// rows holding a unique value the snapshot takes from them get a placeholder (see
/// [`vacate_held_values`]), then every row is upserted. SQLite takes the text as it is; other
/// databases get it decoded. Returns how many rows were written.
#[cfg(feature = "client")]
pub(crate) async fn write_snapshot(
    txn: &DatabaseTransaction,
    info: &TableInfo,
    json: &str,
) -> Result<u64> {
    let ops = info.ops();
    if let Some(written) = ops.write_snapshot_text(txn, json, &info.unique).await? {
        return Ok(written);
    }
    let list = decode_rows(&info.name, json)?;
    let list: Vec<&Row> = list.iter().collect();
    vacate_held_values(txn, info, &list).await?;
    ops.upsert_many(txn, &list).await?;
    Ok(list.len() as u64)
}

/// A table's rows, decoded.
pub(crate) fn decode_rows(table: &str, json: &str) -> Result<Vec<Row>> {
    serde_json::from_str(json).map_err(|e| Error::RowCodec {
        table: table.to_owned(),
        column: String::new(),
        reason: format!("the rows are not an array of objects: {e}"),
    })
}

/// `rows` by primary key.
fn decoded_index<'r>(info: &TableInfo, rows: &'r [Row]) -> Result<HashMap<i64, &'r Row>> {
    let mut index = HashMap::with_capacity(rows.len());
    for row in rows {
        let id = row_id(row, &info.primary_key).map_err(|e| with_table(e, &info.name))?;
        if index.insert(id, row).is_some() {
            return Err(twice(&info.name, id));
        }
    }
    Ok(index)
}

/// Two rows with one key: which one the node meant is anyone's guess.
pub(crate) fn twice(table: &str, id: i64) -> Error {
    Error::InvalidOperation(format!("two rows of `{table}` {id}"))
}

/// Writes the inserts and updates among `ops`, whose rows `rows` holds by key.
async fn write_decoded(
    txn: &DatabaseTransaction,
    info: &TableInfo,
    ops: &[&WireOperation],
    rows: &HashMap<i64, &Row>,
    check_inserted_keys: bool,
) -> Result<()> {
    let mut inserts: Vec<&Row> = Vec::new();
    let mut updates: Vec<&Row> = Vec::new();
    for op in ops.iter().filter(|op| op.command != Command::Delete) {
        let row = *rows.get(&op.row_id).ok_or_else(|| {
            Error::InvalidOperation(format!(
                "no row for the {:?} of `{}` {}",
                op.command, op.table, op.row_id
            ))
        })?;
        if row_id(row, &info.primary_key)? != op.row_id {
            return Err(Error::InvalidOperation(format!(
                "row of `{}` does not match its operation's key {}",
                info.name, op.row_id
            )));
        }
        info.ops()
            .validate(row)
            .map_err(|e| with_table(e, &info.name))?;
        match op.command {
            Command::Insert => inserts.push(row),
            _ => updates.push(row),
        }
    }
    if !info.unique.is_empty() {
        vacate_unique_values(txn, info, &updates).await?;
    }
    if check_inserted_keys {
        insert_new(txn, info, &inserts).await?;
    } else {
        info.ops()
            .insert_many(txn, &inserts)
            .await
            .map_err(|e| with_table(e, &info.name))?;
    }
    info.ops()
        .upsert_many(txn, &updates)
        .await
        .map_err(|e| with_table(e, &info.name))
}

/// Inserts rows whose keys must be free; a key that holds the very same row is fine (a
/// retried insert), a key that holds another row is refused.
async fn insert_new(txn: &DatabaseTransaction, info: &TableInfo, rows: &[&Row]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut wanted: HashMap<i64, &Row> = HashMap::with_capacity(rows.len());
    for row in rows {
        wanted.insert(row_id(row, &info.primary_key)?, row);
    }
    let ids: Vec<i64> = wanted.keys().copied().collect();
    for existing in info.ops().fetch(txn, &ids).await? {
        let id = row_id(&existing, &info.primary_key)?;
        let Some(row) = wanted.remove(&id) else {
            continue;
        };
        if info.ops().normalize(row)? != existing {
            return Err(Error::InvalidOperation(format!(
                "insert of `{}` {id} collides with a different row with that key",
                info.name
            )));
        }
    }
    let fresh: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|row| row_id(row, &info.primary_key).is_ok_and(|id| wanted.contains_key(&id)))
        .collect();
    info.ops()
        .insert_many(txn, &fresh)
        .await
        .map_err(|e| with_table(e, &info.name))
}

/// Keeps the table's key generator above every key written explicitly. SQLite's
/// AUTOINCREMENT and MySQL's AUTO_INCREMENT follow explicit keys by themselves; a PostgreSQL
/// sequence does not, and a later generated key would collide.
#[cfg(feature = "client")]
pub(crate) async fn advance_key_generator(
    txn: &DatabaseTransaction,
    info: &TableInfo,
) -> Result<()> {
    advance_key_generators(txn, &[info]).await
}

/// [`advance_key_generator`] for several tables, in one statement.
pub(crate) async fn advance_key_generators(
    txn: &DatabaseTransaction,
    infos: &[&TableInfo],
) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres || infos.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::with_capacity(infos.len());
    let mut values = Vec::with_capacity(2 * infos.len());
    for info in infos {
        let table = crate::capture::quote(&info.name);
        let pk = crate::capture::quote(&info.primary_key);
        let (t, c) = (values.len() + 1, values.len() + 2);
        parts.push(format!(
            "SELECT setval(s, GREATEST((SELECT COALESCE(MAX({pk}), 0) FROM {table}), \
             COALESCE(pg_sequence_last_value(s), 0), 1)) \
             FROM (SELECT pg_get_serial_sequence(${t}, ${c})::regclass AS s) seq \
             WHERE s IS NOT NULL"
        ));
        values.push(table.into());
        values.push(info.primary_key.clone().into());
    }
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        DbBackend::Postgres,
        parts.join(" UNION ALL "),
        values,
    ))
    .await?;
    Ok(())
}

/// Before `incoming` rows of a table are written over existing rows, gives the existing rows
/// whose unique values change a placeholder value, so that values moving between rows (a
/// swap, or a rotation through several rows) never meet their old holder.
pub(crate) async fn vacate_unique_values(
    txn: &DatabaseTransaction,
    info: &TableInfo,
    incoming: &[&Row],
) -> Result<()> {
    if info.unique.is_empty() {
        return Ok(());
    }
    let mut by_id: HashMap<i64, &Row> = HashMap::with_capacity(incoming.len());
    for row in incoming {
        by_id.insert(row_id(row, &info.primary_key)?, row);
    }
    let ids: Vec<i64> = by_id.keys().copied().collect();
    for mut current in info.ops().fetch(txn, &ids).await? {
        let id = row_id(&current, &info.primary_key)?;
        let wanted = by_id[&id];
        let mut changed = false;
        for column in info.unique.iter().flatten() {
            if current.get(column) != wanted.get(column)
                && let Some(value) = placeholder(current.get(column), id)
            {
                current.insert(column.clone(), value);
                changed = true;
            }
        }
        if changed {
            info.ops().upsert(txn, &current).await?;
        }
    }
    Ok(())
}

/// Gives a placeholder to every local row that holds a unique value one of `incoming` (a
/// snapshot of the server's rows) takes, unless it is that very row: the values are the
/// server's, so whoever holds them locally either gets its own value later in the snapshot
/// or is gone.
#[cfg(feature = "client")]
pub(crate) async fn vacate_held_values(
    txn: &DatabaseTransaction,
    info: &TableInfo,
    incoming: &[&Row],
) -> Result<()> {
    for column in info.unique.iter().flatten() {
        let mut wanted_by: HashMap<String, i64> = HashMap::new();
        let mut values = Vec::new();
        for row in incoming {
            if let Some(value) = row.get(column).filter(|v| !v.is_null()) {
                wanted_by.insert(value.to_string(), row_id(row, &info.primary_key)?);
                values.push(value.clone());
            }
        }
        if values.is_empty() {
            continue;
        }
        for mut holder in info.ops().holders(txn, column, &values).await? {
            let id = row_id(&holder, &info.primary_key)?;
            let held = holder.get(column).map(ToString::to_string);
            if held.and_then(|v| wanted_by.get(&v).copied()) == Some(id) {
                continue;
            }
            if let Some(value) = placeholder(holder.get(column), id) {
                holder.insert(column.clone(), value);
                info.ops().upsert(txn, &holder).await?;
            }
        }
    }
    Ok(())
}

/// A value no real row holds, of the same JSON kind as `value`, unique per row.
fn placeholder(value: Option<&serde_json::Value>, id: i64) -> Option<serde_json::Value> {
    match value? {
        serde_json::Value::String(_) => Some(serde_json::Value::from(format!("~dbsync~{id}"))),
        serde_json::Value::Number(_) => Some(serde_json::Value::from(-1_000_000_000 - id)),
        _ => None,
    }
}
