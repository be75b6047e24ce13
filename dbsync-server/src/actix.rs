//! The handlers as actix-web services: `POST /register`, `/push`, `/pull`, `/repair` and
//! `/query`, to mount in any scope.

use crate::adapter::{self, Headers};
use crate::{NODE_HEADER, Procedure, SIGNATURE_HEADER, ServerError, SyncServer};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, Route};

/// Registers the dbsync routes, for `App::new().service(web::scope("/sync").configure(configure(server)))`.
pub fn configure(server: SyncServer) -> impl FnOnce(&mut ServiceConfig) {
    move |config| {
        // Bodies are read by `body_bytes`, which answers an oversized one with a typed error.
        config
            .app_data(Data::new(server))
            .route("/register", route(Procedure::Register))
            .route("/push", route(Procedure::Push))
            .route("/pull", route(Procedure::Pull))
            .route("/repair", route(Procedure::Repair))
            .route("/query", route(Procedure::Query));
    }
}

fn route(procedure: Procedure) -> Route {
    web::post().to(
        move |server: Data<SyncServer>, request: HttpRequest, body: web::Payload| async move {
            handle(&server, procedure, &request, body).await
        },
    )
}

async fn handle(
    server: &SyncServer,
    procedure: Procedure,
    request: &HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let body = body_bytes(server, body).await;
    let text = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let headers = Headers {
        node: text(NODE_HEADER),
        signature: text(SIGNATURE_HEADER),
        content_encoding: text(header::CONTENT_ENCODING.as_str()),
        accept_encoding: text(header::ACCEPT_ENCODING.as_str()),
    };
    let answer = adapter::serve(server, procedure, &headers, body).await;
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    response.content_type("application/json");
    if let Some(encoding) = answer.encoding {
        response.insert_header((header::CONTENT_ENCODING, encoding));
    }
    response.body(answer.body)
}

/// The whole body, or `TooLarge` as soon as it passes the server's limit.
async fn body_bytes(server: &SyncServer, mut body: web::Payload) -> Result<Vec<u8>, ServerError> {
    use futures_util::StreamExt as _;
    let limit = server.config().max_body_bytes;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|err| ServerError::Malformed(format!("unreadable body: {err}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ServerError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
