//! Sending a request and turning the answer, or its absence, into a typed result.

use super::Client;
use crate::error::{Error, Result};
use crate::messages::{ErrorBody, ErrorCode, PROTOCOL_VERSION, sign};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Which procedure a request is for: a refused push and a refused pull are different errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Push,
    Other,
}

impl Client {
    /// Posts `message` to `path`, signed with the node's credentials when given.
    pub(super) async fn post<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        message: &Q,
        credentials: Option<(i64, &str)>,
        kind: Kind,
    ) -> Result<(A, u64)> {
        let body =
            serde_json::to_vec(message).map_err(|e| Error::InvalidOperation(e.to_string()))?;
        let inner = &self.inner;
        let mut request = inner
            .http
            .post(format!("{}/{path}", inner.base_url))
            .header("content-type", "application/json");
        if let Some((node_id, secret)) = credentials {
            request = request
                .header("x-dbsync-node", node_id.to_string())
                .header("x-dbsync-signature", sign(secret, path, &body));
        }
        for (name, value) in &inner.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(auth) = &inner.auth {
            request = auth(request);
        }
        let response = request.body(body).send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport_error)?;
        let size = bytes.len() as u64;
        if (200..300).contains(&status) {
            let answer = serde_json::from_slice(&bytes).map_err(|err| Error::ServerError {
                status,
                message: format!("not a dbsync answer: {err}"),
            })?;
            return Ok((answer, size));
        }
        Err(refusal(status, &bytes, kind))
    }
}

fn transport_error(err: reqwest::Error) -> Error {
    if err.is_timeout() {
        Error::Timeout
    } else {
        Error::Offline(err.to_string())
    }
}

fn refusal(status: u16, bytes: &[u8], kind: Kind) -> Error {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) else {
        return Error::ServerError {
            status,
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
        };
    };
    match body.code {
        ErrorCode::ProtocolMismatch => Error::ProtocolMismatch {
            client: PROTOCOL_VERSION,
            server: body.protocol,
        },
        ErrorCode::PullRequired => Error::PullSuggested {
            message: body.message,
        },
        ErrorCode::RepairRequired => Error::RepairRequired {
            message: body.message,
        },
        ErrorCode::Internal => Error::ServerError {
            status,
            message: body.message,
        },
        code if kind == Kind::Push => Error::PushRejected {
            code,
            message: body.message,
        },
        code => Error::Rejected {
            code,
            message: body.message,
        },
    }
}
