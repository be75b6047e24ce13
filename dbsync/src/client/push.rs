//! `push`: send the compressed unsynced operations with their rows, exactly once.
//!
//! Before the first attempt the node records which log entries the push carries and a push
//! id. Until the server's answer arrives, every attempt carries that same id and the same
//! entries: a server that applied an earlier attempt answers with its version and applies
//! nothing. When the answer comes, exactly those entries leave the log; writes made
//! meanwhile stay for the next push.

use super::Client;
use super::transport::Kind;
use crate::error::{Error, Result};
use crate::messages::{
    ErrorCode, MovedKey, PushRequest, PushResponse, RawRows, WireOperation, nonce,
};
use crate::node_state;
use crate::oplog::{Command, Operation, compress, unsynced_operations};
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};

/// Log entries one push carries at most: about a megabyte of narrow rows. Each push costs a
/// few commits on both sides whatever its size, so fewer, larger pushes sync a backlog
/// faster; the bound keeps a message well under the server's body limit.
const MAX_LOG_ENTRIES: usize = 10_000;

/// What an accepted push did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushReport {
    /// The version the push created; `None` when there was nothing to push.
    pub new_version: Option<i64>,
    /// Whether the server applied the push on top of versions this node has not pulled
    /// (none of them touched its rows). The node's version did not move: its next pull
    /// brings those versions. [`Client::sync`] pulls them at once.
    pub rebased: bool,
    /// Rows inserted here that the server stored under another key, because another node
    /// had used theirs: `(table, old, new)`. They have their new key here too now.
    pub moved: Vec<(String, i64, i64)>,
    /// Operations sent, after compression.
    pub operations: usize,
    /// Whether the server had already applied this push from an earlier attempt.
    pub replayed: bool,
    /// Bytes sent and received on the wire, compressed as they were.
    pub bytes: u64,
}

/// The push in flight, stored until its answer arrives.
#[derive(Serialize, Deserialize)]
pub(super) struct Pending {
    pub push_id: String,
    pub seqs: Vec<i64>,
}

impl PushReport {
    fn nothing() -> PushReport {
        PushReport {
            new_version: None,
            rebased: false,
            moved: Vec::new(),
            operations: 0,
            replayed: false,
            bytes: 0,
        }
    }
}

