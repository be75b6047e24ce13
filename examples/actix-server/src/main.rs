//! A standalone dbsync server on actix-web, over SQLite, PostgreSQL or MariaDB by URL.
//!
//! ```sh
//! cargo run -p example-actix-server -- sqlite://server.db?mode=rwc 127.0.0.1:8080
//! ```
//! Nodes then use `http://127.0.0.1:8080/sync`.

use actix_web::{App, HttpServer, web};
use dbsync_server::SyncServer;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite://dbsync-server.db?mode=rwc".into());
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let db = sea_orm::Database::connect(&url).await?;
    example_entities::create_tables(&db).await?;
    let server = SyncServer::new(db);
    server.setup().await?;
    println!("dbsync server on http://{address}/sync, data in {url}");
    HttpServer::new(move || {
        App::new()
            .service(web::scope("/sync").configure(dbsync_server::actix::configure(server.clone())))
    })
    .bind(&address)?
    .run()
    .await?;
    Ok(())
}
