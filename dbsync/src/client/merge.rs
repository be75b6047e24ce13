//! Carrying out a merge: the staged server changes, table by table, against the node's
//! unsynced changes, inside the pull's untracked transaction.

use super::pull::PullReport;
use super::staging::{Entry, Staging};
use crate::capture::quote;
use crate::error::{Error, Result, UniqueConflict};
use crate::merge::{
    ConflictKind, ConflictPolicy, ConflictRows, RemoteChange, Resolution, ResolvedConflict, Step,
    decide,
};
use crate::node_state::stmt;
use crate::oplog::{Command, compress, unsynced_operations};
use crate::registry::Registry;
use crate::row::Row;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};

/// What deciding a staged row led to.
enum Write {
    /// Write this server row.
    Row(Row),
    /// The row was already written (by a conflict policy).
    Done,
    /// Nothing to write.
    Nothing,
}

/// Conflict policies by table, with a default.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policies {
    pub default: ConflictPolicy,
    pub by_table: HashMap<String, ConflictPolicy>,
}

impl Policies {
    fn for_table(&self, table: &str) -> &ConflictPolicy {
        self.by_table.get(table).unwrap_or(&self.default)
    }
}

/// The state of one merge: the local unsynced changes by row, and what has been learnt.
pub(super) struct Merge<'t> {
    txn: &'t DatabaseTransaction,
    staging: &'t Staging,
    registry: &'static Registry,
    policies: &'t Policies,
    local: HashMap<(u32, i64), Command>,
    max_ids: BTreeMap<String, i64>,
    clashes: Vec<UniqueConflict>,
    /// Rows moved by this merge, new key to old: a failed pull rolls the moves back, so
    /// errors name rows by the keys the application still sees.
    moved_from: HashMap<(u32, i64), i64>,
}

impl<'t> Merge<'t> {
    pub(super) async fn new(
        txn: &'t DatabaseTransaction,
        staging: &'t Staging,
        registry: &'static Registry,
        policies: &'t Policies,
        max_ids: BTreeMap<String, i64>,
    ) -> Result<Self> {
        let local = compress(&unsynced_operations(txn).await?)
            .into_iter()
            .map(|op| ((op.content_type_id, op.row_id), op.command))
            .collect();
        Ok(Merge {
            txn,
            staging,
            registry,
            policies,
            local,
            max_ids,
            clashes: Vec::new(),
            moved_from: HashMap::new(),
        })
    }

    /// Deletes children first, then writes parents first. Unique clashes are gathered over
    /// the whole pull and refused together, so the application sees them all at once.
    pub(super) async fn apply(&mut self, report: &mut PullReport) -> Result<()> {
        let tables: Vec<&TableInfo> = self.registry.pulled().collect();
        for info in tables.iter().rev() {
            if !self.staging.may_delete(&info.name) {
                continue;
            }
            let mut reader = self.staging.latest(info);
            loop {
                let chunk = reader.next(self.txn).await?;
                if chunk.is_empty() {
                    break;
                }
                let mut gone = Vec::new();
                for entry in chunk
                    .iter()
                    .filter(|e| e.data.is_none() && e.command == Some(Command::Delete))
                {
                    if self.delete(info, entry.row_id, report).await? {
                        gone.push(entry.row_id);
                    }
                }
                info.ops().delete(self.txn, &gone).await?;
                report.applied += gone.len() as u64;
            }
        }
        for info in &tables {
            // No local row holds a value in an empty table (a node's first pull).
            if !info.unique.is_empty()
                && !crate::select_json::is_empty(self.txn, &quote(&info.name)).await?
            {
                self.vacate_unique_values(info).await?;
            }
            // Deletes and unique values were read above: the rows are not read again.
            let mut reader = self.staging.latest_last_read(info);
            let mut written = false;
            loop {
                let chunk = reader.next(self.txn).await?;
                if chunk.is_empty() {
                    break;
                }
                let mut batch = Vec::new();
                for entry in chunk.into_iter().filter(|e| e.data.is_some()) {
                    match self.upsert(info, entry, report).await? {
                        Write::Row(row) => batch.push(row),
                        Write::Done => written = true,
                        Write::Nothing => {}
                    }
                }
                written |= !batch.is_empty();
                report.applied += batch.len() as u64;
                self.write_many(info, &batch).await?;
            }
            if written {
                crate::apply::advance_key_generator(self.txn, info).await?;
            }
        }
        if !self.clashes.is_empty() {
            return Err(Error::UniqueConstraint {
                conflicts: std::mem::take(&mut self.clashes),
            });
        }
        raise_key_generators(self.txn, self.registry, &self.max_ids).await
    }

