//! The handlers as an axum `Router`: `POST /register`, `/push`, `/pull`, `/repair` and
//! `/query`, to nest under any path.

use crate::{NODE_HEADER, SIGNATURE_HEADER, ServerError, SignedRequest, SyncServer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

/// The dbsync routes, to mount with `Router::nest("/sync", router(server))`.
pub fn router(server: SyncServer) -> Router {
    // One byte over the limit still reaches the handler, which answers with a typed error.
    let limit = server.config().max_body_bytes.saturating_add(1);
    Router::new()
        .route("/register", post(register))
        .route("/push", post(push))
        .route("/pull", post(pull))
        .route("/repair", post(repair))
        .route("/query", post(query))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(server)
}

async fn register(State(server): State<SyncServer>, body: Bytes) -> Response {
    respond(server.handle_register(&body).await)
}

async fn push(State(server): State<SyncServer>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match signed(&headers, body) {
        Ok(request) => request,
        Err(err) => return respond::<()>(Err(err)),
    };
    // hyper drops a handler whose client went away; a push that has started must still run
    // to its end, so that a lost answer means "applied" or "not applied", never "half".
    let task = tokio::spawn(async move { server.handle_push(&request).await });
    respond(
        task.await
            .unwrap_or_else(|err| Err(ServerError::Internal(err.to_string()))),
    )
}

async fn pull(State(server): State<SyncServer>, headers: HeaderMap, body: Bytes) -> Response {
    match signed(&headers, body) {
        Ok(request) => respond(server.handle_pull(&request).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn repair(State(server): State<SyncServer>, headers: HeaderMap, body: Bytes) -> Response {
    match signed(&headers, body) {
        Ok(request) => respond(server.handle_repair(&request).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn query(State(server): State<SyncServer>, headers: HeaderMap, body: Bytes) -> Response {
    match signed(&headers, body) {
        Ok(request) => respond(server.handle_query(&request).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

fn signed(headers: &HeaderMap, body: Bytes) -> Result<SignedRequest, ServerError> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(ServerError::BadSignature)
    };
    let node_id = text(NODE_HEADER)?
        .parse()
        .map_err(|_| ServerError::BadSignature)?;
    Ok(SignedRequest {
        node_id,
        signature: text(SIGNATURE_HEADER)?.to_owned(),
        body: body.to_vec(),
    })
}

fn respond<T: Serialize>(result: Result<T, ServerError>) -> Response {
    let (status, body) = match result {
        Ok(answer) => (StatusCode::OK, serde_json::to_vec(&answer)),
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(%err, "dbsync request failed");
            }
            (
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                serde_json::to_vec(&err.body()),
            )
        }
    };
    let body = body.unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
