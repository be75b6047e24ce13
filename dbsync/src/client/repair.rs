//! `repair`: rebuild the local tables from the server's full state.

use super::staging::{StagedPage, Staging, undecodable};
use super::transport::{Kind, Wire, not_an_answer};
use super::{Client, Phase, Progress};
use crate::capture::quote;
use crate::error::{Error, Result};
use crate::messages::{RawRows, RepairCursor, RepairRequest};
use crate::node_state::{self, stmt};
use crate::oplog::{compress, unsynced_operations};
use crate::row::Row;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, VecDeque};

/// Repair pages asked for at once.
const PAGES_AT_ONCE: usize = 2;

/// A repair page asked for: the cursor it was asked from, and the answer.
type Asked = (Option<RepairCursor>, Result<(Vec<u8>, Wire)>);

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
        let staging = Staging::start(db, self.inner.staging_memory).await?;
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
        // Pages asked for and not staged yet, in order, with the cursor each was asked from.
        let mut ready: VecDeque<Asked> =
            VecDeque::from([(None, self.repair_page(node, None, None).await)]);
        let mut index = 0;
        while let Some((cursor, fetched)) = ready.pop_front() {
            let (bytes, wire) = fetched?;
            let page: Envelope<'_> =
                serde_json::from_slice(&bytes).map_err(|e| not_an_answer(&e))?;
            report.bytes += wire.received;
            report.rows += page.row_count()?;
            report.version = page.snapshot_version;
            let snapshot = Some(page.snapshot_version);
            // Where the walk goes on, by this page's word. Pages asked for on an earlier
            // page's word must start there; if one does not (the table changed meanwhile),
            // they are dropped and the walk goes on from here.
            let mut chain: VecDeque<RepairCursor> =
                page.next.iter().chain(&page.ahead).cloned().collect();
            if !ready
                .iter()
                .zip(&chain)
                .all(|((asked, _), said)| asked.as_ref() == Some(said))
            {
                ready.clear();
            }
            chain.drain(..ready.len().min(chain.len()));
            // Pages are asked for in pairs, both at once, while this one is staged: a
            // server on PostgreSQL spends most of a page in the database, on one core.
            let asks: Vec<RepairCursor> = if ready.is_empty() {
                chain.into_iter().take(PAGES_AT_ONCE).collect()
            } else {
                Vec::new()
            };
            let ask = |cursor: Option<&RepairCursor>| {
                let cursor = cursor.cloned();
                async move {
                    match cursor {
                        Some(c) => Some((
                            Some(c.clone()),
                            self.repair_page(node, snapshot, Some(c)).await,
                        )),
                        None => None,
                    }
                }
            };
            let staged = StagedPage {
                walked: page.table.clone(),
                cursor,
                next: page.next.clone(),
            };
            // A snapshot needs no merging, so its rows are staged as they came.
            let (stored, first, second) = tokio::join!(
                staging.stage_page(db, index, &staged, page.rows.get()),
                ask(asks.first()),
                ask(asks.get(1)),
            );
            stored?;
            index += 1;
            ready.extend(first.into_iter().chain(second));
            self.report(Progress {
                procedure: "repair",
                phase: Phase::Downloading,
                items: report.rows,
                bytes: report.bytes,
            });
            if page.next.is_none() {
                break;
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
        txn.pause_triggers_for(usize::try_from(report.rows).unwrap_or(usize::MAX))
            .await?;
        let tables: Vec<&TableInfo> = self.inner.registry.pulled().collect();
        let mut index = 0;
        while let Some((page, text)) = staging.page(&txn, index).await? {
            index += 1;
            // Each table's rows stay text until a table needs them decoded: SQLite takes
            // them as they came (`TableOps::write_snapshot_text`).
            let rows: RawRows = serde_json::from_str(&text).map_err(undecodable)?;
            for table in rows.keys() {
                if !tables.iter().any(|t| &t.name == table) {
                    return Err(Error::UnknownTable {
                        table: table.clone(),
                    });
                }
            }
            delete_vanished(&txn, &tables, &page, &rows).await?;
            for info in &tables {
                if let Some(list) = rows.get(&info.name) {
                    crate::apply::write_snapshot(&txn, info, list.get()).await?;
                }
            }
        }
        for info in &tables {
            crate::apply::advance_key_generator(&txn, info).await?;
        }
        txn.execute_unprepared("DELETE FROM dbsync_operations")
            .await?;
        node_state::set_pending(&*txn, None).await?;
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

impl Client {
    async fn repair_page(
        &self,
        node: &node_state::NodeState,
        snapshot_version: Option<i64>,
        after: Option<RepairCursor>,
    ) -> Result<(Vec<u8>, Wire)> {
        let request = RepairRequest {
            meta: self.meta(node.node_id),
            snapshot_version,
            after,
            page_size: Some(self.inner.page_size),
        };
        self.post_bytes(
            "repair",
            &request,
            Some((node.node_id, &node.secret)),
            Kind::Other,
        )
        .await
    }
}

/// A repair page with its rows left undecoded ([`crate::messages::RepairResponse`]'s shape).
#[derive(Deserialize)]
struct Envelope<'a> {
    snapshot_version: i64,
    #[serde(borrow)]
    rows: &'a RawValue,
    next: Option<RepairCursor>,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    ahead: Vec<RepairCursor>,
}

impl Envelope<'_> {
    /// The rows of the page, counted without decoding them.
    fn row_count(&self) -> Result<u64> {
        let tables: BTreeMap<String, Vec<&RawValue>> =
            serde_json::from_str(self.rows.get()).map_err(|e| not_an_answer(&e))?;
        Ok(tables.values().map(|rows| rows.len() as u64).sum())
    }
}

