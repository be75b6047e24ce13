//! Every write path to a tracked table lands in the operations log, in the writer's
//! transaction, on SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! Run the server backends with
//! `DBSYNC_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 DBSYNC_TEST_MYSQL=mysql://root@127.0.0.1:3306 cargo test -p dbsync-tests`.

use dbsync_tests::entities::{city, house, person, pet, tag};
use dbsync_tests::{Backend, backend_of, log, on_every_backend, ops, tracked_db};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

async fn add_city(db: &impl ConnectionTrait, name: &str) -> city::Model {
    city::ActiveModel {
        name: Set(name.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert city")
}

async fn add_person(db: &impl ConnectionTrait, name: &str, city_id: i32) -> person::Model {
    person::ActiveModel {
        name: Set(name.to_owned()),
        city_id: Set(city_id),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert person")
}

async fn clear_log(db: &DatabaseConnection) {
    db.execute_unprepared("DELETE FROM dbsync_operations")
        .await
        .expect("clear log");
}

on_every_backend!(
    active_model_insert_update_save_and_delete_are_logged,
    entity_insert_and_insert_many_log_one_insert_per_row,
    update_many_logs_only_rows_whose_values_changed,
    delete_many_and_delete_by_id_log_deletes,
    raw_sql_writes_are_logged,
    foreign_key_cascades_are_logged,
    changing_a_primary_key_logs_a_delete_and_an_insert,
    a_rolled_back_transaction_leaves_no_operation,
    concurrent_transactions_each_log_their_own_writes,
    untracked_transaction_is_not_logged_and_does_not_silence_others,
    a_rolled_back_untracked_transaction_does_not_silence_later_writes,
    an_untracked_savepoint_does_not_silence_its_outer_transaction,
    pull_only_tables_are_not_logged_on_a_client,
    unsynced_objects_and_is_synced_report_net_changes,
);

async fn active_model_insert_update_save_and_delete_are_logged(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let paris = add_city(&db, "Paris").await;
    let mut active: city::ActiveModel = paris.clone().into();
    active.name = Set("Paris, France".into());
    let updated = active.update(&db).await.unwrap();
    let mut active: city::ActiveModel = updated.into();
    active.name = Set("Paname".into());
    let saved = active.save(&db).await.unwrap();
    // An update that changes nothing is not a change to sync.
    city::ActiveModel {
        id: Set(paris.id),
        name: Set("Paname".into()),
    }
    .update(&db)
    .await
    .unwrap();
    saved.delete(&db).await.unwrap();
    let id = i64::from(paris.id);
    assert_eq!(
        log(&db).await,
        ops(&[
            ("city", id, "i"),
            ("city", id, "u"),
            ("city", id, "u"),
            ("city", id, "d")
        ])
    );
}

async fn entity_insert_and_insert_many_log_one_insert_per_row(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let one = city::Entity::insert(city::ActiveModel {
        name: Set("Lyon".into()),
        ..Default::default()
    })
    .exec(&db)
    .await
    .unwrap()
    .last_insert_id;
    city::Entity::insert_many(["Nice", "Lille", "Metz"].map(|n| city::ActiveModel {
        name: Set(n.into()),
        ..Default::default()
    }))
    .exec(&db)
    .await
    .unwrap();
    let ids: Vec<i64> = city::Entity::find()
        .order_by_asc(city::Column::Id)
        .all(&db)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.into())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], i64::from(one));
    let expected: Vec<_> = ids.iter().map(|&id| ("city", id, "i")).collect();
    assert_eq!(log(&db).await, ops(&expected));
}

async fn update_many_logs_only_rows_whose_values_changed(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let paris = add_city(&db, "Paris").await;
    let a = add_person(&db, "Ann", paris.id).await;
    let b = add_person(&db, "Bob", paris.id).await;
    let c = add_person(&db, "Cid", paris.id).await;
    clear_log(&db).await;
    person::Entity::update_many()
        .col_expr(person::Column::Name, Expr::value("Ann"))
        .filter(person::Column::Id.is_in([a.id, b.id]))
        .exec(&db)
        .await
        .unwrap();
    person::Entity::update_many()
        .col_expr(person::Column::Name, Expr::cust("UPPER(name)"))
        .exec(&db)
        .await
        .unwrap();
    // Ann was already "Ann" in the first statement; every name changed case in the second
    // (which visits rows in whatever order the database stores them).
    let logged = log(&db).await;
    assert_eq!(logged[..1], ops(&[("person", b.id.into(), "u")]));
    let mut second = logged[1..].to_vec();
    second.sort();
    assert_eq!(
        second,
        ops(&[
            ("person", a.id.into(), "u"),
            ("person", b.id.into(), "u"),
            ("person", c.id.into(), "u"),
        ])
    );
}

