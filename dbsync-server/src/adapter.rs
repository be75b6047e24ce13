//! What both framework adapters share, without either framework's types: decoding a
//! request's body, checking its headers, running the handler, and encoding the answer.

use crate::{Procedure, ServerError, SignedRequest, SyncServer};
use dbsync::messages::Compression;
use serde::Serialize;

/// The headers a dbsync request carries, owned, so that a push can run in a task of its own.
#[derive(Default)]
pub(crate) struct Headers {
    pub node: Option<String>,
    pub signature: Option<String>,
    pub content_encoding: Option<String>,
    pub accept_encoding: Option<String>,
}

/// An answer: its status, and its JSON body compressed as `encoding` says.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub encoding: Option<&'static str>,
}

/// Runs `procedure` on a request whose body was read as `body` (or failed to be) and
/// encodes the answer in an encoding the client accepts.
pub(crate) async fn serve(
    server: &SyncServer,
    procedure: Procedure,
    headers: &Headers,
    body: Result<Vec<u8>, ServerError>,
) -> Answer {
    let (status, json) = match run(server, procedure, headers, body).await {
        Ok(json) => (200, json),
        Err(err) => {
            let failure = failure(err);
            (failure.status, failure.body)
        }
    };
    let (encoding, body) =
        Compression::accepted(headers.accept_encoding.as_deref()).compress(&json);
    Answer {
        status,
        body,
        encoding: encoding.header(),
    }
}

/// The uncompressed answer of a refused or failed request.
pub(crate) fn failure(err: ServerError) -> Answer {
    if err.status() >= 500 {
        tracing::error!(%err, "dbsync request failed");
    }
    Answer {
        status: err.status(),
        body: serde_json::to_vec(&err.body()).unwrap_or_default(),
        encoding: None,
    }
}

async fn run(
    server: &SyncServer,
    procedure: Procedure,
    headers: &Headers,
    body: Result<Vec<u8>, ServerError>,
) -> Result<Vec<u8>, ServerError> {
    let limit = server.config().max_body_bytes;
    let encoding =
        Compression::from_header(headers.content_encoding.as_deref()).ok_or_else(|| {
            ServerError::Malformed(format!(
                "content-encoding {:?} is not one of zstd, gzip, identity",
                headers.content_encoding
            ))
        })?;
    let body = encoding.decompress(&body?, limit).map_err(|err| {
        if err.kind() == std::io::ErrorKind::FileTooLarge {
            ServerError::TooLarge { limit }
        } else {
            ServerError::Malformed(format!("undecodable {encoding:?} body: {err}"))
        }
    })?;
    if procedure == Procedure::Register {
        return json(server.handle_register(&body).await);
    }
    let request = signed(headers, body)?;
    match procedure {
        Procedure::Push => json(server.handle_push(&request).await),
        Procedure::Pull => json(server.pull_answer(&request).await),
        Procedure::Repair => json(server.repair_answer(&request).await),
        Procedure::Query => json(server.handle_query(&request).await),
        Procedure::Register => unreachable!("answered above"),
    }
}

fn json<T: Serialize>(answer: Result<T, ServerError>) -> Result<Vec<u8>, ServerError> {
    serde_json::to_vec(&answer?).map_err(|err| ServerError::Internal(err.to_string()))
}

/// A [`SignedRequest`] from the `x-dbsync-node` and `x-dbsync-signature` headers. A missing
/// or unreadable node is a bad signature; a missing signature is an empty one, which only a
/// server that lets nodes read unsigned accepts, and only for reads.
fn signed(headers: &Headers, body: Vec<u8>) -> Result<SignedRequest, ServerError> {
    let node_id = headers
        .node
        .as_deref()
        .and_then(|n| n.parse().ok())
        .ok_or(ServerError::BadSignature)?;
    Ok(SignedRequest {
        node_id,
        signature: headers.signature.clone().unwrap_or_default(),
        body,
    })
}
