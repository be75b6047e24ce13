//! The staging table: pulled and repaired pages are stored as they arrive, then applied in
//! one transaction. The network phase holds no lock on the application's tables, and no
//! history has to fit in memory.
//!
//! Each pull or repair stages under a session of its own, so that two processes syncing one
//! database never read or clear each other's pages. A row staged twice keeps its newest
//! state and the newest operation the server logged for it.
//!
//! A session keeps its entries in memory up to a budget (`ClientBuilder::staging_memory`,
//! [`MEMORY_BUDGET`] by default; `memory.rs`), and moves them to the tables only past it:
//! most pulls fit, and skip writing every row twice. The memory is the process's own, like
//! the session.

use crate::error::{Error, Result};
use crate::messages::{RepairCursor, Rows, WireOperation, nonce, now_millis};
use crate::node_state::stmt;
use crate::oplog::Command;
use crate::registry::Registry;
use crate::row::Row;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionSession, TransactionTrait};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

mod memory;
use memory::Memory;

/// Entries written per statement (6 parameters each, far below SQLite's limit).
const BATCH: usize = 1_000;
/// Entries read per query while applying.
const CHUNK: u64 = 2_000;
/// Sessions older than this were left by a process that died; their entries go.
const STALE_MILLIS: i64 = 24 * 3600 * 1000;
/// Bytes of staged rows (as JSON, roughly) a session keeps in memory by default before it
/// moves them to the staging tables.
pub(super) const MEMORY_BUDGET: usize = 32 << 20;

/// One pull's or repair's staged entries.
pub(super) struct Staging {
    session: String,
    budget: usize,
    memory: Mutex<Memory>,
}