    /// Decides a server delete; returns whether the row is to be deleted locally.
    async fn delete(&mut self, info: &TableInfo, id: i64, report: &mut PullReport) -> Result<bool> {
        let key = (info.content_type_id, id);
        let local = self.local.get(&key).copied();
        let referenced = local.is_none() && self.has_unsynced_children(info, id).await?;
        let step = decide(Some(Command::Delete), local, referenced);
        match step {
            Step::Apply => return Ok(true),
            Step::KeepParent => {
                self.log_local(info, id, Command::Insert).await?;
                note(report, info, id, step, Resolution::KeptParent);
            }
            Step::DropLocal => {
                self.forget_local(info, id).await?;
                note(report, info, id, step, Resolution::BothDeleted);
            }
            Step::Resolve(_) => {
                let local_row = info.ops().fetch(self.txn, &[id]).await?.pop();
                let resolution = self.resolve(info, id, local_row.as_ref(), None).await?;
                note(report, info, id, step, resolution);
            }
            Step::MoveLocalThenApply => {
                // The server's row under this key is gone already; only the local one moves.
                let new_id = self.move_local(info, id).await?;
                report.moved.push((info.name.clone(), id, new_id));
                note(report, info, id, step, Resolution::Moved { new_id });
            }
            Step::Skip | Step::Restore(_) => {}
        }
        Ok(false)
    }

    /// Decides one staged row: the row to write, or what was done with it.
    async fn upsert(
        &mut self,
        info: &TableInfo,
        entry: Entry,
        report: &mut PullReport,
    ) -> Result<Write> {
        let id = entry.row_id;
        let row = entry.data.expect("filtered on data");
        let change = RemoteChange {
            content_type_id: info.content_type_id,
            row_id: id,
            command: entry.command.map(|c| {
                if c == Command::Delete {
                    Command::Update
                } else {
                    c
                }
            }),
        };
        let step = decide(
            change.command,
            self.local.get(&(info.content_type_id, id)).copied(),
            false,
        );
        match step {
            Step::Apply => {}
            Step::Skip | Step::DropLocal | Step::KeepParent => return Ok(Write::Nothing),
            Step::Restore(_) => {
                self.forget_local(info, id).await?;
                note(report, info, id, step, Resolution::Restored);
            }
            Step::MoveLocalThenApply => {
                let new_id = self.move_local(info, id).await?;
                report.moved.push((info.name.clone(), id, new_id));
                note(report, info, id, step, Resolution::Moved { new_id });
            }
            Step::Resolve(_) => {
                let local_row = info.ops().fetch(self.txn, &[id]).await?.pop();
                let resolution = self
                    .resolve(info, id, local_row.as_ref(), Some(&row))
                    .await?;
                note(report, info, id, step, resolution);
                return Ok(Write::Done);
            }
        }
        Ok(Write::Row(row))
    }

    /// Applies the table's policy to a row both sides changed.
    async fn resolve(
        &mut self,
        info: &TableInfo,
        id: i64,
        local: Option<&Row>,
        server: Option<&Row>,
    ) -> Result<Resolution> {
        let chosen = match self.policies.for_table(&info.name) {
            ConflictPolicy::LocalWins => return Ok(Resolution::KeptLocal),
            ConflictPolicy::ServerWins => server.cloned(),
            ConflictPolicy::Custom(decide) => decide(&ConflictRows {
                table: &info.name,
                row_id: id,
                local,
                server,
            }),
        };
        let took_server = chosen.as_ref() == server;
        match &chosen {
            Some(row) => self.write(info, row).await?,
            None => info.ops().delete(self.txn, &[id]).await?,
        }
        self.forget_local(info, id).await?;
        if took_server {
            return Ok(Resolution::TookServer);
        }
        // The merged row differs from the server's: push it.
        let command = if chosen.is_some() {
            Command::Update
        } else {
            Command::Delete
        };
        self.log_local(info, id, command).await?;
        Ok(Resolution::Merged)
    }

