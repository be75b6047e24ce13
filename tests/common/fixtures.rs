//! Reading and writing the fixture tables the way the tests compare them.

use crate::entities::{city, house, person};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};

/// Every city as `(id, name)`, by key.
pub async fn cities(db: &DatabaseConnection) -> Vec<(i32, String)> {
    city::Entity::find()
        .order_by_asc(city::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect()
}

/// Every person as `(id, name, city_id)`, by key.
pub async fn people(db: &DatabaseConnection) -> Vec<(i32, String, i32)> {
    person::Entity::find()
        .order_by_asc(person::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.name, p.city_id))
        .collect()
}

/// Every house as `(id, address, city_id)`, by key.
pub async fn houses(db: &DatabaseConnection) -> Vec<(i32, String, Option<i32>)> {
    house::Entity::find()
        .order_by_asc(house::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.address, h.city_id))
        .collect()
}

/// Inserts a city through SeaORM, as an application would.
pub async fn add_city(db: &DatabaseConnection, name: &str) -> city::Model {
    city::ActiveModel {
        name: Set(name.into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

/// Renames city `id`, as an application would.
pub async fn rename_city(db: &DatabaseConnection, id: i32, name: &str) {
    city::ActiveModel {
        id: Set(id),
        name: Set(name.into()),
    }
    .update(db)
    .await
    .unwrap();
}

/// Inserts a person living in `city_id`.
pub async fn add_person(db: &DatabaseConnection, name: &str, city_id: i32) -> person::Model {
    person::ActiveModel {
        name: Set(name.into()),
        city_id: Set(city_id),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

/// Inserts a house in `city_id`.
pub async fn add_house(db: &DatabaseConnection, address: &str, city_id: i32) -> house::Model {
    house::ActiveModel {
        address: Set(address.into()),
        city_id: Set(Some(city_id)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}
