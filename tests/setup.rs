//! `create_all` and `drop_all`: idempotent, recoverable after migrations, and refusing tables
//! that would break sync.

use dbsync::{Error, FkAction, Registry, Role};
use dbsync_tests::entities::{city, person, pet};
use dbsync_tests::{
    Backend, create_fixture_tables, fresh_db, log, on_every_backend, ops, tracked_db,
};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

on_every_backend!(
    create_all_is_idempotent,
    create_all_restores_capture_after_a_migration_rebuilt_a_table,
    create_all_refuses_a_table_that_can_reuse_keys,
    create_all_refuses_a_missing_table,
    drop_all_removes_capture_and_the_log,
    a_server_captures_pull_only_tables_too,
);

async fn insert_city(db: &impl ConnectionTrait, name: &str) -> i64 {
    let city = city::ActiveModel {
        name: Set(name.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    city.id.into()
}

async fn create_all_is_idempotent(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    dbsync::create_all(&db).await.unwrap();
    dbsync::create_all(&db).await.unwrap();
    let id = insert_city(&db, "Once").await;
    assert_eq!(log(&db).await, ops(&[("city", id, "i")]));
}

async fn create_all_restores_capture_after_a_migration_rebuilt_a_table(
    backend: Backend,
    name: &str,
) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    // A migration that rebuilds a table (SQLite's way to alter one) drops its triggers.
    db.execute_unprepared("DROP TABLE pet").await.unwrap();
    db.get_schema_builder()
        .register(pet::Entity)
        .apply(&db)
        .await
        .unwrap();
    let migrated_column = match backend {
        Backend::Postgres => "ALTER TABLE city ADD COLUMN note text",
        _ => "ALTER TABLE city ADD COLUMN note varchar(20)",
    };
    db.execute_unprepared(migrated_column).await.unwrap();
    dbsync::create_all(&db).await.unwrap();

    let city_id = insert_city(&db, "Lyon").await;
    let person = person::ActiveModel {
        name: Set("Ann".into()),
        city_id: Set(city_id as i32),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let pet = pet::ActiveModel {
        name: Set("Rex".into()),
        person_id: Set(person.id),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(
        log(&db).await,
        ops(&[
            ("city", city_id, "i"),
            ("person", person.id.into(), "i"),
            ("pet", pet.id.into(), "i"),
        ])
    );
}

async fn create_all_refuses_a_table_that_can_reuse_keys(backend: Backend, name: &str) {
    let Some(db) = fresh_db(backend, name).await else {
        return;
    };
    let ddl = match backend {
        Backend::Sqlite => "CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
        Backend::Postgres => "CREATE TABLE city (id integer PRIMARY KEY, name text UNIQUE)",
        Backend::MySql => "CREATE TABLE city (id int PRIMARY KEY, name varchar(64) UNIQUE)",
    };
    db.execute_unprepared(ddl).await.unwrap();
    let registry = Registry::new().register::<city::Entity>().unwrap();
    let err = dbsync::create_all_with(&db, &registry, Role::Client)
        .await
        .unwrap_err();
    match &err {
        Error::KeyReuse { table, fix, .. } => {
            assert_eq!(table, "city");
            assert!(!fix.is_empty());
        }
        other => panic!("expected KeyReuse, got {other:?}"),
    }
    assert!(err.to_string().contains("city"), "{err}");
    // Nothing was left behind: the application can fix the table and try again.
    let probe = db
        .execute_unprepared("SELECT COUNT(*) FROM dbsync_operations")
        .await;
    if backend != Backend::MySql {
        // MySQL commits DDL at once, so only the others can roll the log table back.
        assert!(probe.is_err(), "the log table was rolled back");
    }
}

async fn create_all_refuses_a_missing_table(backend: Backend, name: &str) {
    let Some(db) = fresh_db(backend, name).await else {
        return;
    };
    let err = dbsync::create_all(&db).await.unwrap_err();
    assert!(matches!(err, Error::MissingTable { .. }), "{err:?}");
}

async fn drop_all_removes_capture_and_the_log(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    insert_city(&db, "Before").await;
    dbsync::drop_all(&db).await.unwrap();
    insert_city(&db, "Untracked").await;
    assert!(
        db.execute_unprepared("SELECT COUNT(*) FROM dbsync_operations")
            .await
            .is_err()
    );
    dbsync::create_all(&db).await.unwrap();
    let id = insert_city(&db, "Tracked again").await;
    assert_eq!(log(&db).await, ops(&[("city", id, "i")]));
}

async fn a_server_captures_pull_only_tables_too(backend: Backend, name: &str) {
    use dbsync_tests::entities::tag;
    let Some(db) = fresh_db(backend, name).await else {
        return;
    };
    create_fixture_tables(&db).await;
    dbsync::create_all_with(&db, Registry::global(), Role::Server)
        .await
        .unwrap();
    let tag = tag::ActiveModel {
        label: Set("server".into()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(log(&db).await, ops(&[("tag", tag.id, "i")]));
}

#[test]
fn the_global_registry_holds_every_tracked_entity_parents_first() {
    let names: Vec<&str> = Registry::global()
        .tables()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let at = |table: &str| names.iter().position(|n| *n == table).unwrap();
    assert!(at("city") < at("person"), "{names:?}");
    assert!(at("person") < at("pet"), "{names:?}");
    assert!(at("city") < at("house"), "{names:?}");
    Registry::global().validate().unwrap();
}

#[test]
fn table_info_reflects_the_entity_metadata() {
    let registry = Registry::global();
    let city = registry.table("city").unwrap();
    assert_eq!(city.content_type_id, 760_939_060, "CRC32 of the table name");
    assert_eq!(city.primary_key, "id");
    assert!(city.auto_increment);
    assert_eq!(city.unique, [vec!["name".to_owned()]]);
    let person = registry.table("person").unwrap();
    assert_eq!(person.foreign_keys.len(), 1);
    let fk = &person.foreign_keys[0];
    assert_eq!(fk.columns, ["city_id"]);
    assert_eq!(fk.to_table, "city");
    assert_eq!(fk.to_columns, ["id"]);
    assert_eq!(fk.on_delete, Some(FkAction::Cascade));
    assert_eq!(
        registry.table("tag").unwrap().direction,
        dbsync::Direction::Pull
    );
    assert_eq!(
        registry.by_content_type(city.content_type_id).unwrap().name,
        "city"
    );
}

#[test]
fn registering_a_table_twice_is_refused() {
    let err = Registry::new()
        .register::<city::Entity>()
        .unwrap()
        .register::<city::Entity>()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateTable { ref table } if table == "city"));
}

#[test]
fn an_explicit_registry_orders_tables_by_foreign_key() {
    let registry = Registry::new()
        .register::<pet::Entity>()
        .unwrap()
        .register::<person::Entity>()
        .unwrap()
        .register::<city::Entity>()
        .unwrap();
    let names: Vec<&str> = registry.tables().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["city", "person", "pet"]);
}
