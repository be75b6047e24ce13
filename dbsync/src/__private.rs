//! What `#[derive(Tracked)]` expands to and `dbsync-server` refer to; not public API.

pub use crate::apply::{apply_operations_to_free_keys, apply_pushed_to_free_keys};
pub use crate::messages::runs::runs as operation_runs;
pub use crate::registry::Registration;
pub use crate::select_json::select_json;
pub use crate::table_json::key_ranges;
pub use crate::tracked::{Direction, Tracked};
pub use inventory;
pub use sea_orm::Value;
pub use sea_orm::sea_query::Nullable;
pub use std::vec;
pub use std::vec::Vec;
