//! The entities the examples share: the same model on the server and on every node.

/// A city: its name is unique.
pub mod city {
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

/// A person living in a city.
pub mod person {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "person")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub city_id: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::city::Entity",
            from = "Column::CityId",
            to = "super::city::Column::Id",
            on_delete = "Cascade"
        )]
        City,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the example tables if they are missing, as an application's migrations would.
pub async fn create_tables(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, Schema};
    let schema = Schema::new(db.get_database_backend());
    db.execute(
        schema
            .create_table_from_entity(city::Entity)
            .if_not_exists(),
    )
    .await?;
    db.execute(
        schema
            .create_table_from_entity(person::Entity)
            .if_not_exists(),
    )
    .await?;
    Ok(())
}
