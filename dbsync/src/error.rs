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

    /// The connected database is not one dbsync supports.
    #[error("unsupported database backend: {0}")]
    UnsupportedBackend(String),
}
