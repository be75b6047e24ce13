//! The [`Tracked`] trait that `#[derive(Tracked)]` implements.

use sea_orm::{EntityTrait, TryIntoModel, Value};

/// Which way a tracked table's changes travel, like python-sync-db's `track('push', 'pull')`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// Local changes are recorded and pushed; server changes are not pulled.
    Push,
    /// Server changes are pulled; local changes are not recorded.
    Pull,
    /// Both ways (the default).
    Both,
}

impl Direction {
    /// Whether local writes to the table are recorded for pushing.
    pub fn pushes(self) -> bool {
        matches!(self, Direction::Push | Direction::Both)
    }

    /// Whether server changes to the table are pulled.
    pub fn pulls(self) -> bool {
        matches!(self, Direction::Pull | Direction::Both)
    }
}

/// A SeaORM entity whose writes dbsync records and synchronizes.
///
/// Implemented on the `Entity` type by `#[derive(Tracked)]` on the `Model` struct; there is
/// no reason to implement it by hand. Everything else dbsync knows about the table (primary
/// key, unique constraints, foreign keys) it reads from SeaORM's own metadata, see
/// [`TableInfo`](crate::TableInfo).
pub trait Tracked: EntityTrait<ActiveModel: TryIntoModel<<Self as EntityTrait>::Model>> {
    /// Identifies the table in operations: the CRC32 of the table name, so that it is the
    /// same on every node and survives recompilation.
    const CONTENT_TYPE_ID: u32;

    /// Which way changes travel.
    const DIRECTION: Direction;

    /// The SQL `NULL` of each column's value type, in `Column::iter()` order: it tells the row
    /// decoder which value type each column holds.
    fn column_templates() -> Vec<Value>;
}
