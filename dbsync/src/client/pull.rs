//! `pull`: download the server's operations since the node's version, then apply them in one
//! transaction, merging them with the node's unsynced changes.
//!
//! Merge rules (python-sync-db's, see `docs/merge.md` when it lands):
//! - a row changed here and on the server keeps the local change, which the next push sends;
//! - a row deleted on the server but updated here is kept, and the push re-creates it;
//! - a row deleted here but changed on the server comes back with the server's values, and
//!   the local delete is dropped;
//! - a row inserted here under a key the server also used moves to a fresh key, and the
//!   local rows referencing it follow;
//! - a parent deleted on the server with local children that have unsynced changes is kept
//!   and pushed again.

use super::incoming::{self, Entry, Latest};
use super::transport::Kind;
use super::{Client, Phase, Progress};
use crate::capture::quote;
use crate::error::Result;
use crate::messages::{PullRequest, PullResponse};
use crate::node_state::{self, stmt};
use crate::oplog::{Command, compress, unsynced_operations};
use crate::registry::Registry;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use std::collections::{BTreeMap, HashMap};

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullReport {
    /// The node's version afterwards.
    pub version: i64,
    /// Server operations received.
    pub operations: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Rows written or deleted locally.
    pub applied: u64,
    /// Server changes not applied because the row has an unsynced local change, which wins.
    pub kept_local: u64,
    /// Local rows moved to a new key because the server used theirs: `(table, old, new)`.
    pub moved: Vec<(String, i64, i64)>,
    /// Local deletes undone because the server changed the row.
    pub restored: u64,
}

impl Client {
    /// Pulls and applies the server's changes since this node's version.
    #[tracing::instrument(name = "dbsync.client.pull", skip_all)]
    pub async fn pull(&self) -> Result<PullReport> {
        let db = &self.inner.db;
        let node = self.node().await?;
        incoming::clear(db).await?;
        let mut report = PullReport::default();
        let mut target = None;
        let mut after = None;
        let mut max_ids = BTreeMap::new();
        loop {
            let request = PullRequest {
                meta: self.meta(node.node_id),
                base_version: node.version,
                target_version: target,
                after,
                page_size: Some(self.inner.page_size),
            };
            let (page, bytes): (PullResponse, u64) = self
                .post(
                    "pull",
                    &request,
                    Some((node.node_id, &node.secret)),
                    Kind::Other,
                )
                .await?;
            report.bytes += bytes;
            report.operations += page.operations.len() as u64;
            if target.is_none() {
                max_ids = page.max_ids.clone();
            }
            target = Some(page.target_version);
            incoming::stage(db, &page.operations, &page.rows, self.inner.registry).await?;
            self.report(Progress {
                procedure: "pull",
                phase: Phase::Downloading,
                items: report.operations,
                bytes: report.bytes,
            });
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let target = target.unwrap_or(node.version);
        self.report(Progress {
            procedure: "pull",
            phase: Phase::Applying,
            items: report.operations,
            bytes: report.bytes,
        });
        let txn = crate::begin_untracked(db).await?;
        crate::apply::defer_foreign_keys(&txn).await?;
        let mut merge = Merge::new(&txn, self.inner.registry, max_ids).await?;
        merge.apply(&mut report).await?;
        node_state::advance_version(&*txn, target).await?;
        incoming::clear(&*txn).await?;
        txn.commit().await?;
        report.version = target.max(node.version);
        self.report(Progress {
            procedure: "pull",
            phase: Phase::Done,
            items: report.operations,
            bytes: report.bytes,
        });
        tracing::info!(
            version = report.version,
            operations = report.operations,
            "pulled"
        );
        Ok(report)
    }
}

/// The state of one merge: the local unsynced changes by row, and where rows moved.
struct Merge<'t> {
    txn: &'t DatabaseTransaction,
    registry: &'static Registry,
    local: HashMap<(u32, i64), Command>,
    max_ids: BTreeMap<String, i64>,
}

impl<'t> Merge<'t> {
    async fn new(
        txn: &'t DatabaseTransaction,
        registry: &'static Registry,
        max_ids: BTreeMap<String, i64>,
    ) -> Result<Self> {
        let local = compress(&unsynced_operations(txn).await?)
            .into_iter()
            .map(|op| ((op.content_type_id, op.row_id), op.command))
            .collect();
        Ok(Merge {
            txn,
            registry,
            local,
            max_ids,
        })
    }

