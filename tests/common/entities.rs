//! Fixture entities: a small graph with foreign keys (city <- person <- pet, city <- house),
//! a pull-only table, and a table with one column of every value type dbsync encodes.

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

pub mod pet {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "pet")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub person_id: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::person::Entity",
            from = "Column::PersonId",
            to = "super::person::Column::Id",
            on_delete = "Cascade"
        )]
        Person,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod house {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "house")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub address: String,
        pub city_id: Option<i32>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::city::Entity",
            from = "Column::CityId",
            to = "super::city::Column::Id",
            on_delete = "SetNull"
        )]
        City,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Pull-only: the server's changes come down, local writes are not recorded.
pub mod tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "tag")]
    #[dbsync(direction = "pull")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub label: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Push-only: local writes go up, other nodes' rows never come down.
pub mod note {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "note")]
    #[dbsync(direction = "push")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub text: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One column of every value type dbsync encodes.
pub mod every_type {
    use sea_orm::entity::prelude::*;

    #[derive(Debug, Clone, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
    pub enum Size {
        #[sea_orm(string_value = "small")]
        Small,
        #[sea_orm(string_value = "large")]
        Large,
    }

    #[derive(Debug, Clone, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "i32", db_type = "Integer")]
    pub enum Level {
        #[sea_orm(num_value = 1)]
        Low,
        #[sea_orm(num_value = 9)]
        High,
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    #[sea_orm(table_name = "every_type")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub small: i16,
        pub int: i32,
        pub big: i64,
        pub single: f32,
        pub double: f64,
        pub flag: bool,
        pub text: String,
        pub decimal: Decimal,
        pub date: Date,
        pub time: Time,
        pub date_time: DateTime,
        pub date_time_utc: DateTimeUtc,
        pub date_time_tz: DateTimeWithTimeZone,
        pub uuid: Uuid,
        pub json: Json,
        pub bytes: Vec<u8>,
        pub size: Size,
        pub level: Level,
        pub maybe_text: Option<String>,
        pub maybe_int: Option<i32>,
        pub maybe_date: Option<Date>,
        pub maybe_json: Option<Json>,
        #[sea_orm(ignore)]
        pub not_stored: u8,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
