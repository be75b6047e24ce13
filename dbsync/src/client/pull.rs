//! `pull`: download the server's operations since the node's version, then apply them in one
//! transaction, merging them with the node's unsynced changes.
//!
//! The merge rules are in [`crate::merge`] and `docs/merge.md`; `client/merge.rs` carries
//! them out.

use super::merge::Merge;
use super::staging::Staging;
use super::transport::{Kind, Wire};
use super::{Client, Phase, Progress};
use crate::error::Result;
use crate::merge::ResolvedConflict;
use crate::messages::{LogCursor, PullRequest, PullResponse};
use crate::node_state;
use std::collections::BTreeMap;

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
    pub async fn pull(&self) -> Result<PullReport> {
        let db = &self.inner.db;
        let node = self.node().await?;
        let staging = Staging::start(db, self.inner.staging_memory).await?;
        let result = self.pull_staged(&node, &staging).await;
        if result.is_err() {
            // Best effort: a session left behind is forgotten a day later anyway.
            let _ = staging.finish(db).await;
        }
        result
    }

    async fn pull_staged(
        &self,
        node: &node_state::NodeState,
        staging: &Staging,
    ) -> Result<PullReport> {
        let db = &self.inner.db;
        let mut report = PullReport::default();
        let mut target = None;
        let mut max_ids = BTreeMap::new();
        let mut own_pushes: Vec<String> = Vec::new();
        let mut own_moved = BTreeMap::new();
        let mut fetched = self.pull_page(node, None, None).await;
        loop {
            let (page, wire) = fetched?;
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
            let (staged, next) = tokio::join!(
                staging.stage(db, &page.operations, &page.rows, self.inner.registry),
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
        // A push in flight (from this process or another one sharing the database) that the
        // server applied is among these versions, though not in the pull: acknowledge it
        // first, with the keys the server moved, before its entries are merged as unsynced.
        if let Some(text) = node_state::load(&*txn).await?.and_then(|n| n.pending_push) {
            let pending = super::push::parse_pending(&text)?;
            if own_pushes.contains(&pending.push_id) {
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

impl Client {
    async fn pull_page(
        &self,
        node: &node_state::NodeState,
        target_version: Option<i64>,
        after: Option<LogCursor>,
    ) -> Result<(PullResponse, Wire)> {
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
