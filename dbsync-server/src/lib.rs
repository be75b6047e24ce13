//! The server side of [dbsync](https://docs.rs/dbsync): framework-neutral handlers for
//! register, push, pull, repair and query, with axum and actix-web adapters behind features.
//!
//! The handlers arrive with the sync protocol; until then this crate only reserves the name
//! and the place in the workspace.

#![deny(missing_docs)]
