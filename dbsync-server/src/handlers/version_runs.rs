//! A push's operations, recorded as runs of consecutive keys.
//!
//! The log holds an entry per row changed, which is right for the server application's own
//! writes (the capture triggers log them one by one) but costly for a push: 10,000 entries
//! to write for a push of 10,000 rows (16 to 18 ms on SQLite, about what writing the rows
//! costs) and to read back for every pull of it (20 to 30 ms on PostgreSQL). A push's
//! operations mostly come in a few runs (one table, one command, consecutive keys), so a
//! push is recorded in `dbsync_version_runs`, one row per version: its runs in order, and
//! its number of operations. A version is one kind or the other: a push's runs, or the log
//! entries of the server's own writes (and of pushes recorded before this table existed).
//! Every reader of the server's history reads both: pull pages (`pull_page.rs`), a stale
//! push's rebase and a repair's late parents (through [`rows_after`]).

use crate::error::ServerError;
use crate::server::{select_json, statement};
use dbsync::messages::WireOperation;
use dbsync::{Command, Registry};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

/// One run as stored: content type, command letter, first key, number of keys.
type StoredRun = (i64, String, i64, i64);

/// Records `operations`, logged under `version`, as that version's runs.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    registry: &Registry,
    operations: &[WireOperation],
    version: i64,
) -> Result<(), ServerError> {
    let stored: Vec<(i64, &str, i64, usize)> = dbsync::__private::operation_runs(operations)
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

/// The versions after `after_version` up to `target`, leaving out `node_id`'s own, in order,
/// at most `limit`: each with its number of operations when it has runs, `None` when its
/// operations are in the log (or were, for a trimmed version: pulls check the horizon).
pub(crate) async fn versions(
    txn: &DatabaseTransaction,
    node_id: i64,
    after_version: i64,
    target: i64,
    limit: u64,
) -> Result<Vec<(i64, Option<i64>)>, ServerError> {
    let mut found: Vec<(i64, Option<i64>)> = select_json(
        txn,
        "SELECT v.version_id, r.operations FROM dbsync_versions v \
         LEFT JOIN dbsync_version_runs r ON r.version_id = v.version_id \
         WHERE v.version_id > $1 AND v.version_id <= $2 \
         AND (v.node_id IS NULL OR v.node_id <> $3) \
         ORDER BY v.version_id LIMIT $4",
        &["version_id", "operations"],
        vec![
            after_version.into(),
            target.into(),
            node_id.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    )
    .await?;
    found.sort_by_key(|v| v.0);
    Ok(found)
}

/// The runs of the versions with runs after `after_version` up to `last_version`, leaving
/// out `node_id`'s own, in order.
pub(crate) async fn read(
    txn: &DatabaseTransaction,
    node_id: i64,
    after_version: i64,
    last_version: i64,
) -> Result<Vec<(i64, Runs)>, ServerError> {
    let mut texts: Vec<(i64, String)> = select_json(
        txn,
        "SELECT r.version_id, r.runs FROM dbsync_version_runs r \
         JOIN dbsync_versions v ON v.version_id = r.version_id \
         WHERE r.version_id > $1 AND r.version_id <= $2 \
         AND (v.node_id IS NULL OR v.node_id <> $3) ORDER BY r.version_id",
        &["version_id", "runs"],
        vec![after_version.into(), last_version.into(), node_id.into()],
    )
    .await?;
    texts.sort_by_key(|t| t.0);
    texts
        .into_iter()
        .map(|(version, text)| Ok((version, Runs::parse(version, &text)?)))
        .collect()
}

/// An operation as a page holds it: content type, key, command.
pub(crate) type Operation = (u32, i64, Command);

/// A version's runs, in order: content type, command, first key, number of keys.
pub(crate) struct Runs(Vec<(u32, Command, i64, u64)>);

impl Runs {
    /// The runs stored as `text` for `version`, each at least one key long and within the
    /// range of keys.
    fn parse(version: i64, text: &str) -> Result<Runs, ServerError> {
        let corrupt =
            |what: String| ServerError::Internal(format!("the runs of version {version} {what}"));
        let stored: Vec<StoredRun> =
            serde_json::from_str(text).map_err(|e| corrupt(format!("do not parse: {e}")))?;
        stored
            .into_iter()
            .map(|(ct, letter, first, count)| {
                let command = Command::from_letter(&letter)
                    .ok_or_else(|| corrupt(format!("hold an unknown command {letter:?}")))?;
                let count = u64::try_from(count)
                    .ok()
                    .filter(|count| *count > 0 && first.checked_add_unsigned(count - 1).is_some())
                    .ok_or_else(|| corrupt(format!("hold a run of {count} from {first}")))?;
                Ok((u32::try_from(ct).unwrap_or(u32::MAX), command, first, count))
            })
            .collect::<Result<_, _>>()
            .map(Runs)
    }

    /// The number of operations.
    pub(crate) fn len(&self) -> u64 {
        self.0.iter().map(|run| run.3).sum()
    }

    /// The operations after the first `skip`, at most `take` of them, expanding only those.
    pub(crate) fn window(&self, mut skip: u64, mut take: u64) -> Vec<Operation> {
        let mut operations = Vec::new();
        for &(ct, command, first, count) in &self.0 {
            if take == 0 {
                break;
            }
            if skip >= count {
                skip -= count;
                continue;
            }
            let n = (count - skip).min(take);
            // Within the run, whose last key `parse` checked.
            let start = first.saturating_add_unsigned(skip);
            operations.extend((0..n).map(|i| (ct, start.saturating_add_unsigned(i), command)));
            take -= n;
            skip = 0;
        }
        operations
    }
}

/// The rows the pushes after `after_version` changed, leaving out `node_id`'s own (no node
/// has id 0); `None` when they hold more than `limit` operations.
pub(crate) async fn rows_after(
    txn: &DatabaseTransaction,
    node_id: i64,
    after_version: i64,
    limit: usize,
) -> Result<Option<Vec<(u32, i64)>>, ServerError> {
    // Each version holds an operation at least: past `limit` versions, there are too many.
    let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let listed = versions(txn, node_id, after_version, i64::MAX, most).await?;
    let total: i64 = listed.iter().filter_map(|(_, n)| *n).sum();
    if usize::try_from(total).is_ok_and(|total| total > limit) || listed.len() > limit {
        return Ok(None);
    }
    let Some(last) = listed.last().map(|(v, _)| *v) else {
        return Ok(Some(Vec::new()));
    };
    Ok(Some(
        read(txn, node_id, after_version, last)
            .await?
            .into_iter()
            .flat_map(|(_, runs)| runs.window(0, u64::MAX))
            .map(|(ct, key, _)| (ct, key))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_expands_only_the_operations_asked_for_across_runs() {
        let runs = Runs::parse(7, r#"[[1, "i", 10, 3], [2, "d", 5, 1], [1, "u", 20, 2]]"#).unwrap();
        assert_eq!(runs.len(), 6);
        let keys =
            |skip, take| -> Vec<i64> { runs.window(skip, take).iter().map(|op| op.1).collect() };
        assert_eq!(keys(0, u64::MAX), [10, 11, 12, 5, 20, 21]);
        assert_eq!(keys(2, 3), [12, 5, 20]);
        assert_eq!(keys(4, 1), [20]);
        assert_eq!(keys(6, 5), Vec::<i64>::new());
        assert_eq!(runs.window(3, 1), [(2, 5, Command::Delete)]);
    }

    #[test]
    fn a_run_may_end_at_the_largest_key_and_no_further() {
        let max = i64::MAX;
        let runs = Runs::parse(1, &format!(r#"[[1, "i", {}, 2]]"#, max - 1)).unwrap();
        assert_eq!(
            runs.window(0, u64::MAX),
            [(1, max - 1, Command::Insert), (1, max, Command::Insert)]
        );
        for corrupt in [
            format!(r#"[[1, "i", {max}, 2]]"#),
            r#"[[1, "i", 1, 0]]"#.to_owned(),
            r#"[[1, "x", 1, 1]]"#.to_owned(),
            r#"{"not": "runs"}"#.to_owned(),
        ] {
            assert!(
                matches!(Runs::parse(1, &corrupt), Err(ServerError::Internal(_))),
                "{corrupt}"
            );
        }
    }
}