/// Deletes the node's rows of the table `page` walks that lie in its key range and are not
/// in it: the server no longer has them. Only those go: emptying the tables first would
/// cascade into local tables that reference them (push-only or untracked ones) and lose
/// their rows.
async fn delete_vanished(
    txn: &DatabaseTransaction,
    tables: &[&TableInfo],
    page: &StagedPage,
    rows: &RawRows,
) -> Result<()> {
    let walked = match (&page.walked, &page.cursor) {
        (Some(table), _) => Some(table.as_str()),
        (None, Some(cursor)) => Some(cursor.table.as_str()),
        (None, None) => tables.first().map(|t| t.name.as_str()),
    };
    let Some(info) = walked.and_then(|name| tables.iter().find(|t| t.name == name)) else {
        return Ok(());
    };
    let low = page
        .cursor
        .as_ref()
        .filter(|c| c.table == info.name)
        .map_or(i64::MIN, |c| c.after_id);
    let high = page
        .next
        .as_ref()
        .filter(|n| n.table == info.name)
        .map_or(i64::MAX, |n| n.after_id);
    let text = rows.get(&info.name).map_or("[]", |list| list.get());
    if info.ops().delete_absent_text(txn, text, low, high).await? {
        return Ok(());
    }
    let list: Vec<Row> = serde_json::from_str(text).map_err(undecodable)?;
    let kept: Vec<i64> = list
        .iter()
        .filter_map(|row| row.get(&info.primary_key)?.as_i64())
        .collect();
    let kept = serde_json::to_string(&kept).map_err(|e| Error::InvalidOperation(e.to_string()))?;
    txn.execute_raw(stmt(
        txn.get_database_backend(),
        &format!(
            "DELETE FROM {table} WHERE {pk} > ? AND {pk} <= ? \
             AND {pk} NOT IN (SELECT value FROM json_each(?))",
            table = quote(&info.name),
            pk = quote(&info.primary_key),
        ),
        vec![low.into(), high.into(), kept.into()],
    ))
    .await?;
    Ok(())
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
