//! dbsync's quickstart: an application on an embedded SQLite file whose writes are recorded
//! for synchronization, whatever code path makes them.
//!
//! Run it with `cargo run -p example-quickstart`.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, EntityTrait, Set};

mod city {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "city")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("dbsync-quickstart.db");
    let _ = std::fs::remove_file(&path);
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    // The application creates its own tables, then lets dbsync track them.
    db.get_schema_builder()
        .register(city::Entity)
        .apply(&db)
        .await?;
    dbsync::create_all(&db).await?;

    let paris = city::ActiveModel {
        name: Set("Paris".into()),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    city::Entity::insert_many(["Lyon", "Nice"].map(|name| city::ActiveModel {
        name: Set(name.into()),
        ..Default::default()
    }))
    .exec(&db)
    .await?;
    city::Entity::update_many()
        .col_expr(city::Column::Name, Expr::cust("upper(name)"))
        .exec(&db)
        .await?;
    db.execute_unprepared("DELETE FROM city WHERE name = 'NICE'")
        .await?;

    println!("operations log:");
    for op in dbsync::unsynced_operations(&db).await? {
        println!("  #{:<2} city {} {:?}", op.seq, op.row_id, op.command);
    }
    println!("to push (compressed):");
    for object in dbsync::unsynced_objects(&db).await? {
        println!("  {} {} {:?}", object.table, object.row_id, object.command);
    }
    let synced = dbsync::is_synced::<city::Entity, _>(&db, paris.id.into()).await?;
    println!("Paris synced: {synced}");
    Ok(())
}
