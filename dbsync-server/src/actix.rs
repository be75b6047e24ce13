//! The handlers as actix-web services: `POST /register`, `/push`, `/pull`, `/repair` and
//! `/query`, to mount in any scope.

use crate::{NODE_HEADER, SIGNATURE_HEADER, ServerError, SignedRequest, SyncServer, adapter};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

/// Registers the dbsync routes, for `App::new().service(web::scope("/sync").configure(configure(server)))`.
pub fn configure(server: SyncServer) -> impl FnOnce(&mut ServiceConfig) {
    move |config| {
        // Bodies are read by `body_bytes`, which answers an oversized one with a typed error.
        config
            .app_data(Data::new(server))
            .route("/register", web::post().to(register))
            .route("/push", web::post().to(push))
            .route("/pull", web::post().to(pull))
            .route("/repair", web::post().to(repair))
            .route("/query", web::post().to(query));
    }
}

async fn register(server: Data<SyncServer>, body: web::Payload) -> HttpResponse {
    match body_bytes(&server, body).await {
        Ok(body) => respond(server.handle_register(&body).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

/// The whole body, or `TooLarge` as soon as it passes the server's limit.
async fn body_bytes(server: &SyncServer, mut body: web::Payload) -> Result<Bytes, ServerError> {
    use futures_util::StreamExt as _;
    let limit = server.config().max_body_bytes;
    let mut out = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|err| ServerError::Malformed(format!("unreadable body: {err}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ServerError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

async fn push(server: Data<SyncServer>, request: HttpRequest, body: web::Payload) -> HttpResponse {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_push(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn pull(server: Data<SyncServer>, request: HttpRequest, body: web::Payload) -> HttpResponse {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_pull(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn repair(
    server: Data<SyncServer>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_repair(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn query(server: Data<SyncServer>, request: HttpRequest, body: web::Payload) -> HttpResponse {
    let body = match body_bytes(&server, body).await {
        Ok(body) => body,
        Err(err) => return respond::<()>(Err(err)),
    };
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_query(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

fn signed(request: &HttpRequest, body: Bytes) -> Result<SignedRequest, ServerError> {
    let text = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    adapter::signed(text(NODE_HEADER), text(SIGNATURE_HEADER), &body)
}

fn respond<T: Serialize>(result: Result<T, ServerError>) -> HttpResponse {
    let (status, body) = adapter::answer(result);
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body)
}
