//! Sending a request and turning the answer, or its absence, into a typed result.

use super::Client;
use crate::error::{Error, Result};
use crate::messages::{Compression, ErrorBody, ErrorCode, PROTOCOL_VERSION, sign};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Which procedure a request is for: a refused push and a refused pull are different errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Push,
    Other,
}

/// The largest answer a client decompresses (a page is far smaller).
const MAX_ANSWER_BYTES: usize = 1 << 30;

/// Bytes a request moved on the wire, compressed as they were.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Wire {
    pub sent: u64,
    pub received: u64,
}

impl Client {
    /// Posts `message` to `path`, signed with the node's credentials when given, and decodes
    /// the answer.
    pub(super) async fn post<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        message: &Q,
        credentials: Option<(i64, &str)>,
        kind: Kind,
    ) -> Result<(A, Wire)> {
        let (bytes, wire) = self.post_bytes(path, message, credentials, kind).await?;
        let answer = serde_json::from_slice(&bytes).map_err(|err| not_an_answer(&err))?;
        Ok((answer, wire))
    }

    /// Like [`Client::post`], but returns the answer's JSON undecoded.
    pub(super) async fn post_bytes<Q: Serialize>(
        &self,
        path: &str,
        message: &Q,
        credentials: Option<(i64, &str)>,
        kind: Kind,
    ) -> Result<(Vec<u8>, Wire)> {
        let json =
            serde_json::to_vec(message).map_err(|e| Error::InvalidOperation(e.to_string()))?;
        let inner = &self.inner;
        let mut request = inner
            .http
            .post(format!("{}/{path}", inner.base_url))
            .header("content-type", "application/json");
        if inner.compression != Compression::None {
            request = request.header("accept-encoding", "zstd, gzip");
        }
        if let Some((node_id, secret)) = credentials {
            request = request
                .header("x-dbsync-node", node_id.to_string())
                .header("x-dbsync-signature", sign(secret, path, &json));
        }
        // The signature covers the JSON itself, whatever the encoding on the wire.
        let (encoding, body) = inner.compression.compress(&json);
        drop(json);
        if let Some(name) = encoding.header() {
            request = request.header("content-encoding", name);
        }
        let sent = body.len() as u64;
        for (name, value) in &inner.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(auth) = &inner.auth {
            request = auth(request);
        }
        let response = request.body(body).send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let encoding = response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let wire = response.bytes().await.map_err(transport_error)?;
        let traffic = Wire {
            sent,
            received: wire.len() as u64,
        };
        let bytes = Compression::from_header(encoding.as_deref())
            .ok_or_else(|| format!("an answer in an unknown encoding {encoding:?}"))
            .and_then(|c| {
                c.decompress(&wire, MAX_ANSWER_BYTES)
                    .map_err(|err| format!("an undecodable answer: {err}"))
            })
            .map_err(|message| Error::ServerError { status, message })?;
        if (200..300).contains(&status) {
            return Ok((bytes, traffic));
        }
        Err(refusal(status, &bytes, kind))
    }
}

/// A 200 answer that is not the message expected.
pub(super) fn not_an_answer(err: &serde_json::Error) -> Error {
    Error::ServerError {
        status: 200,
        message: format!("not a dbsync answer: {err}"),
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
