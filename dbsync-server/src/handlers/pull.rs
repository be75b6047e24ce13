//! `pull`: the server's operations since a node's version, one page at a time.

use super::keys;
use super::pull_page::{Page, read_page};
use super::rows::ship_text;
use crate::config::Procedure;
use crate::error::ServerError;
use crate::server::{Counters, SyncServer, counters, mark_read, stamp_pending, statement};
use dbsync::Command;
use dbsync::messages::{
    LogCursor, PullRequest, PullResponse, RawRows, SignedRequest, WireOperation,
};
use sea_orm::{AccessMode, ConnectionTrait, DbBackend, IsolationLevel, TransactionTrait};
use std::collections::{BTreeMap, BTreeSet};

/// Operations per page when the node does not say.
const DEFAULT_PAGE: u32 = 1_000;

impl SyncServer {
    /// One page of the operations after the node's version, up to the pull's target version,
    /// with the current rows they name and every row those reference.
    pub async fn handle_pull(&self, request: &SignedRequest) -> Result<PullResponse, ServerError> {
        self.pull_answer(request)
            .await?
            .decoded()
            .map_err(|e| ServerError::Internal(e.to_string()))
    }

    /// [`SyncServer::handle_pull`] without decoding the rows the database encoded itself,
    /// as the adapters send it.
    #[tracing::instrument(name = "dbsync.pull", skip_all, fields(node_id = request.node_id))]
    pub(crate) async fn pull_answer(
        &self,
        request: &SignedRequest,
    ) -> Result<PullResponse<RawRows>, ServerError> {
        let pull: PullRequest = self
            .authenticate(Procedure::Pull, request, |p: &PullRequest| &p.meta)
            .await?;
        stamp_pending(self.db()).await?;
        let registry = self.inner.registry;
        // One snapshot for the whole page: PostgreSQL's default isolation lets each statement
        // see what committed meanwhile, a trim taking this page's operations included. SQLite
        // and MySQL transactions read one snapshot already.
        let txn = match self.db().get_database_backend() {
            DbBackend::Postgres => {
                self.db()
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await?
            }
            _ => self.db().begin().await?,
        };
        let Counters {
            latest, trimmed, ..
        } = counters(&txn).await?;
        if pull.base_version < trimmed {
            return Err(ServerError::RepairRequired {
                node: pull.base_version,
                trimmed,
            });
        }
        let target = pull.target_version.unwrap_or(latest);
        if target > latest || pull.base_version > target || pull.base_version < 0 {
            return Err(ServerError::InvalidOperation(format!(
                "versions out of range: base {}, target {target}, server {latest}",
                pull.base_version
            )));
        }
        let page = pull
            .page_size
            .unwrap_or(DEFAULT_PAGE)
            .clamp(1, self.inner.config.max_page_size);
        let after = pull.after.unwrap_or(LogCursor {
            version: pull.base_version,
            seq: i64::MAX,
        });
        // A cursor is the server's: within a version of this pull, or after its base.
        let partly_sent = after.seq != i64::MAX;
        if after.seq < 0
            || after.version > target
            || after.version < pull.base_version
            || (partly_sent && after.version == pull.base_version)
        {
            return Err(ServerError::InvalidOperation(format!(
                "cursor {after:?} is not within versions {} to {target}",
                pull.base_version
            )));
        }
        let Page {
            operations: entries,
            last,
            more,
        } = read_page(&txn, pull.meta.node_id, after, target, page).await?;
        let mut operations = Vec::with_capacity(entries.len());
        // Keys gathered in lists, each made a set at once: cheaper than a set insert (and a
        // copy of the table's name) per operation.
        let mut wanted: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (ct, row_id, command) in entries {
            let Some(info) = registry.by_content_type(ct) else {
                continue;
            };
            if !info.direction.pulls() {
                continue;
            }
            if command != Command::Delete {
                wanted.entry(info.name.as_str()).or_default().push(row_id);
            }
            operations.push(WireOperation {
                table: info.name.clone(),
                row_id,
                command,
            });
        }
        let wanted: BTreeMap<String, BTreeSet<i64>> = wanted
            .into_iter()
            .map(|(table, keys)| (table.to_owned(), keys.into_iter().collect()))
            .collect();
        let rows = ship_text(&txn, registry, wanted, BTreeMap::new(), None).await?;
        // The node's own pushes are not in the page, so the last page covers every version
        // up to the target, whatever its last operation.
        let covered = if more { last.version } else { target };
        let own_pushes = txn
            .query_all_raw(statement(
                txn.get_database_backend(),
                "SELECT push_id FROM dbsync_versions WHERE node_id = $1 AND version_id > $2 \
                 AND version_id <= $3 AND push_id IS NOT NULL",
                vec![
                    pull.meta.node_id.into(),
                    after.version.into(),
                    covered.into(),
                ],
            ))
            .await?
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let own_moved = if own_pushes.is_empty() {
            BTreeMap::new()
        } else {
            keys::moves_of(&txn, pull.meta.node_id, after.version, covered).await?
        };
        let max_ids = if pull.after.is_none() {
            keys::max_ids(&txn, registry).await?
        } else {
            BTreeMap::new()
        };
        txn.commit().await?;
        // An unsigned read (from a server that allows them) may come from anyone: it does
        // not move the node's trimming horizon.
        if !more && !request.signature.is_empty() {
            mark_read(self.db(), pull.meta.node_id, target).await?;
        }
        if pull.after.is_none()
            && let Err(err) = self.prune_nonces().await
        {
            tracing::warn!(%err, "pruning nonces failed");
        }
        Ok(PullResponse {
            target_version: target,
            operations,
            rows,
            next: more.then_some(last),
            max_ids,
            own_pushes,
            own_moved,
        })
    }
}
