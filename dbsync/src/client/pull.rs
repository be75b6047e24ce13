//! `pull`: download the server's operations since the node's version, then apply them in one
//! transaction, merging them with the node's unsynced changes.
//!
//! The merge rules are in [`crate::merge`] and `docs/merge.md`; `client/merge.rs` carries
//! them out.

use super::merge::Merge;
use super::staging::Staging;
use super::transport::{Kind, Wire, not_an_answer};
use super::{Client, Phase, Progress};
use crate::error::Result;
use crate::merge::ResolvedConflict;
use crate::messages::{LogCursor, PullRequest, PullResponse, RawRows};
use crate::node_state;
use std::collections::BTreeMap;

/// Attempts of a pull that other processes' pushes keep interrupting.
const PULL_ROUNDS: usize = 5;

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
    /// Local rows moved to a new key because the server used theirs: `(table, old, new)`.
    pub moved: Vec<(String, i64, i64)>,
    /// Every conflict and how it was resolved.
    pub conflicts: Vec<ResolvedConflict>,
}

impl Client {
    /// Pulls and applies the server's changes since this node's version.
    #[tracing::instrument(name = "dbsync.client.pull", skip_all)]
    ///
    /// A push whose answer has not arrived (this process's or another's sharing the database)
    /// is settled first, by asking again: the server may apply it any time, and its rows
    /// must not be merged as if it had never been sent.
    pub async fn pull(&self) -> Result<PullReport> {
        let db = &self.inner.db;
        for _ in 0..PULL_ROUNDS {
            let refused = self.settle_pending_push().await?;
            let node = self.node().await?;
            let staging = Staging::start(db, self.inner.staging_memory).await?;
            let result = self.pull_staged(&node, &staging, refused.as_deref()).await;
            if !matches!(result, Ok(Some(_))) {
                // Best effort: a session left behind is forgotten a day later anyway.
                let _ = staging.finish(db).await;
            }
            if let Some(report) = result? {
                return Ok(report);
            }
        }
        Err(crate::Error::Busy)
    }

    /// Retries the push in flight, if any, until the server answers. Returns the push id of
    /// a push the server refused but that stays in flight (a refusal that may not hold, such
    /// as a failed authorization): the pull goes on with its rows as local changes.
    async fn settle_pending_push(&self) -> Result<Option<String>> {
        if self.node().await?.pending_push.is_none() {
            return Ok(None);
        }
        match self.push().await {
            Ok(_) => Ok(None),
            // No answer: what became of the push is still unknown.
            Err(
                err @ (crate::Error::Offline(_)
                | crate::Error::Timeout
                | crate::Error::ServerError { .. }
                | crate::Error::Db(_)),
            ) => Err(err),
            Err(_) => Ok(self
                .node()
                .await?
                .pending_push
                .and_then(|text| super::push::parse_pending(&text).ok())
                .map(|pending| pending.push_id)),
        }
    }

    /// One attempt; `None` when another process started a push meanwhile that this pull's
    /// pages do not settle.
    async fn pull_staged(
        &self,
        node: &node_state::NodeState,
        staging: &Staging,
        refused: Option<&str>,
    ) -> Result<Option<PullReport>> {
        let db = &self.inner.db;
        let mut report = PullReport::default();
        let mut target = None;
        let mut max_ids = BTreeMap::new();
        let mut own_pushes: Vec<String> = Vec::new();
        let mut own_moved = BTreeMap::new();
        let mut fetched = match self.pull_page(node, None, None).await {
            // The whole pull in one page, and perhaps nothing to merge it with.
            Ok((page, wire)) if page.next.is_none() && node.pending_push.is_none() => {
                let target = page.target_version;
                report.bytes = wire.received;
                report.operations = page.operations.len() as u64;
                match self.apply_unmerged(page, &mut report).await? {
                    None => {
                        return Ok(Some(self.pulled(report, target.max(node.version))));
                    }
                    Some(page) => {
                        report = PullReport::default();
                        Ok((page, wire))
                    }
                }
            }
            other => other,
        };
        loop {
            let (page, wire) = fetched?;
            let mut page = page.decoded().map_err(|err| not_an_answer(&err))?;
            report.bytes += wire.received;
            report.operations += page.operations.len() as u64;
            if target.is_none() {
                max_ids = page.max_ids.clone();
            }
            target = Some(page.target_version);
            own_pushes.extend(page.own_pushes.iter().cloned());
            own_moved.extend(page.own_moved.clone());
            // The next page downloads while this one is staged.
            let prefetch = async {
                match &page.next {
                    Some(next) => Some(self.pull_page(node, target, Some(*next)).await),
                    None => None,
                }
            };
            let rows = std::mem::take(&mut page.rows);
            let (staged, next) = tokio::join!(
                staging.stage(db, &page.operations, rows, self.inner.registry),
                prefetch
            );
            staged?;
            self.report(Progress {
                procedure: "pull",
                phase: Phase::Downloading,
                items: report.operations,
                bytes: report.bytes,
            });
            match next {
                Some(result) => fetched = result,
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
        txn.pause_triggers_for(usize::try_from(report.operations).unwrap_or(usize::MAX))
            .await?;
        // A push another process sharing the database started during the download: if the
        // server applied it, it is among these versions (though not in the pull), and is
        // acknowledged first, with the keys the server moved. Otherwise the server may still
        // apply it, moving keys the merge would move too: it is settled first.
        if let Some(text) = node_state::load(&*txn).await?.and_then(|n| n.pending_push) {
            let pending = super::push::parse_pending(&text)?;
            if refused == Some(pending.push_id.as_str()) {
                // Refused just now: its rows merge as local changes.
            } else if !own_pushes.contains(&pending.push_id) {
                txn.rollback().await?;
                return Ok(None);
            } else {
                let moves = own_moved.remove(&pending.push_id).unwrap_or_default();
                super::push::acknowledge_in(
                    &*txn,
                    self.inner.registry,
                    &text,
                    &pending.seqs,
                    None,
                    &moves,
                )
                .await?;
            }
        }
        let mut merge = Merge::new(
            &txn,
            staging,
            self.inner.registry,
            &self.inner.policies,
            max_ids,
        )
        .await?;
        merge.apply(&mut report).await?;
        node_state::advance_version(&*txn, target).await?;
        staging.finish(&*txn).await?;
        txn.commit().await?;
        Ok(Some(self.pulled(report, target.max(node.version))))
    }

    /// A pull's report, once it is done at `version`.
    fn pulled(&self, mut report: PullReport, version: i64) -> PullReport {
        report.version = version;
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
        report
    }
}

impl Client {
    async fn pull_page(
        &self,
        node: &node_state::NodeState,
        target_version: Option<i64>,
        after: Option<LogCursor>,
    ) -> Result<(PullResponse<RawRows>, Wire)> {
        let request = PullRequest {
            meta: self.meta(node.node_id),
            base_version: node.version,
            target_version,
            after,
            page_size: Some(self.inner.page_size),
        };
        self.post(
            "pull",
            &request,
            Some((node.node_id, &node.secret)),
            Kind::Other,
        )
        .await
    }
}
