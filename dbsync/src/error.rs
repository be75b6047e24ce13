//! The error type of every fallible dbsync call.

use sea_orm::DbErr;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in dbsync.
///
/// Variants carry the names (table, column) the caller needs to fix the cause. The enum is
/// `#[non_exhaustive]`: later versions add variants without a breaking change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Db(#[from] DbErr),

    /// A tracked table could hand out a primary key that was used before, which would make
    /// two different rows look like one to every other node.
    #[error("tracked table `{table}` can reuse primary keys: {reason}; fix: {fix}")]
    KeyReuse {
        /// The table.
        table: String,
        /// Why its keys can be reused.
        reason: String,
        /// What to change.
        fix: String,
    },

    /// A tracked entity has no table in the database.
    #[error(
        "tracked table `{table}` does not exist; create the application's tables before calling \
         dbsync::create_all"
    )]
    MissingTable {
        /// The table.
        table: String,
    },

    /// Two tracked entities hash to the same content-type id, so operations could not tell
    /// them apart.
    #[error("tracked tables `{first}` and `{second}` share the content-type id {id}")]
    ContentTypeClash {
        /// One table.
        first: String,
        /// The other table.
        second: String,
        /// The id both hash to.
        id: u32,
    },

    /// The same table is registered twice under different definitions.
    #[error("table `{table}` is registered twice")]
    DuplicateTable {
        /// The table.
        table: String,
    },

    /// A table name that no tracked entity has.
    #[error("`{table}` is not a tracked table")]
    UnknownTable {
        /// The name as given.
        table: String,
    },

    /// A column name that the table does not have.
    #[error("table `{table}` has no column `{column}`")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The name as given.
        column: String,
    },

    /// A row could not be converted to or from its JSON form.
    #[error("row of `{table}`, column `{column}`: {reason}")]
    RowCodec {
        /// The table.
        table: String,
        /// The column (empty when the row as a whole is wrong).
        column: String,
        /// What was wrong.
        reason: String,
    },

    /// An operation cannot be applied: it has no row, or its insert collides with a
    /// different row.
    #[error("invalid operation: {0}")]
    InvalidOperation(String),

    /// The node has no credentials yet: call `register` first.
    #[error("this node is not registered with a server")]
    NotRegistered,

    /// The server could not be reached (no network, refused connection, DNS, TLS).
    #[error("the server is unreachable: {0}")]
    Offline(String),

    /// The server did not answer in time. For a push, the outcome is unknown: the next push
    /// retries it, and the server applies it at most once.
    #[error("the server did not answer in time")]
    Timeout,

    /// The server refused a push: bad signature, unknown node, invalid operation, or the
    /// application's authorization.
    #[error("push rejected ({code:?}): {message}")]
    PushRejected {
        /// Why, as the server classifies it.
        code: crate::messages::ErrorCode,
        /// The server's explanation.
        message: String,
    },

    /// The server has versions this node has not pulled: pull, then push again
    /// (`Client::sync` does).
    #[error("pull suggested: {message}")]
    PullSuggested {
        /// The server's explanation.
        message: String,
    },

    /// The server no longer has the operations this node needs (its log was trimmed past
    /// the node's version): call `Client::repair`.
    #[error("repair required: {message}")]
    RepairRequired {
        /// The server's explanation.
        message: String,
    },

    /// The server refused a register, pull, repair or query request.
    #[error("request rejected ({code:?}): {message}")]
    Rejected {
        /// Why, as the server classifies it.
        code: crate::messages::ErrorCode,
        /// The server's explanation.
        message: String,
    },

    /// The server failed, or answered with something that is not a dbsync message.
    #[error("server error (HTTP {status}): {message}")]
    ServerError {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
    },

    /// Client and server speak different protocol versions.
    #[error("protocol version mismatch: this node speaks {client}, the server {server}")]
    ProtocolMismatch {
        /// This build's version.
        client: u32,
        /// The server's version.
        server: u32,
    },

    /// Local rows hold unique values that rows coming from the server also hold. The pull
    /// changed nothing; change the local rows (for example rename them) and pull again.
    #[error("unique constraint conflicts: {}", conflicts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    UniqueConstraint {
        /// Each local row in the way.
        conflicts: Vec<UniqueConflict>,
    },

    /// A repair would discard local changes that were never pushed.
    #[error("{count} local changes were never pushed; repair would discard them")]
    UnsyncedChanges {
        /// How many rows have unpushed changes.
        count: usize,
    },

    /// Other processes sharing this database kept starting pushes while a pull ran, so the
    /// pull could not tell which of their rows the server has; try again.
    #[error("other processes kept pushing during the pull; try again")]
    Busy,

    /// The connected database is not one dbsync supports.
    #[error("unsupported database backend: {0}")]
    UnsupportedBackend(String),
}

/// A local row whose unique columns hold values a server row also holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UniqueConflict {
    /// The table.
    pub table: String,
    /// The local row's primary key.
    pub row_id: i64,
    /// The columns of the unique constraint.
    pub columns: Vec<String>,
}

impl std::fmt::Display for UniqueConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({})",
            self.table,
            self.row_id,
            self.columns.join(", ")
        )
    }
}
