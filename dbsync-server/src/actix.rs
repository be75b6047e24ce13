//! The handlers as actix-web services: `POST /register`, `/push`, `/pull`, `/repair` and
//! `/query`, to mount in any scope.

use crate::{NODE_HEADER, SIGNATURE_HEADER, ServerError, SignedRequest, SyncServer};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

/// Registers the dbsync routes, for `App::new().service(web::scope("/sync").configure(configure(server)))`.
pub fn configure(server: SyncServer) -> impl FnOnce(&mut ServiceConfig) {
    move |config| {
        // One byte over the limit still reaches the handler, which answers with a typed error.
        let limit = server.config().max_body_bytes.saturating_add(1);
        config
            .app_data(Data::new(server))
            .app_data(web::PayloadConfig::new(limit))
            .route("/register", web::post().to(register))
            .route("/push", web::post().to(push))
            .route("/pull", web::post().to(pull))
            .route("/repair", web::post().to(repair))
            .route("/query", web::post().to(query));
    }
}

async fn register(server: Data<SyncServer>, body: Bytes) -> HttpResponse {
    respond(server.handle_register(&body).await)
}

async fn push(server: Data<SyncServer>, request: HttpRequest, body: Bytes) -> HttpResponse {
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_push(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn pull(server: Data<SyncServer>, request: HttpRequest, body: Bytes) -> HttpResponse {
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_pull(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn repair(server: Data<SyncServer>, request: HttpRequest, body: Bytes) -> HttpResponse {
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_repair(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

async fn query(server: Data<SyncServer>, request: HttpRequest, body: Bytes) -> HttpResponse {
    match signed(&request, body) {
        Ok(signed) => respond(server.handle_query(&signed).await),
        Err(err) => respond::<()>(Err(err)),
    }
}

fn signed(request: &HttpRequest, body: Bytes) -> Result<SignedRequest, ServerError> {
    let text = |name: &str| {
        request
            .headers()
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

fn respond<T: Serialize>(result: Result<T, ServerError>) -> HttpResponse {
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
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.unwrap_or_default())
}