impl Staging {
    /// A new, empty session that keeps up to `budget` bytes in memory; forgets the entries
    /// of sessions that died long ago.
    pub(super) async fn start<C: ConnectionTrait>(db: &C, budget: usize) -> Result<Staging> {
        for table in ["dbsync_staged", "dbsync_staged_pages"] {
            db.execute_raw(stmt(
                db.get_database_backend(),
                &format!("DELETE FROM {table} WHERE created_at < ?"),
                vec![(now_millis() - STALE_MILLIS).into()],
            ))
            .await?;
        }
        Ok(Staging {
            session: nonce(),
            budget,
            memory: Mutex::new(Memory::default()),
        })
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // A panic while holding the lock left plain data behind; it is still usable.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes this session's entries.
    pub(super) async fn finish<C: ConnectionTrait>(&self, db: &C) -> Result<()> {
        *self.memory() = Memory::default();
        for table in ["dbsync_staged", "dbsync_staged_pages"] {
            db.execute_raw(stmt(
                db.get_database_backend(),
                &format!("DELETE FROM {table} WHERE session = ?"),
                vec![self.session.clone().into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// Stores repair page `index` as it arrived: the table it walks, the cursor it was asked
    /// for, the one it ends at, and its rows as JSON text.
    pub(super) async fn stage_page<C>(
        &self,
        db: &C,
        index: i64,
        page: &StagedPage,
        rows: &str,
    ) -> Result<()>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait,
    {
        if self.memory().keep_page(index, page, rows, self.budget) {
            return Ok(());
        }
        self.spill(db).await?;
        self.write_page(db, index, page, rows).await
    }

    async fn write_page<C: ConnectionTrait>(
        &self,
        db: &C,
        index: i64,
        page: &StagedPage,
        rows: &str,
    ) -> Result<()> {
        let text =
            |c: &Option<RepairCursor>| c.as_ref().and_then(|c| serde_json::to_string(c).ok());
        db.execute_raw(stmt(
            db.get_database_backend(),
            "INSERT INTO dbsync_staged_pages (session, page, walked, from_cursor, next_cursor, page_rows, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                self.session.clone().into(),
                index.into(),
                page.walked.clone().into(),
                text(&page.cursor).into(),
                text(&page.next).into(),
                rows.into(),
                now_millis().into(),
            ],
        ))
        .await?;
        Ok(())
    }

    /// Repair page `index` with its rows as the JSON text that came, or `None` past the
    /// last one.
    pub(super) async fn page(
        &self,
        txn: &DatabaseTransaction,
        index: i64,
    ) -> Result<Option<(StagedPage, String)>> {
        let kept = self.memory().pages.remove(&index);
        if let Some(kept) = kept {
            return Ok(Some(kept));
        }
        let row = txn
            .query_one_raw(stmt(
                txn.get_database_backend(),
                "SELECT walked, from_cursor, next_cursor, page_rows FROM dbsync_staged_pages \
                 WHERE session = ? AND page = ?",
                vec![self.session.clone().into(), index.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let cursor = |i: usize| -> Result<Option<RepairCursor>> {
            let text: Option<String> = row.try_get_by_index(i)?;
            text.map(|t| serde_json::from_str(&t).map_err(undecodable))
                .transpose()
        };
        let page = StagedPage {
            walked: row.try_get_by_index(0)?,
            cursor: cursor(1)?,
            next: cursor(2)?,
        };
        let text: String = row.try_get_by_index(3)?;
        Ok(Some((page, text)))
    }

    /// Stores one page: each operation with its row, then every other row of the page (rows
    /// it references). The rows move into memory when the page fits the budget.
    pub(super) async fn stage<C: TransactionTrait>(
        &self,
        db: &C,
        ops: &[WireOperation],
        rows: Rows,
        registry: &Registry,
    ) -> Result<()>
    where
        C::Transaction: ConnectionTrait,
    {
        let mut names = Vec::with_capacity(rows.len());
        let mut lists = Vec::with_capacity(rows.len());
        for (table, list) in rows {
            let info = registry.table(&table).ok_or_else(|| Error::UnknownTable {
                table: table.clone(),
            })?;
            names.push((table, info.primary_key.as_str()));
            lists.push(list);
        }
        let mut by_key: HashMap<(&str, i64), Row> = HashMap::new();
        for ((table, key), list) in names.iter().zip(lists) {
            for row in list {
                if let Some(id) = row.get(*key).and_then(serde_json::Value::as_i64) {
                    by_key.insert((table.as_str(), id), row);
                }
            }
        }
        let Err(by_key) = self.memory().keep(ops, by_key, self.budget) else {
            return Ok(());
        };
        self.spill(db).await?;
        let mut entries: Vec<(&str, i64, Option<&'static str>, Option<String>)> =
            Vec::with_capacity(ops.len() + by_key.len());
        let mut named: HashSet<(&str, i64)> = HashSet::with_capacity(ops.len());
        for op in ops {
            if registry.table(&op.table).is_none() {
                return Err(Error::UnknownTable {
                    table: op.table.clone(),
                });
            }
            let data = match op.command {
                Command::Delete => None,
                _ => by_key.get(&(op.table.as_str(), op.row_id)).map(json_text),
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
        self.write_entries(db, &entries).await
    }

    /// Moves the entries and pages kept in memory to the staging tables; from now on the
    /// session stages there.
    async fn spill<C: TransactionTrait>(&self, db: &C) -> Result<()>
    where
        C::Transaction: ConnectionTrait,
    {
        let kept = {
            let mut memory = self.memory();
            if memory.spilled {
                return Ok(());
            }
            std::mem::replace(&mut *memory, Memory::spilled())
        };
        let texts: Vec<(String, i64, Option<&'static str>, Option<String>)> = kept
            .entries
            .iter()
            .flat_map(|(table, rows)| {
                rows.iter().map(move |(id, (command, data))| {
                    (
                        table.clone(),
                        *id,
                        command.map(Command::letter),
                        data.as_ref().map(json_text),
                    )
                })
            })
            .collect();
        let entries: Vec<(&str, i64, Option<&'static str>, Option<String>)> = texts
            .iter()
            .map(|(table, id, command, data)| (table.as_str(), *id, *command, data.clone()))
            .collect();
        self.write_entries(db, &entries).await?;
        let txn = db.begin().await?;
        for (index, (page, rows)) in kept.pages {
            self.write_page(&txn, index, &page, &rows).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn write_entries<C: TransactionTrait>(
        &self,
        db: &C,
        entries: &[(&str, i64, Option<&'static str>, Option<String>)],
    ) -> Result<()>
    where
        C::Transaction: ConnectionTrait,
    {
        let now = now_millis();
        let txn = db.begin().await?;
        let backend = txn.get_database_backend();
        for chunk in entries.chunks(BATCH) {
            let placeholders = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 6);
            for (table, id, command, data) in chunk {
                values.push(self.session.clone().into());
                values.push((*table).into());
                values.push((*id).into());
                values.push(command.map(str::to_owned).into());
                values.push(data.clone().into());
                values.push(now.into());
            }
            // A row already staged takes its newest state; its command stays the newest
            // operation logged for it (a row sent as a parent carries none).
            txn.execute_raw(stmt(
                backend,
                &format!(
                    "INSERT INTO dbsync_staged (session, table_name, row_id, command, data, created_at) \
                     VALUES {placeholders} ON CONFLICT (session, table_name, row_id) DO UPDATE SET \
                     data = excluded.data, command = COALESCE(excluded.command, dbsync_staged.command)"
                ),
                values,
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Reads the staged entries of `table`, a chunk at a time, in key order.
    pub(super) fn latest<'a>(&'a self, table: &'a TableInfo) -> Latest<'a> {
        Latest {
            staging: self,
            table,
            after: i64::MIN,
            take: false,
        }
    }

    /// Like [`Staging::latest`], for the last read of `table`'s rows: rows kept in memory
    /// move out instead of being copied.
    pub(super) fn latest_last_read<'a>(&'a self, table: &'a TableInfo) -> Latest<'a> {
        Latest {
            take: true,
            ..self.latest(table)
        }
    }

    /// Whether a delete may be staged for `table`: `false` only when it is known there is
    /// none (the session is in memory), so that a merge can skip looking for them.
    pub(super) fn may_delete(&self, table: &str) -> bool {
        self.memory().has_deletes(table).unwrap_or(true)
    }

    /// The largest key staged for `table`.
    pub(super) async fn max_id(&self, txn: &DatabaseTransaction, table: &str) -> Result<i64> {
        if let Some(max) = self.memory().max_id(table) {
            return Ok(max);
        }
        let row = txn
            .query_one_raw(stmt(
                txn.get_database_backend(),
                "SELECT MAX(row_id) FROM dbsync_staged WHERE session = ? AND table_name = ?",
                vec![self.session.clone().into(), table.into()],
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0),
            None => 0,
        })
    }
}

/// A staged repair page, or part of one, that is not the JSON it was when it came.
pub(super) fn undecodable(err: serde_json::Error) -> Error {
    Error::ServerError {
        status: 200,
        message: format!("a repair page that does not decode: {err}"),
    }
}

fn json_text(row: &Row) -> String {
    serde_json::to_string(row).unwrap_or_default()
}

/// Where a repair page sits in the server's walk over its tables.
#[derive(Clone)]
pub(super) struct StagedPage {
    /// The table the page walks (`None` from a server that does not say).
    pub walked: Option<String>,
    /// The cursor the page was asked from (`None` for the first).
    pub cursor: Option<RepairCursor>,
    /// Where the walk goes on (`None` after the last page).
    pub next: Option<RepairCursor>,
}

/// The staged state of one row.
pub(super) struct Entry {
    pub row_id: i64,
    pub command: Option<Command>,
    pub data: Option<Row>,
}

/// A reader of one table's staged entries.
pub(super) struct Latest<'a> {
    staging: &'a Staging,
    table: &'a TableInfo,
    after: i64,
    take: bool,
}

impl Latest<'_> {
    /// The next chunk; empty at the end.
    pub(super) async fn next(&mut self, txn: &DatabaseTransaction) -> Result<Vec<Entry>> {
        let table = self.table;
        let kept = self
            .staging
            .memory()
            .chunk(&table.name, self.after, CHUNK as usize, self.take);
        if let Some(entries) = kept {
            if let Some(last) = entries.last() {
                self.after = last.row_id;
            }
            return Ok(entries);
        }
        let rows = txn
            .query_all_raw(stmt(
                txn.get_database_backend(),
                &format!(
                    "SELECT row_id, command, data FROM dbsync_staged WHERE session = ? \
                     AND table_name = ? AND row_id > ? ORDER BY row_id LIMIT {CHUNK}"
                ),
                vec![
                    self.staging.session.clone().into(),
                    table.name.clone().into(),
                    self.after.into(),
                ],
            ))
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let row_id: i64 = row.try_get_by_index(0)?;
            self.after = row_id;
            let command: Option<String> = row.try_get_by_index(1)?;
            let data: Option<String> = row.try_get_by_index(2)?;
            entries.push(Entry {
                row_id,
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
