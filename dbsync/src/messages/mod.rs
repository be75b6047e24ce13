//! The messages between a node and the server, shared by `dbsync` (the client) and
//! `dbsync-server`. JSON on the wire; `docs/protocol.md` describes each one.
//!
//! Every request but `register` is signed: the node sends the JSON body with its node id and
//! an HMAC-SHA256 of the body under its secret ([`sign`]). The body carries a timestamp and a
//! random nonce, so a captured request cannot be replayed, and the whole body is covered, so
//! it cannot be altered.

mod compression;
pub(crate) mod runs;
mod signature;

pub use compression::{Compression, MIN_COMPRESSED_BYTES};
pub use runs::MAX_OPERATIONS;
pub use signature::{SignedRequest, sign, verify};

use crate::oplog::Command;
use crate::row::Row;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The protocol version this build speaks. A server refuses requests of another version with
/// [`ErrorCode::ProtocolMismatch`].
pub const PROTOCOL_VERSION: u32 = 3;

/// Rows by table name.
pub type Rows = BTreeMap<String, Vec<Row>>;

/// Rows by table name, each table's as one JSON array left undecoded: how a push's and a
/// pull's rows travel when the database built their text, and how the server reads a push
/// it can write without decoding. The same JSON as [`Rows`].
pub type RawRows = BTreeMap<String, Box<RawValue>>;

/// One operation on the wire: a row of a table and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOperation {
    /// The table.
    pub table: String,
    /// The row's primary key.
    pub row_id: i64,
    /// What happened.
    pub command: Command,
}

/// Fields every signed request carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// The node sending the request; must equal the node the signature is checked for.
    pub node_id: i64,
    /// Milliseconds since the Unix epoch when the request was made.
    pub timestamp: i64,
    /// A random string, never used twice by a node within the server's replay window.
    pub nonce: String,
    /// Application data for the server's authorization hook (tokens, user ids, ...).
    #[serde(default)]
    pub extra_data: serde_json::Value,
}

/// `register`: asks the server for a node id and a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// Application data for the server's authorization hook.
    #[serde(default)]
    pub extra_data: serde_json::Value,
}

/// The credentials of a new node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The node id.
    pub node_id: i64,
    /// The secret that signs the node's requests (hex, 256 bits from a CSPRNG).
    pub secret: String,
}

/// `push`: the node's unsynced operations with the rows they need, decoded ([`Rows`], the
/// default) or as their text ([`RawRows`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushRequest<R = Rows> {
    /// Signature fields.
    #[serde(flatten)]
    pub meta: RequestMeta,
    /// Chosen by the node, kept until the push is acknowledged: a retry with the same id is
    /// answered with the version the first attempt created, and applies nothing again.
    pub push_id: String,
    /// The latest server version the node has pulled. A push from an older version is
    /// accepted only if none of the versions the node has not seen touch a row it changes
    /// or refers to; otherwise the node must pull first.
    pub base_version: i64,
    /// Compressed operations, at most one per row. On the wire, runs of consecutive keys
    /// (`[table, command, first key, count]`, at most [`MAX_OPERATIONS`] in all).
    #[serde(with = "runs")]
    pub operations: Vec<WireOperation>,
    /// The current row of every insert and update.
    pub rows: R,
}

/// The answer to an accepted push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The version the push created. It is the node's new latest version only when the push
    /// was based on the version just before it; otherwise the node still has to pull the
    /// versions in between.
    pub new_version: i64,
    /// True when this push id had been applied before and nothing was applied now.
    #[serde(default)]
    pub replayed: bool,
    /// Inserted rows the server stored under another key, because their key already held
    /// another row there (created by another node meanwhile). The node moves them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<MovedKey>,
}

/// A pushed row that the server stored under a new key, with every reference to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedKey {
    /// The table.
    pub table: String,
    /// The key the node created the row with.
    pub old: i64,
    /// The key the row has on the server.
    pub new: i64,
}

/// A position in the server's history: within `version`, after `seq`. The server sets it
/// and the node sends it back as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// The version.
    pub version: i64,
    /// `i64::MAX` after the whole version; otherwise a log sequence number (a version of the
    /// server's own writes) or a count of operations sent (a push, kept as runs of keys).
    pub seq: i64,
}

/// `pull`: one page of the server's operations since the node's version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Signature fields.
    #[serde(flatten)]
    pub meta: RequestMeta,
    /// The latest server version the node has (0 for none).
    pub base_version: i64,
    /// The version the pull stops at, from the first page's answer; `None` on the first page.
    #[serde(default)]
    pub target_version: Option<i64>,
    /// Where the previous page ended; `None` on the first page.
    #[serde(default)]
    pub after: Option<LogCursor>,
    /// At most this many operations per page (the server may lower it).
    #[serde(default)]
    pub page_size: Option<u32>,
}