impl Client {
    /// Pushes the local unsynced operations. Fails with [`Error::PullSuggested`] when the
    /// server has versions this node has not pulled, and [`Error::PushRejected`] when the
    /// server refuses the push itself.
    #[tracing::instrument(name = "dbsync.client.push", skip_all)]
    pub async fn push(&self) -> Result<PushReport> {
        let db = &self.inner.db;
        // One transaction, write-locked from its first statement, for everything the message
        // is built from: a pull applied by another process sharing this database (moving keys,
        // advancing the version) then lands wholly before or wholly after it.
        let txn = db.begin().await?;
        txn.execute_unprepared("UPDATE dbsync_node SET id = id WHERE id = 1")
            .await?;
        let node = node_state::load(&txn).await?.ok_or(Error::NotRegistered)?;
        let (text, pending, ops) = match node.pending_push {
            Some(text) => {
                // A retry: exactly the log entries of the first attempt that are still there.
                let pending = parse_pending(&text)?;
                let wanted: BTreeSet<i64> = pending.seqs.iter().copied().collect();
                let ops: Vec<Operation> = unsynced_operations(&txn)
                    .await?
                    .into_iter()
                    .filter(|op| wanted.contains(&op.seq))
                    .collect();
                (text, pending, ops)
            }
            None => {
                // A bounded push: a long offline backlog goes in several, each under the
                // server's size limit.
                let ops = crate::oplog::oldest_unsynced(&txn, MAX_LOG_ENTRIES).await?;
                if ops.is_empty() {
                    return Ok(PushReport::nothing());
                }
                let pending = Pending {
                    push_id: nonce(),
                    seqs: ops.iter().map(|op| op.seq).collect(),
                };
                let text = serde_json::to_string(&pending)
                    .map_err(|e| Error::InvalidOperation(e.to_string()))?;
                // The write lock makes this the only push being started.
                node_state::set_pending(&txn, Some(text.clone())).await?;
                (text, pending, ops)
            }
        };
        let (operations, rows) = self.message_body(&txn, &compress(&ops)).await?;
        txn.commit().await?;
        if operations.is_empty() {
            // Only tables this node does not push: nothing to send.
            self.acknowledge(&text, &pending.seqs, None, &[]).await?;
            return Ok(PushReport::nothing());
        }
        let request: PushRequest<RawRows> = PushRequest {
            meta: self.meta(node.node_id),
            push_id: pending.push_id.clone(),
            base_version: node.version,
            operations,
            rows,
        };
        let count = request.operations.len();
        let result: Result<(PushResponse, super::transport::Wire)> = self
            .post(
                "push",
                &request,
                Some((node.node_id, &node.secret)),
                Kind::Push,
            )
            .await;
        match result {
            Ok((answer, wire)) => {
                let caught_up = self
                    .acknowledge(
                        &text,
                        &pending.seqs,
                        Some(answer.new_version),
                        &answer.moved,
                    )
                    .await?;
                tracing::info!(
                    version = answer.new_version,
                    operations = count,
                    moved = answer.moved.len(),
                    rebased = !caught_up,
                    "pushed"
                );
                Ok(PushReport {
                    new_version: Some(answer.new_version),
                    rebased: !caught_up,
                    moved: answer
                        .moved
                        .into_iter()
                        .map(|m| (m.table, m.old, m.new))
                        .collect(),
                    operations: count,
                    replayed: answer.replayed,
                    bytes: wire.sent + wire.received,
                })
            }
            // The server looked this push id up and refused the push: nothing of it was ever
            // applied, so the next push may carry whatever is unsynced then.
            Err(
                err @ (Error::PullSuggested { .. }
                | Error::PushRejected {
                    code: ErrorCode::InvalidOperation,
                    ..
                }),
            ) => {
                node_state::clear_pending(db, &text).await?;
                Err(err)
            }
            // Refused before the server looked the push id up (authentication, size), or no
            // answer: an earlier attempt may have been applied, so the push stays as it is.
            Err(err) => Err(err),
        }
    }

    /// The wire operations and current rows for `ops`. An insert or update whose row is gone
    /// travels as a delete: that is the row's state here now, and an earlier attempt of this
    /// push may have created it on the server.
    async fn message_body(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        ops: &[Operation],
    ) -> Result<(Vec<WireOperation>, RawRows)> {
        let registry = self.inner.registry;
        let mut wanted: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for op in ops.iter().filter(|op| op.command != Command::Delete) {
            if let Some(info) = registry
                .by_content_type(op.content_type_id)
                .filter(|info| info.direction.pushes())
            {
                wanted
                    .entry(info.name.as_str())
                    .or_default()
                    .push(op.row_id);
            }
        }
        let mut rows = BTreeMap::new();
        // Rows the log names that are gone (removed behind dbsync's back): rare, so only
        // they are remembered.
        let mut missing: BTreeSet<(&str, i64)> = BTreeSet::new();
        for (table, ids) in wanted {
            let info = registry.table(table).expect("looked up above");
            // The rows go as the text the database built when every one of them is there
            // (each key is wanted once): then no key needs reading out of them.
            let text = match info.ops().fetch_text(txn, &ids, &[]).await? {
                Some(fetched) if fetched.rows.rows == ids.len() => fetched.rows.json,
                _ => {
                    let found = info.ops().fetch(txn, &ids).await?;
                    let here: BTreeSet<i64> = found
                        .iter()
                        .filter_map(|row| row.get(&info.primary_key)?.as_i64())
                        .collect();
                    missing.extend(
                        ids.iter()
                            .filter(|id| !here.contains(id))
                            .map(|&id| (table, id)),
                    );
                    serde_json::to_string(&found)
                        .map_err(|e| Error::InvalidOperation(e.to_string()))?
                }
            };
            let text = RawValue::from_string(text).map_err(|e| Error::RowCodec {
                table: table.to_owned(),
                column: String::new(),
                reason: e.to_string(),
            })?;
            rows.insert(table.to_owned(), text);
        }
        let operations = ops
            .iter()
            .filter_map(|op| {
                let info = registry.by_content_type(op.content_type_id)?;
                if !info.direction.pushes() {
                    return None;
                }
                let gone = op.command != Command::Delete
                    && missing.contains(&(info.name.as_str(), op.row_id));
                let command = if gone { Command::Delete } else { op.command };
                Some(WireOperation {
                    table: info.name.clone(),
                    row_id: op.row_id,
                    command,
                })
            })
            .collect();
        Ok((operations, rows))
    }