    async fn apply(&mut self, report: &mut PullReport) -> Result<()> {
        let tables: Vec<&TableInfo> = self
            .registry
            .tables()
            .iter()
            .filter(|t| t.direction.pulls())
            .collect();
        for info in tables.iter().rev() {
            let mut reader = Latest::new(info);
            loop {
                let chunk = reader.next(self.txn).await?;
                if chunk.is_empty() {
                    break;
                }
                for entry in chunk
                    .into_iter()
                    .filter(|e| e.command == Some(Command::Delete))
                {
                    self.delete(info, entry.row_id, report).await?;
                }
            }
        }
        for info in &tables {
            let mut reader = Latest::new(info);
            let mut written = false;
            loop {
                let chunk = reader.next(self.txn).await?;
                if chunk.is_empty() {
                    break;
                }
                for entry in chunk.into_iter().filter(|e| e.data.is_some()) {
                    self.upsert(info, entry, report).await?;
                    written = true;
                }
            }
            if written {
                crate::apply::advance_key_generator(self.txn, info).await?;
            }
        }
        Ok(())
    }

    async fn delete(&mut self, info: &TableInfo, id: i64, report: &mut PullReport) -> Result<()> {
        let key = (info.content_type_id, id);
        match self.local.get(&key) {
            // Deleted on both sides: nothing left to send.
            Some(Command::Delete) => {
                self.forget_local(info, id).await?;
                report.applied += 1;
            }
            // Changed here: the local row stays and the push re-creates it on the server.
            Some(_) => report.kept_local += 1,
            None if self.has_unsynced_children(info, id).await? => {
                // Local children with unsynced changes need their parent: keep it, and have
                // the next push re-create it before them.
                self.log_local(info, id, Command::Insert).await?;
                report.kept_local += 1;
            }
            None => {
                info.ops().delete(self.txn, &[id]).await?;
                report.applied += 1;
            }
        }
        Ok(())
    }

    async fn upsert(
        &mut self,
        info: &TableInfo,
        entry: Entry,
        report: &mut PullReport,
    ) -> Result<()> {
        let key = (info.content_type_id, entry.row_id);
        let row = entry.data.expect("filtered on data");
        match self.local.get(&key).copied() {
            Some(Command::Update) => {
                report.kept_local += 1;
                return Ok(());
            }
            Some(Command::Delete) => {
                // The server changed a row deleted here: it comes back, the delete is dropped.
                self.forget_local(info, entry.row_id).await?;
                report.restored += 1;
            }
            Some(Command::Insert) => {
                let new_id = self.move_local(info, entry.row_id).await?;
                report.moved.push((info.name.clone(), entry.row_id, new_id));
            }
            None => {}
        }
        info.ops().upsert(self.txn, &row).await?;
        report.applied += 1;
        Ok(())
    }

    /// Whether rows referencing `id` have unsynced local changes.
    async fn has_unsynced_children(&self, info: &TableInfo, id: i64) -> Result<bool> {
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
        let backend = txn.get_database_backend();
        let (table, pk) = (quote(&info.name), quote(&info.primary_key));
        let local_max: Option<i64> = scalar(
            txn,
            &format!(
                "SELECT {} FROM {table}",
                as_bigint(backend, &format!("MAX({pk})"))
            ),
            vec![],
        )
        .await?;
        let mut new_id = local_max
            .unwrap_or(0)
            .max(self.max_ids.get(&info.name).copied().unwrap_or(0))
            .max(incoming::max_staged_id(txn, &info.name).await?);
        if backend == DbBackend::Sqlite {
            let seq: Option<i64> = scalar(
                txn,
                "SELECT seq FROM sqlite_sequence WHERE name = ?",
                vec![info.name.clone().into()],
            )
            .await?;
            new_id = new_id.max(seq.unwrap_or(0));
        }
        new_id += 1;
        let exec =
            |sql: String, values: Vec<sea_orm::Value>| txn.execute_raw(stmt(backend, &sql, values));
        exec(
            format!("UPDATE {table} SET {pk} = ? WHERE {pk} = ?"),
            vec![new_id.into(), old.into()],
        )
        .await?;
        for child in self.registry.tables() {
            for fk in &child.foreign_keys {
                if let [column] = &fk.columns[..]
                    && fk.to_table == info.name
                {
                    exec(
                        format!(
                            "UPDATE {} SET {} = ? WHERE {} = ?",
                            quote(&child.name),
                            quote(column),
                            quote(column)
                        ),
                        vec![new_id.into(), old.into()],
                    )
                    .await?;
                }
            }
        }
        exec(
            "UPDATE dbsync_operations SET row_id = ? WHERE content_type_id = ? AND row_id = ? AND version_id IS NULL".into(),
            vec![new_id.into(), i64::from(info.content_type_id).into(), old.into()],
        )
        .await?;
        if backend == DbBackend::Sqlite {
            exec(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?".into(),
                vec![new_id.into(), info.name.clone().into(), new_id.into()],
            )
            .await?;
        }
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

/// `expr` read as a 64-bit integer: PostgreSQL keeps a 32-bit column's type through `MAX`.
fn as_bigint(backend: DbBackend, expr: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST({expr} AS BIGINT)"),
        _ => expr.to_owned(),
    }
}
