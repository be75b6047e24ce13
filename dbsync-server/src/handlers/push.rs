//! `push`: apply a node's operations in one transaction and record one new version.

use super::keys;
use super::rebase::{self, Unseen};
use super::version_runs;
use crate::config::Procedure;
use crate::error::ServerError;
use crate::server::{SyncServer, lock_counters, mark_seen, scalar, set_latest, stamp_pending};
use dbsync::__private::{apply_operations_to_free_keys, apply_pushed_to_free_keys};
use dbsync::Registry;
use dbsync::messages::{
    MovedKey, PushRequest, PushResponse, RawRows, SignedRequest, WireOperation,
};
use std::collections::HashSet;

/// A push as it arrived, without its rows, and their text: most pushes are written from
/// that text (`apply_pushed_to_free_keys`), and decoding 10,000 rows into maps costs about
/// what writing them does. A rebase, a moved key or a hook needs them decoded
/// ([`decode_rows`]).
fn split(push: PushRequest<RawRows>) -> (PushRequest, Option<RawRows>) {
    let PushRequest {
        meta,
        push_id,
        base_version,
        operations,
        rows,
    } = push;
    let push = PushRequest {
        meta,
        push_id,
        base_version,
        operations,
        rows: Default::default(),
    };
    (push, Some(rows))
}

/// Decodes the rows' `text` into `push`, once.
fn decode_rows(push: &mut PushRequest, text: &mut Option<RawRows>) -> Result<(), ServerError> {
    let Some(text) = text.take() else {
        return Ok(());
    };
    for (table, json) in text {
        let rows = serde_json::from_str(json.get()).map_err(|err| {
            ServerError::InvalidOperation(format!(
                "the rows of `{table}` are not an array of objects: {err}"
            ))
        })?;
        push.rows.insert(table, rows);
    }
    Ok(())
}

impl SyncServer {
    /// Accepts a push if the node has the server's latest version, or if the versions it has
    /// not seen touch none of its rows (see `rebase.rs`): applies its operations in an order
    /// the foreign keys accept, in one transaction, without logging them as server writes,
    /// and records them under one new version. Inserts whose key holds another row move to a
    /// fresh key (`keys.rs`). A push whose id was applied before is answered with that
    /// version and its moves, and applies nothing.
    #[tracing::instrument(name = "dbsync.push", skip_all, fields(node_id = request.node_id))]
    pub async fn handle_push(&self, request: &SignedRequest) -> Result<PushResponse, ServerError> {
        let message: PushRequest<RawRows> = self
            .authenticate(Procedure::Push, request, |p: &PushRequest<RawRows>| &p.meta)
            .await?;
        let (mut push, mut text) = split(message);
        if push.push_id.is_empty() || push.push_id.len() > 64 {
            return Err(ServerError::Malformed(
                "push_id must have 1 to 64 characters".into(),
            ));
        }
        let registry = self.inner.registry;
        stamp_pending(self.db()).await?;

        let node_id = push.meta.node_id;
        // A retry of an applied push: looked up before taking the version lock, so that
        // the pushes queued on it do not wait for this; a retry racing its first attempt
        // is caught when its version is recorded, below.
        if let Some(answer) = self.replayed(node_id, &push.push_id).await? {
            return Ok(answer);
        }
        let txn = dbsync::begin_untracked(self.db()).await?;
        txn.pause_triggers_for(push.operations.len()).await?;
        let counters = lock_counters(&txn).await?;
        let latest = counters.latest;
        // Any refusal here means that nothing of this push was ever applied, unless an
        // attempt of it committed while this one waited for the lock (a stale push then):
        // that one's answer is given instead.
        let prepared: Result<(bool, Vec<MovedKey>), ServerError> = async {
            check_operations(registry, &push.operations)?;
            let stale = push.base_version != latest;
            let pull_first = ServerError::PullRequired {
                node: push.base_version,
                server: latest,
            };
            if stale && !self.inner.config.rebase_pushes {
                return Err(pull_first);
            }
            let unseen = if stale {
                decode_rows(&mut push, &mut text)?;
                match Unseen::load(&txn, &push, counters).await? {
                    Some(unseen) => Some(unseen),
                    None => return Err(pull_first),
                }
            } else {
                None
            };
            let moved = keys::taken_key_moves(&txn, registry, &push, unseen.as_ref()).await?;
            if !moved.is_empty() {
                decode_rows(&mut push, &mut text)?;
                keys::rewrite(registry, &mut push, &moved);
            }
            if let Some(unseen) = &unseen
                && !rebase::can_rebase(&txn, registry, &push, unseen).await?
            {
                return Err(pull_first);
            }
            if let Some(hook) = &self.inner.before_push {
                decode_rows(&mut push, &mut text)?;
                hook(&txn, &push, None)
                    .await
                    .map_err(ServerError::Unauthorized)?;
            }
            // The moves above freed every inserted key, under the lock.
            let applied = match &text {
                Some(rows) => {
                    apply_pushed_to_free_keys(&txn, registry, &push.operations, rows).await
                }
                None => {
                    apply_operations_to_free_keys(&txn, registry, &push.operations, &push.rows)
                        .await
                }
            };
            match applied {
                Ok(()) => {}
                // A constraint the rows break in a stale push (a unique value taken meanwhile,
                // say) is the merge's to settle: the node pulls first, as it would have without
                // rebasing. Nothing of the push stays: the transaction is dropped.
                Err(dbsync::Error::Db(err)) if stale && err.sql_err().is_some() => {
                    tracing::info!(%err, "stale push breaks a constraint: pull first");
                    return Err(pull_first);
                }
                Err(err) => return Err(err.into()),
            }
            Ok((stale, moved))
        }
        .await;
        let (stale, moved) = match prepared {
            Ok(prepared) => prepared,
            Err(err @ ServerError::PullRequired { .. }) => {
                drop(txn);
                return match self.replayed(node_id, &push.push_id).await? {
                    Some(answer) => Ok(answer),
                    None => Err(err),
                };
            }
            Err(err) => return Err(err),
        };
        let version = latest + 1;
        if !set_latest(&txn, version, Some(node_id), Some(&push.push_id)).await? {
            txn.rollback().await?;
            return match self.replayed(node_id, &push.push_id).await? {
                Some(answer) => Ok(answer),
                None => Err(ServerError::Internal(
                    "a push recorded meanwhile has no version".into(),
                )),
            };
        }
        version_runs::record(&txn, registry, &push.operations, version).await?;
        keys::record_moves(&txn, version, &moved).await?;
        if let Some(hook) = &self.inner.after_push {
            decode_rows(&mut push, &mut text)?;
            hook(&txn, &push, Some(version))
                .await
                .map_err(ServerError::Unauthorized)?;
        }
        // A rebased push's node has not seen the versions before it: its horizon stays.
        if !stale {
            mark_seen(&*txn, node_id, version).await?;
        }
        txn.commit().await?;
        tracing::info!(
            version,
            operations = push.operations.len(),
            moved = moved.len(),
            rebased = stale,
            "push accepted"
        );
        // The push is committed: a failed clean-up must not turn its answer into an error.
        if let Err(err) = self.prune_nonces().await {
            tracing::warn!(%err, "pruning nonces failed");
        }
        Ok(PushResponse {
            new_version: version,
            replayed: false,
            moved,
        })
    }
}