    /// Removes the pushed entries from the log, clears the push in flight, moves the rows the
    /// server moved and takes the push's version if the node had every version before it,
    /// in one transaction. Returns whether the node has the push's version now.
    async fn acknowledge(
        &self,
        text: &str,
        seqs: &[i64],
        version: Option<i64>,
        moves: &[MovedKey],
    ) -> Result<bool> {
        let txn = crate::begin_untracked(&self.inner.db).await?;
        if !moves.is_empty() {
            crate::apply::defer_foreign_keys(&txn).await?;
        }
        let caught_up =
            acknowledge_in(&*txn, self.inner.registry, text, seqs, version, moves).await?;
        txn.commit().await?;
        Ok(caught_up)
    }
}

/// The push in flight, from its stored form.
pub(super) fn parse_pending(text: &str) -> Result<Pending> {
    serde_json::from_str(text)
        .map_err(|err| Error::InvalidOperation(format!("unreadable push in flight: {err}")))
}

/// Within `txn` (untracked, with foreign keys deferred when there are `moves`): removes the
/// log entries `seqs` of the push stored as `text`, clears it if it is still the push in
/// flight, applies the server's `moves`, and takes the push's `version` if the node had
/// every version before it. Returns whether the node is at `version` now.
pub(super) async fn acknowledge_in<C: ConnectionTrait>(
    txn: &C,
    registry: &crate::registry::Registry,
    text: &str,
    seqs: &[i64],
    version: Option<i64>,
    moves: &[MovedKey],
) -> Result<bool> {
    // A push carries the oldest entries, so its sequence numbers mostly run unbroken: one
    // range per run, instead of long IN lists.
    let ranges = crate::table_json::key_ranges(seqs);
    if let ([[first, last]], DbBackend::Sqlite) = (&ranges[..], txn.get_database_backend()) {
        // Every entry in the log pushed, the usual case of a node that wrote nothing
        // meanwhile: a delete without a condition lets SQLite drop the log's pages at once
        // (0.5 ms for 10,000 entries, 4.6 ms entry by entry). SQLite only: the untracked
        // transaction holds its write lock from its first statement, so no entry can come
        // between the check and the delete, which PostgreSQL and MySQL would let another
        // transaction commit; and AUTOINCREMENT never hands a sequence number out again.
        let others = txn
            .query_one_raw(sea_orm::Statement::from_string(
                txn.get_database_backend(),
                format!(
                    "SELECT seq FROM dbsync_operations WHERE seq < {first} OR seq > {last} LIMIT 1"
                ),
            ))
            .await?;
        if others.is_none() {
            txn.execute_unprepared("DELETE FROM dbsync_operations")
                .await?;
            return finish_acknowledgement(txn, registry, text, version, moves).await;
        }
    }
    for chunk in ranges.chunks(200) {
        let ranges = chunk
            .iter()
            .map(|[first, last]| format!("seq BETWEEN {first} AND {last}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        txn.execute_unprepared(&format!("DELETE FROM dbsync_operations WHERE {ranges}"))
            .await?;
    }
    finish_acknowledgement(txn, registry, text, version, moves).await
}

/// What acknowledging a push does once its entries left the log.
async fn finish_acknowledgement<C: ConnectionTrait>(
    txn: &C,
    registry: &crate::registry::Registry,
    text: &str,
    version: Option<i64>,
    moves: &[MovedKey],
) -> Result<bool> {
    // Another process sharing this database may have acknowledged the push first; the
    // moves are its to make, once.
    if node_state::clear_pending(txn, text).await? {
        super::rekey::apply_moves(txn, registry, moves).await?;
    }
    match version {
        Some(version) => node_state::take_pushed_version(txn, version).await,
        None => Ok(true),
    }
}
