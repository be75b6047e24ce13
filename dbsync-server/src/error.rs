//! The error every handler returns, with the status code and JSON body adapters send.

use dbsync::messages::{ErrorBody, ErrorCode, PROTOCOL_VERSION};

/// Why the server refused or failed a request.
///
/// Adapters turn it into an HTTP status ([`ServerError::status`]) and a JSON
/// [`ErrorBody`] ([`ServerError::body`]); a refused request changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The body is not a valid message.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body exceeds [`ServerConfig::max_body_bytes`](crate::ServerConfig::max_body_bytes).
    #[error("the request exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client speaks another protocol version.
    #[error("protocol version {client} is not supported; this server speaks {server}")]
    ProtocolMismatch {
        /// The client's version.
        client: u32,
        /// The server's version.
        server: u32,
    },
    /// No node has this id.
    #[error("unknown node {0}")]
    UnknownNode(i64),
    /// The signature does not match the body, or the body names another node.
    #[error("bad signature")]
    BadSignature,
    /// The request was seen before or is outside the replay window.
    #[error("replayed request: {0}")]
    Replayed(String),
    /// The application's authorization hook refused the request.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The node has not pulled the server's latest version.
    #[error("the server is at version {server}, the node at {node}: pull first")]
    PullRequired {
        /// The node's latest version.
        node: i64,
        /// The server's latest version.
        server: i64,
    },
    /// The node's version is older than the trimmed log: it must repair.
    #[error("the log is trimmed up to version {trimmed}, the node is at {node}: repair first")]
    RepairRequired {
        /// The node's version.
        node: i64,
        /// The server's trim horizon.
        trimmed: i64,
    },
    /// An operation or row cannot be applied or answered.
    #[error("invalid operation: {0}")]
    InvalidOperation(String),
    /// The server failed; the request may be retried.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServerError {
    /// The error's code on the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::Malformed(_) => ErrorCode::Malformed,
            ServerError::TooLarge { .. } => ErrorCode::TooLarge,
            ServerError::ProtocolMismatch { .. } => ErrorCode::ProtocolMismatch,
            ServerError::UnknownNode(_) => ErrorCode::UnknownNode,
            ServerError::BadSignature => ErrorCode::BadSignature,
            ServerError::Replayed(_) => ErrorCode::Replayed,
            ServerError::Unauthorized(_) => ErrorCode::Unauthorized,
            ServerError::PullRequired { .. } => ErrorCode::PullRequired,
            ServerError::RepairRequired { .. } => ErrorCode::RepairRequired,
            ServerError::InvalidOperation(_) => ErrorCode::InvalidOperation,
            ServerError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status an adapter answers with.
    pub fn status(&self) -> u16 {
        match self {
            ServerError::Malformed(_) | ServerError::ProtocolMismatch { .. } => 400,
            ServerError::UnknownNode(_) | ServerError::BadSignature | ServerError::Replayed(_) => {
                401
            }
            ServerError::Unauthorized(_) => 403,
            ServerError::PullRequired { .. } | ServerError::RepairRequired { .. } => 409,
            ServerError::TooLarge { .. } => 413,
            ServerError::InvalidOperation(_) => 422,
            ServerError::Internal(_) => 500,
        }
    }

    /// The JSON body an adapter answers with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            protocol: PROTOCOL_VERSION,
        }
    }
}

impl From<sea_orm::DbErr> for ServerError {
    fn from(err: sea_orm::DbErr) -> Self {
        // Constraint violations come from the data a node sent, not from the server.
        match err.sql_err() {
            Some(sql) => ServerError::InvalidOperation(sql.to_string()),
            None => ServerError::Internal(err.to_string()),
        }
    }
}

impl From<dbsync::Error> for ServerError {
    fn from(err: dbsync::Error) -> Self {
        match err {
            dbsync::Error::Db(db) => db.into(),
            dbsync::Error::UnknownTable { .. }
            | dbsync::Error::UnknownColumn { .. }
            | dbsync::Error::RowCodec { .. }
            | dbsync::Error::InvalidOperation(_) => ServerError::InvalidOperation(err.to_string()),
            other => ServerError::Internal(other.to_string()),
        }
    }
}
