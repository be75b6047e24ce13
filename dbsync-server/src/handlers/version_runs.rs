//! A version's operations kept as runs of consecutive keys, beside the log.
//!
//! A pull reads the operations of the versions its node has not seen. From the log that is
//! one entry per row: 10,000 entries for a push of 10,000 rows, which PostgreSQL takes 20 to
//! 30 ms to read and aggregate, SQLite 7 to 13. A push's operations mostly come in a few runs
//! (one table, one command, consecutive keys), so each push also records them as runs in
//! `dbsync_version_runs`, one row per version, in the log's order, and a pull whose page
//! starts at a version boundary reads whole versions from there. Versions without runs (the
//! server application's own writes, versioned later, and versions recorded before the table
//! existed) are read from the log, as is a version larger than the node's page.
//!
//! The log keeps every entry: rebasing a stale push, trimming and repair read it by row.

use crate::error::ServerError;
use crate::server::statement;
use dbsync::messages::WireOperation;
use dbsync::{Command, Registry};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

/// One run as stored: content type, command letter, first key, number of keys.
type StoredRun = (i64, String, i64, i64);

/// `operations` cut into maximal runs on consecutive keys of one table with one command.
pub(crate) fn runs(operations: &[WireOperation]) -> impl Iterator<Item = &[WireOperation]> {
    operations.chunk_by(|a, b| {
        a.table == b.table && a.command == b.command && a.row_id.checked_add(1) == Some(b.row_id)
    })
}

/// Records `operations`, logged under `version`, as that version's runs.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    registry: &Registry,
    operations: &[WireOperation],
    version: i64,
) -> Result<(), ServerError> {
    let stored: Vec<(i64, &str, i64, usize)> = runs(operations)
        .map(|run| {
            let ct = registry
                .table(&run[0].table)
                .map_or(0, |t| t.content_type_id);
            (
                i64::from(ct),
                run[0].command.letter(),
                run[0].row_id,
                run.len(),
            )
        })
        .collect();
    let text = serde_json::to_string(&stored).map_err(|e| ServerError::Internal(e.to_string()))?;
    txn.execute_raw(statement(
        txn.get_database_backend(),
        "INSERT INTO dbsync_version_runs (version_id, operations, runs) VALUES ($1, $2, $3)",
        vec![
            version.into(),
            i64::try_from(operations.len()).unwrap_or(i64::MAX).into(),
            text.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A pull page read from runs: the operations of whole versions.
pub(crate) struct RunsPage {
    /// The operations, in the log's order, with the content type of each.
    pub(crate) operations: Vec<(u32, i64, Command)>,
    /// The last version the page covers.
    pub(crate) last_version: i64,
    /// Whether versions up to the target remain after it.
    pub(crate) more: bool,
}

/// The page of at most `page` operations after `after_version`, up to `target`, leaving out
/// `node_id`'s own versions, if the versions it starts with have runs; `None` sends the pull
/// to the log.
pub(crate) async fn page(
    txn: &DatabaseTransaction,
    node_id: i64,
    after_version: i64,
    target: i64,
    page: u32,
) -> Result<Option<RunsPage>, ServerError> {
    let backend = txn.get_database_backend();
    // Every version holds at least one operation: a page takes at most `page` of them, and
    // one more says whether any remain.
    let query = statement(
        backend,
        "SELECT v.version_id, r.operations FROM dbsync_versions v \
         LEFT JOIN dbsync_version_runs r ON r.version_id = v.version_id \
         WHERE v.version_id > $1 AND v.version_id <= $2 \
         AND (v.node_id IS NULL OR v.node_id <> $3) \
         ORDER BY v.version_id LIMIT $4",
        vec![
            after_version.into(),
            target.into(),
            node_id.into(),
            (i64::from(page) + 1).into(),
        ],
    );
    let values = query.values.map(|v| v.0).unwrap_or_default();
    let mut versions: Vec<(i64, Option<i64>)> =
        dbsync::__private::select_json(txn, &query.sql, &["version_id", "operations"], values)
            .await?;
    versions.sort_by_key(|v| v.0);
    let mut total = 0i64;
    let mut taken = 0;
    for (_, count) in &versions {
        match count {
            Some(n) if total + n <= i64::from(page) => {
                total += n;
                taken += 1;
            }
            _ => break,
        }
    }
    if taken == 0 {
        return Ok(versions.is_empty().then_some(RunsPage {
            operations: Vec::new(),
            last_version: target,
            more: false,
        }));
    }
    let last_version = versions[taken - 1].0;
    let query = statement(
        backend,
        "SELECT r.version_id, r.runs FROM dbsync_version_runs r \
         JOIN dbsync_versions v ON v.version_id = r.version_id \
         WHERE r.version_id > $1 AND r.version_id <= $2 \
         AND (v.node_id IS NULL OR v.node_id <> $3) ORDER BY r.version_id",
        vec![after_version.into(), last_version.into(), node_id.into()],
    );
    let values = query.values.map(|v| v.0).unwrap_or_default();
    let mut texts: Vec<(i64, String)> =
        dbsync::__private::select_json(txn, &query.sql, &["version_id", "runs"], values).await?;
    texts.sort_by_key(|t| t.0);
    if texts.len() != taken {
        // A version trimmed or recorded between the two reads: the log answers instead.
        return Ok(None);
    }
    let mut operations = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for (version, text) in &texts {
        let stored: Vec<StoredRun> = serde_json::from_str(text).map_err(|e| {
            ServerError::Internal(format!("the runs of version {version} do not parse: {e}"))
        })?;
        for (ct, letter, first, count) in stored {
            let command = Command::from_letter(&letter).ok_or_else(|| {
                ServerError::Internal(format!("unknown command {letter:?} in version {version}"))
            })?;
            let ct = u32::try_from(ct).unwrap_or(u32::MAX);
            for key in first..first.saturating_add(count) {
                operations.push((ct, key, command));
            }
        }
    }
    Ok(Some(RunsPage {
        operations,
        last_version,
        more: taken < versions.len(),
    }))
}
