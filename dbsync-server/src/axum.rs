//! The handlers as an axum `Router`: `POST /register`, `/push`, `/pull`, `/repair` and
//! `/query`, to nest under any path.

use crate::adapter::{self, Headers};
use crate::{NODE_HEADER, Procedure, SIGNATURE_HEADER, ServerError, SyncServer};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};

/// The dbsync routes, to mount with `Router::nest("/sync", router(server))`.
pub fn router(server: SyncServer) -> Router {
    // Bodies are read by `body_bytes`, which answers an oversized one with a typed error.
    Router::new()
        .route("/register", route(Procedure::Register))
        .route("/push", route(Procedure::Push))
        .route("/pull", route(Procedure::Pull))
        .route("/repair", route(Procedure::Repair))
        .route("/query", route(Procedure::Query))
        .layer(DefaultBodyLimit::disable())
        .with_state(server)
}

fn route(procedure: Procedure) -> MethodRouter<SyncServer> {
    post(
        move |State(server): State<SyncServer>, headers: HeaderMap, body: Body| {
            handle(server, procedure, headers, body)
        },
    )
}

async fn handle(
    server: SyncServer,
    procedure: Procedure,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = body_bytes(&server, body).await;
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let headers = Headers {
        node: text(header::HeaderName::from_static(NODE_HEADER)),
        signature: text(header::HeaderName::from_static(SIGNATURE_HEADER)),
        content_encoding: text(header::CONTENT_ENCODING),
        accept_encoding: text(header::ACCEPT_ENCODING),
    };
    let answer = if procedure == Procedure::Push {
        // hyper drops a handler whose client went away; a push that has started must still
        // run to its end, so that a lost answer means "applied" or "not applied", never "half".
        let task =
            tokio::spawn(async move { adapter::serve(&server, procedure, &headers, body).await });
        task.await
            .unwrap_or_else(|err| adapter::failure(ServerError::Internal(err.to_string())))
    } else {
        adapter::serve(&server, procedure, &headers, body).await
    };
    respond(answer)
}

/// The whole body, or `TooLarge` as soon as it passes the server's limit.
async fn body_bytes(server: &SyncServer, body: Body) -> Result<Vec<u8>, ServerError> {
    let limit = server.config().max_body_bytes;
    axum::body::to_bytes(body, limit)
        .await
        .map(|bytes| bytes.to_vec())
        .map_err(|err| {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
                || err.to_string().contains("length limit");
            if too_large {
                ServerError::TooLarge { limit }
            } else {
                ServerError::Malformed(format!("unreadable body: {err}"))
            }
        })
}

fn respond(answer: adapter::Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(encoding) = answer.encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}
