//! A standalone dbsync server on axum, over SQLite, PostgreSQL or MariaDB by URL.
//!
//! ```sh
//! cargo run -p example-axum-server -- sqlite://server.db?mode=rwc 127.0.0.1:8080
//! cargo run -p example-axum-server -- postgres://postgres@127.0.0.1/test 127.0.0.1:8080
//! ```
//! Nodes then use `http://127.0.0.1:8080/sync`. Several of these processes can serve one
//! PostgreSQL database at once.

use dbsync_server::SyncServer;

#[tokio::main]
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
    let app = axum::Router::new().nest("/sync", dbsync_server::axum::router(server));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "dbsync server on http://{}/sync, data in {url}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