/// One page of a pull, its rows decoded ([`Rows`], the default) or as their text
/// ([`RawRows`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullResponse<R = Rows> {
    /// The version the whole pull brings the node to.
    pub target_version: i64,
    /// The operations of this page, in log order. On the wire, runs of consecutive keys, as
    /// a push's.
    #[serde(with = "runs")]
    pub operations: Vec<WireOperation>,
    /// The current row of every non-delete operation, and the rows they reference.
    pub rows: R,
    /// Where to continue, or `None` when this was the last page.
    pub next: Option<LogCursor>,
    /// Per table, the largest primary key the server has handed out: a node moving a local
    /// row out of the way of an incoming one picks a key above it.
    #[serde(default)]
    pub max_ids: BTreeMap<String, i64>,
    /// The push ids of this node's own pushes among this page's versions: a node whose push
    /// answer was lost learns here that the push was applied. Their operations are not in
    /// the page: the node has those rows already.
    #[serde(default)]
    pub own_pushes: Vec<String>,
    /// The keys the server moved in those pushes, by push id (see [`PushResponse::moved`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub own_moved: BTreeMap<String, Vec<MovedKey>>,
}

impl PullResponse<RawRows> {
    /// The page with its rows decoded.
    ///
    /// ```
    /// use dbsync::messages::{PullResponse, RawRows};
    ///
    /// let page: PullResponse<RawRows> = serde_json::from_str(
    ///     r#"{"target_version": 1, "operations": [["city", "i", 1, 1]],
    ///         "rows": {"city": [{"id": 1, "name": "Lyon"}]}}"#,
    /// )?;
    /// let page = page.decoded()?;
    /// assert_eq!(page.rows["city"][0]["name"], "Lyon");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn decoded(self) -> Result<PullResponse, serde_json::Error> {
        let mut rows = Rows::new();
        for (table, list) in self.rows {
            rows.insert(table, serde_json::from_str(list.get())?);
        }
        Ok(PullResponse {
            target_version: self.target_version,
            operations: self.operations,
            rows,
            next: self.next,
            max_ids: self.max_ids,
            own_pushes: self.own_pushes,
            own_moved: self.own_moved,
        })
    }
}

/// A position in a repair snapshot: after this table's row `after_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairCursor {
    /// The table.
    pub table: String,
    /// The last primary key sent.
    pub after_id: i64,
}

/// `repair`: one page of the server's full state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepairRequest {
    /// Signature fields.
    #[serde(flatten)]
    pub meta: RequestMeta,
    /// The version the snapshot starts from, from the first page's answer.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// Where the previous page ended; `None` on the first page.
    #[serde(default)]
    pub after: Option<RepairCursor>,
    /// At most this many rows per page (the server may lower it).
    #[serde(default)]
    pub page_size: Option<u32>,
}

/// One page of a repair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepairResponse {
    /// The server version the snapshot is at least as new as; the node's version afterwards.
    pub snapshot_version: i64,
    /// Rows of this page, with the rows they reference.
    pub rows: Rows,
    /// Where to continue, or `None` when this was the last page.
    pub next: Option<RepairCursor>,
    /// The table this page walks, from its cursor to `next`: the node's rows of that table
    /// in that key range and absent from the page are gone from the server.
    #[serde(default)]
    pub table: Option<String>,
    /// Where the pages after `next` will start, as far as the server looked ahead: a node
    /// may ask for them at once instead of one after the other. Each holds only if the table
    /// does not change meanwhile; the node checks every page's `next` against it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ahead: Vec<RepairCursor>,
}

/// `query`: server rows of one table whose columns equal the given values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// Signature fields.
    #[serde(flatten)]
    pub meta: RequestMeta,
    /// The table.
    pub table: String,
    /// Column name to value, in row JSON form; all must match.
    pub filters: Row,
}

/// The rows a query matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// The rows, in primary-key order.
    pub rows: Vec<Row>,
    /// True when the server's row limit cut the answer short.
    #[serde(default)]
    pub truncated: bool,
}

/// Why the server refused a request, as a client matches on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not a valid message.
    Malformed,
    /// The body is larger than the server accepts.
    TooLarge,
    /// The client speaks another protocol version.
    ProtocolMismatch,
    /// No such node.
    UnknownNode,
    /// The signature does not match the body.
    BadSignature,
    /// The request was seen before, or its timestamp is outside the replay window.
    Replayed,
    /// The authorization hook refused the request.
    Unauthorized,
    /// The server has versions the node has not pulled.
    PullRequired,
    /// The server trimmed operations the node has not pulled: only a repair can bring the
    /// node up to date.
    RepairRequired,
    /// An operation or row cannot be applied (unknown table or column, bad value, a
    /// conflicting insert).
    InvalidOperation,
    /// The server failed.
    Internal,
}

/// The JSON body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub code: ErrorCode,
    /// A sentence for humans.
    pub message: String,
    /// The server's [`PROTOCOL_VERSION`].
    pub protocol: u32,
}

/// A random nonce for [`RequestMeta::nonce`]: 128 bits from the operating system's CSPRNG.
pub fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