    /// Writes one row; see [`Merge::write_many`].
    async fn write(&mut self, info: &TableInfo, row: &Row) -> Result<()> {
        self.write_many(info, std::slice::from_ref(row)).await
    }

    /// Writes server rows after checking their unique values against the local rows; a clash
    /// is recorded (the pull then fails and rolls back) and nothing more is written.
    async fn write_many(&mut self, info: &TableInfo, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let key = |row: &Row| {
            row.get(&info.primary_key)
                .and_then(Json::as_i64)
                .unwrap_or_default()
        };
        for columns in &info.unique {
            if let [column] = &columns[..] {
                let values: Vec<Json> = rows
                    .iter()
                    .filter_map(|r| r.get(column).filter(|v| !v.is_null()).cloned())
                    .collect();
                let holders: HashMap<String, i64> = info
                    .ops()
                    .holders(self.txn, column, &values)
                    .await?
                    .iter()
                    .filter_map(|h| Some((h.get(column)?.to_string(), key(h))))
                    .collect();
                for row in rows {
                    let Some(value) = row.get(column).filter(|v| !v.is_null()) else {
                        continue;
                    };
                    if let Some(&holder) = holders.get(&value.to_string())
                        && holder != key(row)
                    {
                        self.clash(info, holder, columns);
                    }
                }
                continue;
            }
            for row in rows {
                let filters: Row = columns
                    .iter()
                    .map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Json::Null)))
                    .collect();
                // SQL treats NULLs as distinct: a partly NULL key clashes with nothing.
                if filters.values().any(Json::is_null) {
                    continue;
                }
                for holder in info.ops().query(self.txn, &filters, 2).await? {
                    if key(&holder) != key(row) {
                        self.clash(info, key(&holder), columns);
                    }
                }
            }
        }
        if self.clashes.is_empty() {
            let refs: Vec<&Row> = rows.iter().collect();
            info.ops().upsert_many(self.txn, &refs).await?;
        }
        Ok(())
    }

    fn clash(&mut self, info: &TableInfo, holder: i64, columns: &[String]) {
        let original = self
            .moved_from
            .get(&(info.content_type_id, holder))
            .copied()
            .unwrap_or(holder);
        self.clashes.push(UniqueConflict {
            table: info.name.clone(),
            row_id: original,
            columns: columns.to_vec(),
        });
    }

    /// Vacates the unique values that the staged rows of `info` take from local rows (see
    /// [`crate::apply::vacate_unique_values`]); rows whose local change wins are left alone.
    async fn vacate_unique_values(&mut self, info: &TableInfo) -> Result<()> {
        let mut reader = self.staging.latest(info);
        loop {
            let chunk = reader.next(self.txn).await?;
            if chunk.is_empty() {
                return Ok(());
            }
            let incoming: Vec<&Row> = chunk
                .iter()
                .filter(|e| !self.local.contains_key(&(info.content_type_id, e.row_id)))
                .filter_map(|e| e.data.as_ref())
                .collect();
            crate::apply::vacate_unique_values(self.txn, info, &incoming).await?;
        }
    }

    /// Whether rows referencing `id` have unsynced local changes.
    async fn has_unsynced_children(&self, info: &TableInfo, id: i64) -> Result<bool> {
        if self.local.is_empty() {
            return Ok(false);
        }
        for child in self.registry.tables() {
            for fk in &child.foreign_keys {
                let [column] = &fk.columns[..] else { continue };
                if fk.to_table != info.name {
                    continue;
                }
                let rows = self
                    .txn
                    .query_all_raw(stmt(
                        self.txn.get_database_backend(),
                        &format!(
                            "SELECT {} FROM {} WHERE {} = ?",
                            as_bigint(self.txn.get_database_backend(), &quote(&child.primary_key)),
                            quote(&child.name),
                            quote(column)
                        ),
                        vec![id.into()],
                    ))
                    .await?;
                for row in rows {
                    let child_id: i64 = row.try_get_by_index(0)?;
                    if self.local.contains_key(&(child.content_type_id, child_id)) {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Moves a locally inserted row to a key neither side has used, with every local
    /// reference to it, so that the server's row can take its key.
    async fn move_local(&mut self, info: &TableInfo, old: i64) -> Result<i64> {
        let txn = self.txn;
        let new_id = super::rekey::local_max(txn, info)
            .await?
            .max(self.max_ids.get(&info.name).copied().unwrap_or(0))
            .max(self.staging.max_id(txn, &info.name).await?)
            + 1;
        super::rekey::move_row(txn, self.registry, info, old, new_id).await?;
        let original = self
            .moved_from
            .remove(&(info.content_type_id, old))
            .unwrap_or(old);
        self.moved_from
            .insert((info.content_type_id, new_id), original);
        let command = self
            .local
            .remove(&(info.content_type_id, old))
            .unwrap_or(Command::Insert);
        self.local.insert((info.content_type_id, new_id), command);
        Ok(new_id)
    }

    /// Drops the unsynced log entries of a row.
    async fn forget_local(&mut self, info: &TableInfo, id: i64) -> Result<()> {
        self.txn
            .execute_raw(stmt(
                self.txn.get_database_backend(),
                "DELETE FROM dbsync_operations WHERE content_type_id = ? AND row_id = ? AND version_id IS NULL",
                vec![i64::from(info.content_type_id).into(), id.into()],
            ))
            .await?;
        self.local.remove(&(info.content_type_id, id));
        Ok(())
    }

    /// Adds a local log entry for a row, as if the application had written it.
    async fn log_local(&mut self, info: &TableInfo, id: i64, command: Command) -> Result<()> {
        self.txn
            .execute_raw(stmt(
                self.txn.get_database_backend(),
                "INSERT INTO dbsync_operations (content_type_id, row_id, command) VALUES (?, ?, ?)",
                vec![
                    i64::from(info.content_type_id).into(),
                    id.into(),
                    command.letter().into(),
                ],
            ))
            .await?;
        self.local.insert((info.content_type_id, id), command);
        Ok(())
    }
}

/// Keeps the local key generators above every key the server has handed out, so that a
/// later local insert never takes the key of a row that existed on the server.
pub(super) async fn raise_key_generators(
    txn: &DatabaseTransaction,
    registry: &Registry,
    max_ids: &BTreeMap<String, i64>,
) -> Result<()> {
    let backend = txn.get_database_backend();
    for (table, &max) in max_ids {
        let Some(info) = registry.table(table) else {
            continue;
        };
        match backend {
            DbBackend::Sqlite => {
                let exec = |sql: &str, values: Vec<sea_orm::Value>| {
                    txn.execute_raw(stmt(backend, sql, values))
                };
                exec(
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?",
                    vec![max.into(), info.name.clone().into(), max.into()],
                )
                .await?;
                exec(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? \
                     WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                    vec![
                        info.name.clone().into(),
                        max.into(),
                        info.name.clone().into(),
                    ],
                )
                .await?;
            }
            DbBackend::Postgres => {
                txn
                    .execute_raw(stmt(
                        backend,
                        "SELECT setval(s, GREATEST(?, COALESCE(pg_sequence_last_value(s), 0), 1)) \
                         FROM (SELECT pg_get_serial_sequence(?, ?)::regclass AS s) seq WHERE s IS NOT NULL",
                        vec![max.into(), quote(&info.name).into(), info.primary_key.clone().into()],
                    ))
                    .await?;
            }
            // MySQL changes AUTO_INCREMENT only by DDL, which would commit the pull half-way;
            // nodes run on SQLite.
            _ => {}
        }
    }
    Ok(())
}

fn note(report: &mut PullReport, info: &TableInfo, id: i64, step: Step, resolution: Resolution) {
    let kind = step.conflict().unwrap_or(ConflictKind::Dependency);
    report.conflicts.push(ResolvedConflict {
        table: info.name.clone(),
        row_id: id,
        kind,
        resolution,
    });
}

/// `expr` read as a 64-bit integer: PostgreSQL keeps a 32-bit column's type through `MAX`.
fn as_bigint(backend: DbBackend, expr: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST({expr} AS BIGINT)"),
        _ => expr.to_owned(),
    }
}
