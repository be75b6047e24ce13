//! `repair`: rebuild the local tables from the server's full state.

use super::staging::Staging;
use super::transport::Kind;
use super::{Client, Phase, Progress};
use crate::capture::quote;
use crate::error::{Error, Result};
use crate::messages::{RepairRequest, RepairResponse};
use crate::node_state::{self, stmt};
use crate::oplog::{compress, unsynced_operations};
use crate::table::TableInfo;
use sea_orm::ConnectionTrait;

/// What to do with local changes that were never pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsyncedPolicy {
    /// Refuse the repair with [`Error::UnsyncedChanges`] (the safe default).
    Refuse,
    /// Discard them: the caller accepts losing them.
    Discard,
}

/// What a repair did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The node's version afterwards.
    pub version: i64,
    /// Rows written.
    pub rows: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Unsynced local changes discarded.
    pub discarded: usize,
}

impl Client {
    /// Replaces every pulled table's rows with the server's, in one transaction, and sets
    /// the node's version to the snapshot's. Pages are staged locally first, so memory stays
    /// bounded whatever the size of the data.
    #[tracing::instrument(name = "dbsync.client.repair", skip_all)]
    pub async fn repair(&self, unsynced: UnsyncedPolicy) -> Result<RepairReport> {
        let db = &self.inner.db;
        let node = self.node().await?;
        check_unsynced(db, unsynced).await?;
        let staging = Staging::start(db).await?;
        let result = self.repair_staged(&node, unsynced, &staging).await;
        if result.is_err() {
            let _ = staging.finish(db).await;
        }
        result
    }

    async fn repair_staged(
        &self,
        node: &node_state::NodeState,
        unsynced: UnsyncedPolicy,
        staging: &Staging,
    ) -> Result<RepairReport> {
        let db = &self.inner.db;
        let mut report = RepairReport::default();
        let mut snapshot = None;
        let mut after = None;
        loop {
            let request = RepairRequest {
                meta: self.meta(node.node_id),
                snapshot_version: snapshot,
                after,
                page_size: Some(self.inner.page_size),
            };
            let (page, wire): (RepairResponse, super::transport::Wire) = self
                .post(
                    "repair",
                    &request,
                    Some((node.node_id, &node.secret)),
                    Kind::Other,
                )
                .await?;
            report.bytes += wire.received;
            report.rows += page.rows.values().map(|r| r.len() as u64).sum::<u64>();
            snapshot = Some(page.snapshot_version);
            staging
                .stage(db, &[], &page.rows, self.inner.registry)
                .await?;
            self.report(Progress {
                procedure: "repair",
                phase: Phase::Downloading,
                items: report.rows,
                bytes: report.bytes,
            });
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.report(Progress {
            procedure: "repair",
            phase: Phase::Applying,
            items: report.rows,
            bytes: report.bytes,
        });
        let txn = crate::begin_untracked(db).await?;
        // Checked again inside the transaction: a write made while pages downloaded counts.
        report.discarded = check_unsynced(&*txn, unsynced).await?;
        crate::apply::defer_foreign_keys(&txn).await?;
        let tables: Vec<&TableInfo> = self.inner.registry.pulled().collect();
        // Only rows the server no longer has go: deleting everything would cascade into
        // local tables that reference these (push-only or untracked ones) and lose them.
        for info in tables.iter().rev() {
            let (staged, values) = staging.staged_keys(&info.name);
            txn.execute_raw(stmt(
                txn.get_database_backend(),
                &format!(
                    "DELETE FROM {table} WHERE {pk} NOT IN ({staged})",
                    table = quote(&info.name),
                    pk = quote(&info.primary_key),
                ),
                values,
            ))
            .await?;
        }
        for info in &tables {
            let mut reader = staging.latest(info);
            loop {
                let chunk = reader.next(&txn).await?;
                if chunk.is_empty() {
                    break;
                }
                let rows: Vec<&crate::row::Row> =
                    chunk.iter().filter_map(|e| e.data.as_ref()).collect();
                crate::apply::vacate_unique_values(&txn, info, &rows).await?;
                info.ops().upsert_many(&txn, &rows).await?;
            }
            crate::apply::advance_key_generator(&txn, info).await?;
        }
        txn.execute_unprepared("DELETE FROM dbsync_operations")
            .await?;
        node_state::set_pending(&*txn, None).await?;
        report.version = snapshot.unwrap_or(0);
        node_state::set_version(&*txn, report.version).await?;
        staging.finish(&*txn).await?;
        txn.commit().await?;
        self.report(Progress {
            procedure: "repair",
            phase: Phase::Done,
            items: report.rows,
            bytes: report.bytes,
        });
        tracing::info!(version = report.version, rows = report.rows, "repaired");
        Ok(report)
    }
}

/// The number of rows with unsynced changes, or the refusal.
async fn check_unsynced<C: sea_orm::ConnectionTrait>(
    db: &C,
    policy: UnsyncedPolicy,
) -> Result<usize> {
    let count = compress(&unsynced_operations(db).await?).len();
    if count > 0 && policy == UnsyncedPolicy::Refuse {
        return Err(Error::UnsyncedChanges { count });
    }
    Ok(count)
}
