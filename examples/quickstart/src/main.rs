//! dbsync's quickstart: a server and two nodes in one process, each on its own embedded SQLite
//! file, over real HTTP on 127.0.0.1. The nodes edit while "offline", then sync.
//!
//! Run it with `cargo run -p example-quickstart`. Nothing needs to be installed.

use dbsync::Client;
use dbsync_server::SyncServer;
use example_entities::{city, create_tables, person};
use sea_orm::{ActiveModelTrait, Database, DatabaseConnection, EntityTrait, QueryOrder, Set};
use std::error::Error;

/// A fresh SQLite file in the temp folder, with the application's tables.
async fn open(name: &str) -> Result<DatabaseConnection, Box<dyn Error>> {
    let path = std::env::temp_dir().join(format!("dbsync-quickstart-{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    create_tables(&db).await?;
    Ok(db)
}

async fn node(name: &str, url: &str) -> Result<Client, Box<dyn Error>> {
    let db = open(name).await?;
    dbsync::create_all(&db).await?;
    let client = Client::new(db, url);
    if !client.is_registered().await? {
        let id = client.register().await?;
        println!("{name}: registered as node {id}");
    }
    Ok(client)
}

async fn add_city(db: &DatabaseConnection, name: &str) -> Result<city::Model, Box<dyn Error>> {
    let model = city::ActiveModel {
        name: Set(name.into()),
        ..Default::default()
    };
    Ok(model.insert(db).await?)
}

async fn add_person(
    db: &DatabaseConnection,
    name: &str,
    city: &city::Model,
) -> Result<(), Box<dyn Error>> {
    let model = person::ActiveModel {
        name: Set(name.into()),
        city_id: Set(city.id),
        ..Default::default()
    };
    model.insert(db).await?;
    Ok(())
}

async fn show(label: &str, db: &DatabaseConnection) -> Result<(), Box<dyn Error>> {
    let cities = city::Entity::find()
        .order_by_asc(city::Column::Id)
        .all(db)
        .await?;
    let people = person::Entity::find()
        .order_by_asc(person::Column::Id)
        .all(db)
        .await?;
    let cities: Vec<String> = cities
        .iter()
        .map(|c| format!("{}:{}", c.id, c.name))
        .collect();
    let people: Vec<String> = people
        .iter()
        .map(|p| format!("{}@{}", p.name, p.city_id))
        .collect();
    println!(
        "  {label:<7} cities [{}]  people [{}]",
        cities.join(", "),
        people.join(", ")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The server: the application's own axum app, with dbsync mounted under /sync.
    let server_db = open("server").await?;
    let server = SyncServer::new(server_db.clone());
    server.setup().await?;
    let app = axum::Router::new().nest("/sync", dbsync_server::axum::router(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/sync", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("server: listening on {url}");

    let alice = node("alice", &url).await?;
    let bob = node("bob", &url).await?;

    println!("\n1. Both edit offline. Their first city gets the same key on both laptops.");
    let paris = add_city(alice.db(), "Paris").await?;
    add_person(alice.db(), "Ann", &paris).await?;
    let oslo = add_city(bob.db(), "Oslo").await?;
    add_person(bob.db(), "Bo", &oslo).await?;
    show("alice", alice.db()).await?;
    show("bob", bob.db()).await?;

    println!(
        "\n2. Alice syncs first, then Bob: Alice's version touched nothing of his, so the server takes his push as it is, storing his Oslo under a free key; Bob moves it too, then pulls Paris."
    );
    let report = alice.sync().await?;
    println!(
        "  alice pushed {} operations",
        report.push.map_or(0, |p| p.operations)
    );
    let report = bob.sync().await?;
    let moved = report
        .push
        .iter()
        .flat_map(|push| &push.moved)
        .chain(report.pulls.iter().flat_map(|pull| &pull.moved));
    for (table, old, new) in moved {
        println!("  bob moved {table} {old} -> {new} (and the rows pointing at it)");
    }
    alice.sync().await?;
    show("server", &server_db).await?;
    show("alice", alice.db()).await?;
    show("bob", bob.db()).await?;

    println!("\n3. Bob renames Oslo while Alice deletes Paris (and Ann, by cascade).");
    let mut renamed: city::ActiveModel = city::Entity::find_by_id(oslo.id + 1)
        .one(bob.db())
        .await?
        .ok_or("Oslo moved to the next key")?
        .into();
    renamed.name = Set("Oslo, Norway".into());
    renamed.update(bob.db()).await?;
    city::Entity::delete_by_id(paris.id)
        .exec(alice.db())
        .await?;
    bob.sync().await?;
    alice.sync().await?;
    bob.sync().await?;
    show("server", &server_db).await?;
    show("alice", alice.db()).await?;
    show("bob", bob.db()).await?;

    println!("\n4. A remote query, without syncing: cities named \"Oslo, Norway\" on the server.");
    let found = alice
        .query::<city::Entity>([(city::Column::Name, "Oslo, Norway".into())])
        .await?;
    println!("  {found:?}");
    Ok(())
}
