//! The staging table: pulled and repaired pages are stored as they arrive, then applied in
//! one transaction. The network phase holds no lock on the application's tables, and no
//! history has to fit in memory.

use crate::error::{Error, Result};
use crate::messages::{Rows, WireOperation};
use crate::node_state::stmt;
use crate::oplog::Command;
use crate::registry::Registry;
use crate::row::Row;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionSession, TransactionTrait};
use std::collections::HashSet;

/// Entries written per statement.
const BATCH: usize = 200;
/// Entries read per query while applying.
const CHUNK: u64 = 500;

pub(super) async fn clear<C: ConnectionTrait>(db: &C) -> Result<()> {
    db.execute_unprepared("DELETE FROM dbsync_incoming").await?;
    Ok(())
}

/// Stores one page: each operation with its row, then every other row of the page (rows it
/// references).
pub(super) async fn stage<C: TransactionTrait>(
    db: &C,
    ops: &[WireOperation],
    rows: &Rows,
    registry: &Registry,
) -> Result<()>
where
    C::Transaction: ConnectionTrait,
{
    let mut by_key: std::collections::HashMap<(&str, i64), &Row> = std::collections::HashMap::new();
    for (table, list) in rows {
        let info = registry.table(table).ok_or_else(|| Error::UnknownTable {
            table: table.clone(),
        })?;
        for row in list {
            if let Some(id) = row
                .get(&info.primary_key)
                .and_then(serde_json::Value::as_i64)
            {
                by_key.insert((table.as_str(), id), row);
            }
        }
    }
    let mut entries: Vec<(&str, i64, Option<&'static str>, Option<String>)> = Vec::new();
    let mut named: HashSet<(&str, i64)> = HashSet::new();
    for op in ops {
        if registry.table(&op.table).is_none() {
            return Err(Error::UnknownTable {
                table: op.table.clone(),
            });
        }
        let data = match op.command {
            Command::Delete => None,
            _ => by_key
                .get(&(op.table.as_str(), op.row_id))
                .map(|r| json_text(r)),
        };
        named.insert((op.table.as_str(), op.row_id));
        entries.push((
            op.table.as_str(),
            op.row_id,
            Some(op.command.letter()),
            data,
        ));
    }
    for (&(table, id), row) in &by_key {
        if !named.contains(&(table, id)) {
            entries.push((table, id, None, Some(json_text(row))));
        }
    }
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    for chunk in entries.chunks(BATCH) {
        let placeholders = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 4);
        for (table, id, command, data) in chunk {
            values.push((*table).into());
            values.push((*id).into());
            values.push(command.map(str::to_owned).into());
            values.push(data.clone().into());
        }
        txn.execute_raw(stmt(
            backend,
            &format!("INSERT INTO dbsync_incoming (table_name, row_id, command, data) VALUES {placeholders}"),
            values,
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

fn json_text(row: &Row) -> String {
    serde_json::to_string(row).unwrap_or_default()
}

/// The newest staged entry of one row.
pub(super) struct Entry {
    pub row_id: i64,
    pub command: Option<Command>,
    pub data: Option<Row>,
}

/// Reads the newest staged entry of every row of one table, a chunk at a time, oldest first.
pub(super) struct Latest<'a> {
    table: &'a TableInfo,
    after: i64,
}

impl<'a> Latest<'a> {
    pub(super) fn new(table: &'a TableInfo) -> Self {
        Latest { table, after: 0 }
    }

    /// The next chunk; empty at the end.
    pub(super) async fn next(&mut self, txn: &DatabaseTransaction) -> Result<Vec<Entry>> {
        let table = self.table;
        let rows = txn
            .query_all_raw(stmt(
                txn.get_database_backend(),
                &format!(
                    // The newest entry gives the row; the newest operation among the row's
                    // entries says what the server did (a row sent as a parent has none).
                    "SELECT i.id, i.row_id, COALESCE(i.command, (SELECT k.command FROM dbsync_incoming k \
                     WHERE k.table_name = i.table_name AND k.row_id = i.row_id AND k.command IS NOT NULL \
                     ORDER BY k.id DESC LIMIT 1)), i.data FROM dbsync_incoming i \
                     WHERE i.table_name = ? AND i.id > ? AND i.id = (SELECT MAX(j.id) FROM dbsync_incoming j \
                     WHERE j.table_name = i.table_name AND j.row_id = i.row_id) ORDER BY i.id LIMIT {CHUNK}"
                ),
                vec![table.name.clone().into(), self.after.into()],
            ))
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            self.after = row.try_get_by_index(0)?;
            let command: Option<String> = row.try_get_by_index(2)?;
            let data: Option<String> = row.try_get_by_index(3)?;
            entries.push(Entry {
                row_id: row.try_get_by_index(1)?,
                command: command.as_deref().and_then(Command::from_letter),
                data: match data {
                    Some(text) => {
                        Some(serde_json::from_str(&text).map_err(|e| Error::RowCodec {
                            table: table.name.clone(),
                            column: String::new(),
                            reason: e.to_string(),
                        })?)
                    }
                    None => None,
                },
            });
        }
        Ok(entries)
    }
}

/// The largest key staged for `table`.
pub(super) async fn max_staged_id(txn: &DatabaseTransaction, table: &str) -> Result<i64> {
    let row = txn
        .query_one_raw(stmt(
            txn.get_database_backend(),
            "SELECT MAX(row_id) FROM dbsync_incoming WHERE table_name = ?",
            vec![table.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    })
}
