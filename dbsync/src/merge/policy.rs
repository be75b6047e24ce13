//! Conflict policies: who wins when both sides changed a row.

use super::plan::ConflictKind;
use crate::row::Row;
use std::sync::Arc;

/// The two versions of a row in conflict, as a custom policy sees them.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ConflictRows<'a> {
    /// The table.
    pub table: &'a str,
    /// The row's primary key.
    pub row_id: i64,
    /// The node's row; `None` if the node deleted it.
    pub local: Option<&'a Row>,
    /// The server's row; `None` if the server deleted it.
    pub server: Option<&'a Row>,
}

type Custom = Arc<dyn Fn(&ConflictRows<'_>) -> Option<Row> + Send + Sync>;

/// Who wins an update-against-update (or delete-against-update) conflict.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// The local change stays and is pushed (python-sync-db's rule; the default).
    #[default]
    LocalWins,
    /// The server's row replaces the local change, which is dropped.
    ServerWins,
    /// The application decides: it sees both rows and returns the row to keep (`None`:
    /// the row should not exist). A result equal to the server's row is taken as is; any
    /// other is written locally and pushed.
    Custom(Custom),
}

impl ConflictPolicy {
    /// A [`ConflictPolicy::Custom`] from a closure.
    pub fn custom(
        decide: impl Fn(&ConflictRows<'_>) -> Option<Row> + Send + Sync + 'static,
    ) -> Self {
        ConflictPolicy::Custom(Arc::new(decide))
    }
}

impl std::fmt::Debug for ConflictPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConflictPolicy::LocalWins => "LocalWins",
            ConflictPolicy::ServerWins => "ServerWins",
            ConflictPolicy::Custom(_) => "Custom",
        })
    }
}

/// How a conflict ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// The local change stays and will be pushed.
    KeptLocal,
    /// The server's version was taken; the local change is gone.
    TookServer,
    /// The application's policy wrote this row (pushed unless equal to the server's).
    Merged,
    /// A locally deleted row came back with the server's values.
    Restored,
    /// Both sides deleted the row.
    BothDeleted,
    /// The local row moved to this key.
    Moved {
        /// The new key.
        new_id: i64,
    },
    /// A parent deleted on the server was kept for the local rows that need it.
    KeptParent,
}

/// One conflict of a pull and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedConflict {
    /// The table.
    pub table: String,
    /// The row's primary key (before any move).
    pub row_id: i64,
    /// What conflicted.
    pub kind: ConflictKind,
    /// How it ended.
    pub resolution: Resolution,
}
