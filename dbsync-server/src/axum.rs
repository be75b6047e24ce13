//! The handlers as an axum `Router`: `POST /register`, `/push`, `/pull`, `/repair` and
//! `/query`, to nest under any path.

use crate::{NODE_HEADER, SIGNATURE_HEADER, ServerError, SignedRequest, SyncServer, adapter};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

/// The dbsync routes, to mount with `Router::nest("/sync", router(server))`.
pub fn router(server: SyncServer) -> Router {
    // Bodies are read by `body_bytes`, which answers an oversized one with a typed error.
    Router::new()
        .route("/register", post(register))
        .route("/push", post(push))
        .route("/pull", post(pull))
        .route("/repair", post(repair))
        .route("/query", post(query))
        .layer(DefaultBodyLimit::disable())
        .with_state(server)
}

async fn register(State(server): State<SyncServer>, body: Body) -> Response {
    match body_bytes(&server, body).await {
        Ok(body) => respond(server.handle_register(&body).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

/// The whole body, or `TooLarge` as soon as it passes the server's limit.
async fn body_bytes(server: &SyncServer, body: Body) -> Result<Bytes, ServerError> {
    let limit = server.config().max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|err| {
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

async fn push(State(server): State<SyncServer>, headers: HeaderMap, body: Body) -> Response {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
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

async fn pull(State(server): State<SyncServer>, headers: HeaderMap, body: Body) -> Response {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&headers, body) {
        Ok(request) => respond(server.handle_pull(&request).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn repair(State(server): State<SyncServer>, headers: HeaderMap, body: Body) -> Response {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&headers, body) {
        Ok(request) => respond(server.handle_repair(&request).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn query(State(server): State<SyncServer>, headers: HeaderMap, body: Body) -> Response {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&headers, body) {
        Ok(request) => respond(server.handle_query(&request).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

fn signed(headers: &HeaderMap, body: Bytes) -> Result<SignedRequest, ServerError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    adapter::signed(text(NODE_HEADER), text(SIGNATURE_HEADER), &body)
}

fn respond<T: Serialize>(result: Result<T, ServerError>) -> Response {
    let (status, body) = adapter::answer(result);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
