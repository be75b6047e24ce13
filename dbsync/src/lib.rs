//! Offline-first synchronization for applications built on [SeaORM](sea_orm).
//!
//! An application keeps a local database and keeps working without a network. dbsync
//! records every insert, update and delete on tracked tables in an operations log, in the
//! same transaction as the write, whatever code path made it (ActiveModel calls, bulk
//! `insert_many`/`update_many`/`delete_many`, raw SQL, foreign-key cascades), and
//! synchronizes that log with a central server.
//!
//! # Brief overview
//!
//! - `#[derive(Tracked)]` on a SeaORM `Model` implements [`Tracked`] for its `Entity` and
//!   registers it in [`Registry::global`].
//! - [`create_all`] creates dbsync's tables and installs change capture (database triggers
//!   generated from the entity metadata, see [`TableInfo`]) on SQLite, PostgreSQL and
//!   MySQL/MariaDB.
//! - The log is read with [`unsynced_operations`], [`unsynced_objects`] and [`is_synced`];
//!   [`compress`] gives each row's net change.
//! - Rows travel as JSON: [`to_row`] and [`from_row`] convert losslessly.
//!
//! # Example
//!
//! ```standalone_crate
//! mod city {
//!     use sea_orm::entity::prelude::*;
//!
//!     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
//!     #[sea_orm(table_name = "city")]
//!     pub struct Model {
//!         #[sea_orm(primary_key)]
//!         pub id: i32,
//!         #[sea_orm(unique)]
//!         pub name: String,
//!     }
//!
//!     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//!     pub enum Relation {}
//!
//!     impl ActiveModelBehavior for ActiveModel {}
//! }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use sea_orm::{ActiveModelTrait, Database, EntityTrait, Set};
//!
//! let db = Database::connect("sqlite::memory:").await?;
//! db.get_schema_builder().register(city::Entity).apply(&db).await?;
//! dbsync::create_all(&db).await?;
//!
//! let paris = city::ActiveModel { name: Set("Paris".into()), ..Default::default() }
//!     .insert(&db)
//!     .await?;
//! city::Entity::delete_by_id(paris.id).exec(&db).await?;
//! let log: Vec<_> = dbsync::unsynced_operations(&db).await?.iter().map(|op| op.command).collect();
//! assert_eq!(log, [dbsync::Command::Insert, dbsync::Command::Delete]);
//! assert!(dbsync::is_synced::<city::Entity, _>(&db, paris.id.into()).await?); // nothing to send
//! # Ok::<(), dbsync::Error>(())
//! # }).unwrap();
//! ```

#![deny(missing_docs)]

mod apply;
mod capture;
#[cfg(feature = "client")]
mod client;
mod error;
pub mod merge;
pub mod messages;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod node_state;
mod oplog;
mod registry;
mod row;
mod rows_text;
mod select_json;
mod setup;
mod table;
mod table_json;
mod table_ops;
mod tracked;
mod untracked;

#[doc(hidden)]
pub mod __private;

pub use apply::apply_operations;
#[cfg(feature = "client")]
pub use client::{
    Client, ClientBuilder, Phase, Progress, PullReport, PushReport, RepairReport, SyncReport,
    UnsyncedPolicy,
};
pub use error::{Error, Result, UniqueConflict};
pub use oplog::{
    Command, Operation, UnsyncedObject, compress, is_synced, unsynced_objects, unsynced_operations,
};
pub use registry::Registry;
pub use row::{Row, from_row, to_row};
pub use setup::{Role, create_all, create_all_with, drop_all, drop_all_with};
pub use table::{ColumnInfo, FkAction, ForeignKey, TableInfo};
pub use table_json::{FetchedRows, RowsText};
pub use table_ops::{BoxFuture, Inserted, TableOps};
pub use tracked::{Direction, Tracked};
pub use untracked::{UntrackedTransaction, begin_untracked};

/// Derives [`Tracked`] for a SeaORM `Model`, registering its entity with dbsync.
///
/// Put it beside `DeriveEntityModel`. It reads SeaORM's own attributes (`table_name`,
/// `primary_key`, `ignore`) and these options:
///
/// - `#[dbsync(direction = "push" | "pull" | "both")]`: which way changes travel (default
///   `both`);
/// - `#[dbsync(crate = "path::to::dbsync")]`: where dbsync is, for crates that re-export it.
///
/// The entity needs exactly one integer primary key; anything else is a compile error
/// pointing at the cause.
#[cfg(feature = "macros")]
pub use dbsync_derive::Tracked;
