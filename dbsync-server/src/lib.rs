//! The server side of [dbsync](https://docs.rs/dbsync): framework-neutral handlers for
//! `register`, `push`, `pull`, `repair` and `query`, and thin axum and actix-web adapters
//! behind the `axum` and `actix` features.
//!
//! # Brief overview
//!
//! - [`SyncServer`] holds the database, the limits ([`ServerConfig`]) and the application's
//!   hooks. [`SyncServer::setup`] creates dbsync's tables and installs change capture, so
//!   that writes the application makes on the server reach the nodes too.
//! - Each procedure is a method, `handle_register`, `handle_push`, `handle_pull`,
//!   `handle_repair`, `handle_query`, from bytes or a [`SignedRequest`] to a typed answer or a
//!   [`ServerError`], with no HTTP type anywhere.
//! - [`axum::router`] and [`actix::configure`] mount them under the paths the client uses.
//!
//! The server keeps nothing in memory between requests: versions, nodes and nonces are rows,
//! and the version counter is locked in the database, so several processes can serve one
//! PostgreSQL database.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = sea_orm::Database::connect("postgres://localhost/app").await?;
//! let server = dbsync_server::SyncServer::new(db);
//! server.setup().await?;
//! let app = axum::Router::new().nest("/sync", dbsync_server::axum::router(server));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

#[cfg(any(feature = "axum", feature = "actix"))]
mod adapter;
mod config;
mod error;
mod handlers;
mod schema;
mod server;
mod trim;

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;

pub use config::{AuthorizeHook, Procedure, PushHook, RequestInfo, ServerConfig};
pub use dbsync::messages::SignedRequest;
pub use error::ServerError;
pub use server::{SyncServer, SyncServerBuilder};
pub use trim::TrimReport;

/// The header that carries the node id of a signed request.
pub const NODE_HEADER: &str = "x-dbsync-node";
/// The header that carries the signature of a signed request.
pub const SIGNATURE_HEADER: &str = "x-dbsync-signature";