async fn delete_many_and_delete_by_id_log_deletes(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let cities = [
        add_city(&db, "A").await,
        add_city(&db, "B").await,
        add_city(&db, "C").await,
    ];
    clear_log(&db).await;
    city::Entity::delete_by_id(cities[1].id)
        .exec(&db)
        .await
        .unwrap();
    city::Entity::delete_many()
        .filter(city::Column::Name.is_in(["A", "C"]))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(
        log(&db).await,
        ops(&[
            ("city", cities[1].id.into(), "d"),
            ("city", cities[0].id.into(), "d"),
            ("city", cities[2].id.into(), "d"),
        ])
    );
}

async fn raw_sql_writes_are_logged(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    db.execute_unprepared("INSERT INTO city (name) VALUES ('Raw')")
        .await
        .unwrap();
    let raw = city::Entity::find().one(&db).await.unwrap().unwrap();
    db.execute_unprepared("UPDATE city SET name = 'Cooked'")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM city").await.unwrap();
    let id = i64::from(raw.id);
    assert_eq!(
        log(&db).await,
        ops(&[("city", id, "i"), ("city", id, "u"), ("city", id, "d")])
    );
}

async fn foreign_key_cascades_are_logged(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let paris = add_city(&db, "Paris").await;
    let ann = add_person(&db, "Ann", paris.id).await;
    let rex = pet::ActiveModel {
        name: Set("Rex".into()),
        person_id: Set(ann.id),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let home = house::ActiveModel {
        address: Set("1 rue".into()),
        city_id: Set(Some(paris.id)),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    clear_log(&db).await;
    city::Entity::delete_by_id(paris.id)
        .exec(&db)
        .await
        .unwrap();

    assert!(pet::Entity::find().all(&db).await.unwrap().is_empty());
    let home_now = house::Entity::find_by_id(home.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(home_now.city_id, None);
    // Each database runs cascades in its own order (PostgreSQL parent first, the others
    // children first); what matters is that every affected row is logged once.
    let mut logged = log(&db).await;
    logged.sort();
    let mut expected = ops(&[
        ("pet", rex.id.into(), "d"),
        ("person", ann.id.into(), "d"),
        ("house", home.id.into(), "u"),
        ("city", paris.id.into(), "d"),
    ]);
    expected.sort();
    assert_eq!(logged, expected);
}

async fn changing_a_primary_key_logs_a_delete_and_an_insert(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let lyon = add_city(&db, "Lyon").await;
    clear_log(&db).await;
    db.execute_unprepared(&format!("UPDATE city SET id = 1000 WHERE id = {}", lyon.id))
        .await
        .unwrap();
    assert_eq!(
        log(&db).await,
        ops(&[("city", lyon.id.into(), "d"), ("city", 1000, "i")])
    );
}

async fn a_rolled_back_transaction_leaves_no_operation(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let txn = db.begin().await.unwrap();
    let lost = add_city(&txn, "Ghost").await;
    add_person(&txn, "Nobody", lost.id).await;
    txn.rollback().await.unwrap();
    assert_eq!(log(&db).await, []);
    assert!(city::Entity::find().all(&db).await.unwrap().is_empty());
}

async fn concurrent_transactions_each_log_their_own_writes(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    if backend == Backend::Sqlite {
        // SQLite has one writer at a time: the second transaction waits for the first.
        let (a, b) = tokio::join!(
            async {
                let txn = db.begin().await.unwrap();
                let c = add_city(&txn, "A").await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                txn.commit().await.unwrap();
                c
            },
            async {
                let txn = db.begin().await.unwrap();
                let c = add_city(&txn, "B").await;
                txn.commit().await.unwrap();
                c
            }
        );
        let mut logged = log(&db).await;
        logged.sort();
        let mut expected = ops(&[("city", a.id.into(), "i"), ("city", b.id.into(), "i")]);
        expected.sort();
        assert_eq!(logged, expected);
        return;
    }
    // Interleaved on two connections: A writes, B writes and commits, a third transaction
    // writes and rolls back, then A writes again and commits.
    let a = db.begin().await.unwrap();
    let b = db.begin().await.unwrap();
    let c = db.begin().await.unwrap();
    let a1 = add_city(&a, "A1").await;
    let b1 = add_city(&b, "B1").await;
    add_city(&c, "C1").await;
    b.commit().await.unwrap();
    c.rollback().await.unwrap();
    let a2 = add_city(&a, "A2").await;
    assert_eq!(log(&db).await, ops(&[("city", b1.id.into(), "i")]));
    a.commit().await.unwrap();
    let mut logged = log(&db).await;
    logged.sort();
    let mut expected = ops(&[
        ("city", a1.id.into(), "i"),
        ("city", b1.id.into(), "i"),
        ("city", a2.id.into(), "i"),
    ]);
    expected.sort();
    assert_eq!(logged, expected);
}

async fn untracked_transaction_is_not_logged_and_does_not_silence_others(
    backend: Backend,
    name: &str,
) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let quiet = dbsync::begin_untracked(&db).await.unwrap();
    let from_server = add_city(&*quiet, "FromServer").await;
    let local = if backend == Backend::Sqlite {
        // One writer: the local write runs after the untracked transaction commits.
        quiet.commit().await.unwrap();
        add_city(&db, "Local").await
    } else {
        // Meanwhile, on another connection, the application keeps writing and is logged.
        let local = add_city(&db, "Local").await;
        quiet.commit().await.unwrap();
        local
    };
    assert_eq!(log(&db).await, ops(&[("city", local.id.into(), "i")]));
    assert!(
        city::Entity::find_by_id(from_server.id)
            .one(&db)
            .await
            .unwrap()
            .is_some()
    );
    // The suppression ended with the transaction.
    let after = add_city(&db, "After").await;
    assert_eq!(
        log(&db).await,
        ops(&[
            ("city", local.id.into(), "i"),
            ("city", after.id.into(), "i")
        ])
    );
}

async fn a_rolled_back_untracked_transaction_does_not_silence_later_writes(
    backend: Backend,
    name: &str,
) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    for _ in 0..3 {
        let quiet = dbsync::begin_untracked(&db).await.unwrap();
        add_city(&*quiet, &format!("gone{}", rand_suffix())).await;
        quiet.rollback().await.unwrap();
    }
    // With a small pool, these writes reuse the connections the untracked ones ran on.
    let mut expected = Vec::new();
    for i in 0..10 {
        let c = add_city(&db, &format!("kept{i}")).await;
        expected.push(("city", i64::from(c.id), "i"));
    }
    assert_eq!(log(&db).await, ops(&expected));
    assert_eq!(backend_of(&db), backend);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn pull_only_tables_are_not_logged_on_a_client(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    tag::ActiveModel {
        label: Set("local".into()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(log(&db).await, []);
}

async fn unsynced_objects_and_is_synced_report_net_changes(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let kept = add_city(&db, "Kept").await;
    let gone = add_city(&db, "Gone").await;
    let mut active: city::ActiveModel = kept.clone().into();
    active.name = Set("Kept!".into());
    active.update(&db).await.unwrap();
    city::Entity::delete_by_id(gone.id).exec(&db).await.unwrap();

    let objects = dbsync::unsynced_objects(&db).await.unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].table, "city");
    assert_eq!(objects[0].row_id, i64::from(kept.id));
    assert_eq!(objects[0].command, dbsync::Command::Insert);
    assert!(
        !dbsync::is_synced::<city::Entity, _>(&db, kept.id.into())
            .await
            .unwrap()
    );
    assert!(
        dbsync::is_synced::<city::Entity, _>(&db, gone.id.into())
            .await
            .unwrap()
    );
    assert!(
        dbsync::is_synced::<person::Entity, _>(&db, kept.id.into())
            .await
            .unwrap()
    );
}

async fn an_untracked_savepoint_does_not_silence_its_outer_transaction(
    backend: Backend,
    name: &str,
) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let outer = db.begin().await.unwrap();
    let inner = dbsync::begin_untracked(&outer).await.unwrap();
    add_city(&*inner, "quiet").await;
    inner.commit().await.unwrap();
    let loud = add_city(&outer, "loud").await;
    outer.commit().await.unwrap();
    assert_eq!(log(&db).await, ops(&[("city", loud.id.into(), "i")]));
}