impl SyncServer {
    /// The answer to a push whose id was applied before: its version and its moves.
    async fn replayed(
        &self,
        node_id: i64,
        push_id: &str,
    ) -> Result<Option<PushResponse>, ServerError> {
        let known: Option<i64> = scalar(
            self.db(),
            "SELECT version_id FROM dbsync_versions WHERE node_id = $1 AND push_id = $2",
            vec![node_id.into(), push_id.to_owned().into()],
        )
        .await?;
        let Some(version) = known else {
            return Ok(None);
        };
        tracing::info!(version, "push retried: answered from its first attempt");
        let moved = keys::moves_of(self.db(), node_id, version - 1, version)
            .await?
            .remove(push_id)
            .unwrap_or_default();
        Ok(Some(PushResponse {
            new_version: version,
            replayed: true,
            moved,
        }))
    }
}

/// Refuses what no transaction should start for: an empty push, unknown or pull-only
/// tables, and two operations on one row (a node sends each row's net change once).
fn check_operations(registry: &Registry, operations: &[WireOperation]) -> Result<(), ServerError> {
    if operations.is_empty() {
        return Err(ServerError::InvalidOperation(
            "the push has no operations".into(),
        ));
    }
    let mut seen = HashSet::with_capacity(operations.len());
    for op in operations {
        let info = registry.table(&op.table).ok_or_else(|| {
            ServerError::InvalidOperation(format!("unknown table `{}`", op.table))
        })?;
        if !info.direction.pushes() {
            return Err(ServerError::InvalidOperation(format!(
                "table `{}` is pull-only: nodes cannot push to it",
                op.table
            )));
        }
        if !seen.insert((op.table.as_str(), op.row_id)) {
            return Err(ServerError::InvalidOperation(format!(
                "two operations on `{}` {}",
                op.table, op.row_id
            )));
        }
    }
    Ok(())
}
