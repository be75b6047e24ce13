//! Limits and hooks of a [`SyncServer`](crate::SyncServer).

use dbsync::BoxFuture;
use dbsync::messages::PushRequest;
use sea_orm::DatabaseTransaction;
use std::sync::Arc;
use std::time::Duration;

/// Limits of a server. The defaults suit most applications.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The largest request body accepted, in bytes (default 64 MiB).
    pub max_body_bytes: usize,
    /// The most operations or rows a pull or repair page holds (default 20,000); a client
    /// asking for more gets this many. Each page costs a request and a few commits whatever
    /// its size, so larger pages sync faster; a page of narrow rows is a few megabytes.
    pub max_page_size: u32,
    /// How far a request's timestamp may be from the server's clock (default 15 minutes).
    /// Nonces are remembered this long, which is what refuses a replayed request.
    pub replay_window: Duration,
    /// The most rows a query answers (default 1,000).
    pub max_query_rows: u32,
    /// Whether pull, repair and query need the node's signature, as push always does
    /// (default `true`). With `false`, a registered node may read without one, for servers
    /// whose data is public; the node id and nonce are still checked.
    pub require_signed_reads: bool,
    /// Whether a push from a node that has not pulled the latest versions is applied when
    /// those versions touch none of its rows (default `true`). With `false`, every such push
    /// is refused and the node pulls first, as python-sync-db did: nodes pushing at the
    /// same time then take turns.
    pub rebase_pushes: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 64 << 20,
            max_page_size: 20_000,
            replay_window: Duration::from_secs(15 * 60),
            max_query_rows: 1_000,
            require_signed_reads: true,
            rebase_pushes: true,
        }
    }
}

/// Which procedure a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Procedure {
    /// `register`.
    Register,
    /// `push`.
    Push,
    /// `pull`.
    Pull,
    /// `repair`.
    Repair,
    /// `query`.
    Query,
}

impl Procedure {
    /// The procedure's name, as in its path and in its signature.
    pub fn name(self) -> &'static str {
        match self {
            Procedure::Register => "register",
            Procedure::Push => "push",
            Procedure::Pull => "pull",
            Procedure::Repair => "repair",
            Procedure::Query => "query",
        }
    }

    /// Whether the procedure only reads.
    pub fn reads(self) -> bool {
        matches!(self, Procedure::Pull | Procedure::Repair | Procedure::Query)
    }
}

/// What the authorization hook sees of a request.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestInfo<'a> {
    /// The procedure.
    pub procedure: Procedure,
    /// The node, authenticated by its signature; `None` for `register`.
    pub node_id: Option<i64>,
    /// The request's `extra_data`.
    pub extra_data: &'a serde_json::Value,
}

/// Decides whether a request may proceed; an `Err` refuses it with that reason.
pub type AuthorizeHook = Arc<dyn Fn(&RequestInfo<'_>) -> Result<(), String> + Send + Sync>;

/// Runs inside a push's transaction, before (`new_version` is `None`) or after its
/// operations are applied; an `Err` refuses the push and rolls everything back.
pub type PushHook = Arc<
    dyn for<'a> Fn(
            &'a DatabaseTransaction,
            &'a PushRequest,
            Option<i64>,
        ) -> BoxFuture<'a, Result<(), String>>
        + Send
        + Sync,
>;
