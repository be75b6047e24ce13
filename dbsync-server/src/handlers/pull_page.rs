//! Reading one page of a pull: pushes from their runs, the server's own writes from the log.
//!
//! A page holds the operations of the versions after the node's cursor, in order, leaving
//! out the node's own pushes. A push's operations are stored as runs
//! (`version_runs.rs`); the server application's writes, and versions recorded before runs
//! existed, as log entries. A page reads each stretch of consecutive versions of one kind
//! with one statement.
//!
//! The cursor is `(version, seq)`: `seq` is `i64::MAX` once the version is wholly sent, the
//! log entry sent last in a version read from the log, and the number of operations sent in
//! a version read from runs (a version is one kind or the other, never both).

use super::version_runs::{self, Operation};
use crate::error::ServerError;
use crate::server::select_json;
use dbsync::Command;
use dbsync::messages::LogCursor;
use sea_orm::DatabaseTransaction;

/// A page: its operations, the cursor after them, and whether operations up to the target
/// remain.
pub(crate) struct Page {
    pub(crate) operations: Vec<Operation>,
    pub(crate) last: LogCursor,
    pub(crate) more: bool,
}

/// The page of at most `page` operations after `after`, up to `target`, leaving out
/// `node_id`'s own versions.
pub(crate) async fn read_page(
    txn: &DatabaseTransaction,
    node_id: i64,
    after: LogCursor,
    target: i64,
    page: u32,
) -> Result<Page, ServerError> {
    let page = page as usize;
    let partly_sent = after.seq != i64::MAX;
    // Each version holds an operation at least: the page ends within `page` versions after
    // the one partly sent, and one more tells whether any remain.
    let versions = version_runs::versions(
        txn,
        node_id,
        after.version - i64::from(partly_sent),
        target,
        page as u64 + 2,
    )
    .await?;
    let mut operations: Vec<Operation> = Vec::new();
    let mut cursor = after;
    if partly_sent && versions.first().map(|v| v.0) != Some(after.version) {
        // Not a version of this pull's: none of it is to be sent.
        cursor.seq = i64::MAX;
    }
    let mut next = 0;
    while next < versions.len() && operations.len() < page {
        let kind = versions[next].1.is_some();
        let end = next
            + versions[next..]
                .iter()
                .take_while(|(_, count)| count.is_some() == kind)
                .count();
        let stretch = &versions[next..end];
        let room = page - operations.len();
        let first = stretch[0].0;
        // The cursor inside the stretch's first version, if it was partly sent.
        let sent = if cursor.version == first && cursor.seq != i64::MAX {
            Some(cursor.seq)
        } else {
            None
        };
        if kind {
            // Read the versions the page has room for: up to the one it ends in.
            let mut wanted = 0i64;
            let mut last = next;
            for (index, (_, count)) in stretch.iter().enumerate() {
                if wanted >= room as i64 {
                    break;
                }
                let skip = if index == 0 { sent.unwrap_or(0) } else { 0 };
                wanted += count.unwrap_or(0).saturating_sub(skip);
                last = next + index;
            }
            let read = version_runs::read(txn, node_id, first - 1, versions[last].0).await?;
            if read.len() != last - next + 1 {
                return Err(ServerError::Internal(
                    "versions left the log while a pull read them".into(),
                ));
            }
            for (version, runs) in read {
                let skip = if version == first {
                    sent.unwrap_or(0)
                } else {
                    0
                };
                let skip = u64::try_from(skip).unwrap_or(0);
                let room = (page - operations.len()) as u64;
                let rest = runs.len().saturating_sub(skip);
                if rest > room {
                    operations.extend(runs.window(skip, room));
                    cursor = LogCursor {
                        version,
                        seq: i64::try_from(skip + room).unwrap_or(i64::MAX),
                    };
                    break;
                }
                operations.extend(runs.window(skip, rest));
                cursor = LogCursor {
                    version,
                    seq: i64::MAX,
                };
                next += 1;
            }
        } else {
            let from = match sent {
                Some(seq) => LogCursor {
                    version: first,
                    seq,
                },
                None => LogCursor {
                    version: first - 1,
                    seq: i64::MAX,
                },
            };
            let last = stretch[stretch.len() - 1].0;
            let (found, more) = log_page(txn, node_id, from, last, room).await?;
            operations.extend(found.iter().map(|e| e.0));
            if more {
                let (_, version, seq) = found[found.len() - 1];
                cursor = LogCursor { version, seq };
                break;
            }
            cursor = LogCursor {
                version: last,
                seq: i64::MAX,
            };
            next = end;
        }
    }
    let more = cursor.seq != i64::MAX || next < versions.len();
    Ok(Page {
        operations,
        last: cursor,
        more,
    })
}

/// At most `room` log entries after `from`, up to `last_version`, leaving out `node_id`'s
/// own versions, each with its version and sequence number; and whether more follow.
async fn log_page(
    txn: &DatabaseTransaction,
    node_id: i64,
    from: LogCursor,
    last_version: i64,
    room: usize,
) -> Result<(Vec<(Operation, i64, i64)>, bool), ServerError> {
    let columns = ["seq", "content_type_id", "row_id", "command", "version_id"];
    let mut found: Vec<(i64, i64, i64, String, i64)> = select_json(
        txn,
        // A row-value comparison walks the (version_id, seq) index in order; the
        // equivalent OR made SQLite merge two scans and sort them.
        "SELECT seq, content_type_id, row_id, command, version_id FROM dbsync_operations \
         WHERE version_id <= $1 AND (version_id, seq) > ($2, $3) \
         AND version_id NOT IN (SELECT version_id FROM dbsync_versions \
         WHERE node_id = $4 AND version_id > $5) \
         ORDER BY version_id, seq LIMIT $6",
        &columns,
        vec![
            last_version.into(),
            from.version.into(),
            from.seq.into(),
            node_id.into(),
            from.version.into(),
            i64::try_from(room + 1).unwrap_or(i64::MAX).into(),
        ],
    )
    .await?;
    // The page's order is the log's; the aggregate reading it keeps it in practice.
    found.sort_by_key(|entry| (entry.4, entry.0));
    let more = found.len() > room;
    found.truncate(room);
    let entries = found
        .into_iter()
        .map(|(seq, ct, row_id, letter, version)| {
            let command = Command::from_letter(&letter).ok_or_else(|| {
                ServerError::Internal(format!("unknown command {letter:?} in the log"))
            })?;
            Ok((
                (u32::try_from(ct).unwrap_or(u32::MAX), row_id, command),
                version,
                seq,
            ))
        })
        .collect::<Result<Vec<_>, ServerError>>()?;
    Ok((entries, more))
}
