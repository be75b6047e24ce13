//! A pull with nothing to merge: a node without unsynced changes whose whole pull fits in
//! one page writes the page's rows from the text they came in, the way a repair writes its
//! pages, instead of decoding, staging and merging them row by row.
//!
//! Deciding each row is what a merge is for, and with no local change every decision is
//! "take the server's": the rows the server deleted go, then every row of the page replaces
//! the local one. That is a node's first pull, and every pull of a node that only reads;
//! decoding and staging were half of its time.

use super::merge::raise_key_generators;
use super::pull::PullReport;
use super::{Client, Phase, Progress};
use crate::error::{Error, Result};
use crate::messages::{PullResponse, RawRows};
use crate::node_state;
use crate::oplog::{Command, oldest_unsynced};
use crate::table::TableInfo;
use std::collections::HashMap;

impl Client {
    /// Applies `page`, the whole of a pull, when the node has nothing to merge it with: no
    /// unsynced operation and no push in flight, checked inside the transaction that writes
    /// the page. Gives the page back when the node has something to merge.
    pub(super) async fn apply_unmerged(
        &self,
        page: PullResponse<RawRows>,
        report: &mut PullReport,
    ) -> Result<Option<PullResponse<RawRows>>> {
        let registry = self.inner.registry;
        // A snapshot moves aside every local value a page's row takes, column by column,
        // which is right for single-column unique keys only: under a key of several columns
        // a row sharing one of its values clashes with nothing. The merge checks them whole.
        let composite = |table: &String| {
            registry
                .table(table)
                .is_some_and(|info| info.unique.iter().any(|columns| columns.len() > 1))
        };
        if page.rows.keys().any(composite) {
            return Ok(Some(page));
        }
        let txn = crate::begin_untracked(&self.inner.db).await?;
        let state = node_state::load(&*txn).await?.ok_or(Error::NotRegistered)?;
        if state.pending_push.is_some() || !oldest_unsynced(&*txn, 1).await?.is_empty() {
            txn.rollback().await?;
            return Ok(Some(page));
        }
        for table in page
            .rows
            .keys()
            .chain(page.operations.iter().map(|op| &op.table))
        {
            if registry.table(table).is_none() {
                return Err(Error::UnknownTable {
                    table: table.clone(),
                });
            }
        }
        self.report(Progress {
            procedure: "pull",
            phase: Phase::Applying,
            items: report.operations,
            bytes: report.bytes,
        });
        crate::apply::defer_foreign_keys(&txn).await?;
        txn.pause_triggers_for(page.operations.len()).await?;
        let tables: Vec<&TableInfo> = registry.pulled().collect();
        // Only keys whose newest operation is a delete go: a key deleted and then written
        // again is in the page's rows, and deleting it would cascade to its children.
        let mut newest: HashMap<(&str, i64), Command> = HashMap::new();
        if page
            .operations
            .iter()
            .any(|op| op.command == Command::Delete)
        {
            for op in &page.operations {
                newest.insert((op.table.as_str(), op.row_id), op.command);
            }
        }
        for info in tables.iter().rev() {
            let mut gone: Vec<i64> = newest
                .iter()
                .filter(|((table, _), command)| **command == Command::Delete && *table == info.name)
                .map(|((_, id), _)| *id)
                .collect();
            if gone.is_empty() {
                continue;
            }
            gone.sort_unstable();
            info.ops().delete(&txn, &gone).await?;
            report.applied += gone.len() as u64;
        }
        let mut written = Vec::new();
        for info in &tables {
            if let Some(rows) = page.rows.get(&info.name) {
                report.applied += crate::apply::write_snapshot(&txn, info, rows.get()).await?;
                written.push(*info);
            }
        }
        crate::apply::advance_key_generators(&txn, &written).await?;
        raise_key_generators(&txn, registry, &page.max_ids).await?;
        node_state::advance_version(&*txn, page.target_version).await?;
        txn.commit().await?;
        Ok(None)
    }
}
