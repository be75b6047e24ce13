//! The operations log: one entry per insert, update or delete of a tracked row, written by
//! the capture triggers in the writer's own transaction.
//!
//! An entry names the row (content type and primary key) and the command, never the values:
//! the current row is read when a message is built, so a row updated ten times travels once.
//! An entry stays *unsynced* until a push carrying it is accepted.

mod compress;

pub use compress::compress;

use crate::error::Result;
use crate::registry::Registry;
use crate::tracked::Tracked;
use sea_orm::{ConnectionTrait, DbBackend};

/// What happened to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// The row was inserted.
    #[serde(rename = "i")]
    Insert,
    /// The row was updated.
    #[serde(rename = "u")]
    Update,
    /// The row was deleted.
    #[serde(rename = "d")]
    Delete,
}

impl Command {
    /// The letter stored in the log: `i`, `u` or `d`.
    pub fn letter(self) -> &'static str {
        match self {
            Command::Insert => "i",
            Command::Update => "u",
            Command::Delete => "d",
        }
    }

    /// The command stored as `letter`.
    pub fn from_letter(letter: &str) -> Option<Command> {
        match letter.trim() {
            "i" => Some(Command::Insert),
            "u" => Some(Command::Update),
            "d" => Some(Command::Delete),
            _ => None,
        }
    }
}

/// One entry of the operations log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    /// Position in the log: later writes have larger numbers.
    pub seq: i64,
    /// The table, by [`Tracked::CONTENT_TYPE_ID`].
    pub content_type_id: u32,
    /// The row's primary key.
    pub row_id: i64,
    /// What happened.
    pub command: Command,
}

/// A row with changes not yet accepted by the server, after compression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UnsyncedObject {
    /// The table.
    pub table: String,
    /// The row's primary key.
    pub row_id: i64,
    /// The net change to push.
    pub command: Command,
}

/// Every unsynced log entry, oldest first, as recorded (not compressed).
pub async fn unsynced_operations<C: ConnectionTrait>(db: &C) -> Result<Vec<Operation>> {
    read(db, "WHERE version_id IS NULL", vec![], None).await
}

/// The oldest `limit` unsynced operations.
#[cfg(feature = "client")]
pub(crate) async fn oldest_unsynced<C: ConnectionTrait>(
    db: &C,
    limit: usize,
) -> Result<Vec<Operation>> {
    read(db, "WHERE version_id IS NULL", vec![], Some(limit)).await
}

/// Whether the row of `E` with primary key `id` has no change waiting to be pushed.
///
/// A row inserted and deleted again before any push counts as synced: there is nothing to
/// send.
pub async fn is_synced<E: Tracked, C: ConnectionTrait>(db: &C, id: i64) -> Result<bool> {
    let backend = db.get_database_backend();
    let filter = match backend {
        DbBackend::Postgres => "WHERE version_id IS NULL AND content_type_id = $1 AND row_id = $2",
        _ => "WHERE version_id IS NULL AND content_type_id = ? AND row_id = ?",
    };
    let ops = read(
        db,
        filter,
        vec![i64::from(E::CONTENT_TYPE_ID).into(), id.into()],
        None,
    )
    .await?;
    Ok(compress(&ops).is_empty())
}

/// The rows with changes waiting to be pushed, one per row with its net change, in log order.
///
/// Tables not in the program's registry are reported by content-type id as `#<id>`; they
/// appear only if a tracked entity was removed while it still had unsynced changes.
pub async fn unsynced_objects<C: ConnectionTrait>(db: &C) -> Result<Vec<UnsyncedObject>> {
    let registry = Registry::global();
    let ops = unsynced_operations(db).await?;
    Ok(compress(&ops)
        .into_iter()
        .map(|op| UnsyncedObject {
            table: registry
                .by_content_type(op.content_type_id)
                .map_or_else(|| format!("#{}", op.content_type_id), |t| t.name.clone()),
            row_id: op.row_id,
            command: op.command,
        })
        .collect())
}

async fn read<C: ConnectionTrait>(
    db: &C,
    filter: &str,
    values: Vec<sea_orm::Value>,
    limit: Option<usize>,
) -> Result<Vec<Operation>> {
    let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
    let sql = format!(
        "SELECT seq, content_type_id, row_id, command FROM dbsync_operations {filter} ORDER BY seq{limit}"
    );
    let columns = ["seq", "content_type_id", "row_id", "command"];
    let entries: Vec<(i64, i64, i64, String)> =
        crate::select_json::select_json(db, &sql, &columns, values).await?;
    let mut ops = entries
        .into_iter()
        .map(
            |(seq, content_type_id, row_id, letter): (i64, i64, i64, String)| {
                Ok(Operation {
                    seq,
                    content_type_id: u32::try_from(content_type_id).unwrap_or(u32::MAX),
                    row_id,
                    command: Command::from_letter(&letter).ok_or_else(|| {
                        sea_orm::DbErr::Custom(format!(
                            "unknown command {letter:?} in dbsync_operations"
                        ))
                    })?,
                })
            },
        )
        .collect::<Result<Vec<_>>>()?;
    // Log order is what compression and pushes rely on; the aggregate keeps it in practice.
    ops.sort_by_key(|op| op.seq);
    Ok(ops)
}
