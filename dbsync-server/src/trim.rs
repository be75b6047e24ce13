//! Trimming the server's log: operations every active node has already pulled can go.

use crate::error::ServerError;
use crate::server::{SyncServer, lock_latest, scalar, stamp_pending, statement};
use dbsync::messages::now_millis;
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use std::time::Duration;

/// What a trim did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrimReport {
    /// Operations up to this version are gone; a node older than it must repair.
    pub horizon: i64,
    /// Operations removed, pushed ones and the server's own writes.
    pub removed: u64,
}

impl SyncServer {
    /// Removes the operations that every active node has already received, by pull, push or
    /// repair.
    ///
    /// A node counts as active if it was seen within `inactive_after` (every node when
    /// `None`): a node that never comes back would otherwise hold the log forever. A node
    /// whose version falls behind the horizon (an inactive one, or one registered later)
    /// gets [`ServerError::RepairRequired`] from `pull` instead of an incomplete history, and
    /// the client reports `dbsync::Error::RepairRequired`.
    #[tracing::instrument(name = "dbsync.trim", skip_all)]
    pub async fn trim(&self, inactive_after: Option<Duration>) -> Result<TrimReport, ServerError> {
        stamp_pending(self.db()).await?;
        let txn = self.db().begin().await?;
        // Holding the version lock: no version is being assigned while the horizon is chosen.
        let latest = lock_latest(&txn).await?;
        let since = inactive_after.map_or(i64::MIN, |d| {
            now_millis().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        let least: Option<i64> = scalar(
            &txn,
            "SELECT MIN(pulled_version) FROM dbsync_nodes WHERE last_seen >= $1",
            vec![since.into()],
        )
        .await?;
        let horizon = least.unwrap_or(latest).min(latest);
        let removed = txn
            .execute_raw(statement(
                txn.get_database_backend(),
                "DELETE FROM dbsync_operations WHERE version_id IS NOT NULL AND version_id <= $1",
                vec![horizon.into()],
            ))
            .await?
            .rows_affected();
        // `SUM` of a BIGINT is NUMERIC in PostgreSQL and DECIMAL in MySQL.
        let sum = match txn.get_database_backend() {
            DbBackend::Postgres => "CAST(SUM(operations) AS BIGINT)",
            DbBackend::MySql => "CAST(SUM(operations) AS SIGNED)",
            _ => "SUM(operations)",
        };
        let pushed: Option<i64> = scalar(
            &txn,
            &format!("SELECT {sum} FROM dbsync_version_runs WHERE version_id <= $1"),
            vec![horizon.into()],
        )
        .await?;
        txn.execute_raw(statement(
            txn.get_database_backend(),
            "DELETE FROM dbsync_version_runs WHERE version_id <= $1",
            vec![horizon.into()],
        ))
        .await?;
        let removed = removed + pushed.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        // `dbsync_moved_keys` stays, like `dbsync_versions`: a push counts as seen once it
        // commits, and a node whose answer was lost still needs its moves when it retries.
        txn.execute_raw(statement(
            txn.get_database_backend(),
            "UPDATE dbsync_server_state SET trimmed_version = $1 WHERE id = 1 AND trimmed_version < $2",
            vec![horizon.into(), horizon.into()],
        ))
        .await?;
        txn.commit().await?;
        tracing::info!(horizon, removed, "log trimmed");
        Ok(TrimReport { horizon, removed })
    }
}
