//! What both framework adapters need, without either framework's types: reading a signed
//! request from header values, and turning a handler's result into a status and a body.

use crate::{ServerError, SignedRequest};
use serde::Serialize;

/// A [`SignedRequest`] from the `x-dbsync-node` and `x-dbsync-signature` header values. A
/// missing or unreadable node is a bad signature; a missing signature is an empty one, which
/// only a server that lets nodes read unsigned accepts, and only for reads.
pub(crate) fn signed(
    node: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<SignedRequest, ServerError> {
    let node_id = node
        .and_then(|n| n.parse().ok())
        .ok_or(ServerError::BadSignature)?;
    Ok(SignedRequest {
        node_id,
        signature: signature.unwrap_or_default().to_owned(),
        body: body.to_vec(),
    })
}

/// The HTTP status and JSON body of a handler's result.
pub(crate) fn answer<T: Serialize>(result: Result<T, ServerError>) -> (u16, Vec<u8>) {
    let (status, body) = match result {
        Ok(answer) => (200, serde_json::to_vec(&answer)),
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(%err, "dbsync request failed");
            }
            (err.status(), serde_json::to_vec(&err.body()))
        }
    };
    (status, body.unwrap_or_default())
}
