use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
#[sea_orm(table_name = "item")]
#[dbsync(direction = "push", crate = "::dbsync")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_name = "label_text", unique)]
    pub label: Option<String>,
    #[sea_orm(ignore)]
    pub scratch: u8,
}

// A user alias must not change what the generated code means. (SeaORM's own derive breaks
// on a `Result` alias, so only `Vec` is checked here.)
#[allow(dead_code)]
type Vec = ();

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
