//! Every value type survives a row's trip to JSON and back, as read from each database.

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use dbsync::{Error, Row, from_row, to_row};
use dbsync_tests::entities::every_type::{self, Level, Size};
use dbsync_tests::entities::{city, person};
use dbsync_tests::{Backend, on_every_backend, tracked_db};
use sea_orm::prelude::{Decimal, Uuid};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};
use std::str::FromStr;

fn sample(id: i64) -> every_type::Model {
    let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    let time = chrono::NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    every_type::Model {
        id,
        small: i16::MIN,
        int: i32::MAX,
        big: i64::MAX - 1,
        single: 0.1,
        double: std::f64::consts::PI,
        flag: true,
        text: "naïve \"quoted\" 🦀\n".into(),
        decimal: Decimal::from_str("12345.6700").unwrap(),
        date,
        time,
        date_time: date.and_time(time),
        date_time_utc: Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 1).unwrap(),
        date_time_tz: FixedOffset::east_opt(5 * 3600 + 1800)
            .unwrap()
            .with_ymd_and_hms(2020, 1, 2, 3, 4, 5)
            .unwrap(),
        uuid: Uuid::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321),
        json: serde_json::json!({"a": [1, 2.5, null, "x"], "b": {"c": true}}),
        bytes: vec![0, 1, 2, 254, 255],
        size: Size::Large,
        level: Level::High,
        maybe_text: None,
        maybe_int: Some(-7),
        maybe_date: None,
        maybe_json: Some(serde_json::Value::Null),
        not_stored: 0,
    }
}

/// Through JSON text, as rows travel on the wire.
fn through_the_wire(row: &Row) -> Row {
    serde_json::from_str(&serde_json::to_string(row).unwrap()).unwrap()
}

on_every_backend!(every_column_type_round_trips_through_row_json);

async fn every_column_type_round_trips_through_row_json(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let mut original = sample(1);
    if backend == Backend::MySql {
        // MySQL stores neither a JSON `null` apart from SQL NULL nor a zone offset.
        original.maybe_json = None;
        original.date_time_tz = original
            .date_time_tz
            .with_timezone(&FixedOffset::east_opt(0).unwrap());
    }
    original
        .clone()
        .into_active_model()
        .insert(&db)
        .await
        .unwrap();
    let stored = every_type::Entity::find_by_id(1)
        .one(&db)
        .await
        .unwrap()
        .unwrap();

    let row = through_the_wire(&to_row::<every_type::Entity>(&stored));
    let decoded = from_row::<every_type::Entity>(&row).unwrap();
    assert_eq!(decoded, stored);

    // A decoded row can be written to another database and reads back the same.
    every_type::Entity::delete_by_id(1).exec(&db).await.unwrap();
    decoded
        .clone()
        .into_active_model()
        .insert(&db)
        .await
        .unwrap();
    let again = every_type::Entity::find_by_id(1)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, stored);
}

on_every_backend!(rows_the_database_encodes_equal_the_model_encoding);

/// Tables of integer and text columns are read and written as JSON by SQLite and PostgreSQL
/// themselves (and through models on MySQL): the rows must be exactly those the models give,
/// whatever the text holds and however large the integers.
async fn rows_the_database_encodes_equal_the_model_encoding(backend: Backend, name: &str) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let texts = [
        "",
        "plain",
        "naïve \"quoted\" 🦀",
        "back\\slash / slash",
        "tab\tnew\nline\u{1}\u{1f}",
        "\u{7f}\u{2028}\u{fffd}",
    ];
    let people: Vec<person::Model> = (0..200)
        .map(|i| person::Model {
            id: [i32::MIN + 1, -1, 0][i % 3].saturating_add(i as i32) + 1_000_000 * (i as i32 % 7),
            name: format!("{}{i}", texts[i % texts.len()]),
            city_id: [1, 2, 3][i % 3],
        })
        .collect();
    let info = dbsync::Registry::global().table("person").unwrap();
    let rows: Vec<Row> = people.iter().map(to_row::<person::Entity>).collect();
    let refs: Vec<&Row> = rows.iter().collect();
    let txn = dbsync::begin_untracked(&db).await.unwrap();
    let cities: Vec<Row> = (1..=3)
        .map(|id| {
            to_row::<city::Entity>(&city::Model {
                id,
                name: format!("city {id}"),
            })
        })
        .collect();
    let city_info = dbsync::Registry::global().table("city").unwrap();
    city_info
        .ops()
        .insert_many(&txn, &cities.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    info.ops().insert_many(&txn, &refs).await.unwrap();
    let stored: Vec<Row> = person::Entity::find()
        .all(&*txn)
        .await
        .unwrap()
        .iter()
        .map(to_row::<person::Entity>)
        .collect();
    let by_key = |mut list: Vec<Row>| {
        list.sort_by_key(|row| row["id"].as_i64());
        list
    };
    assert_eq!(
        by_key(stored.clone()),
        by_key(rows.clone()),
        "written as given"
    );

    let ids: Vec<i64> = people.iter().map(|p| i64::from(p.id)).collect();
    let fetched = info.ops().fetch(&txn, &ids).await.unwrap();
    assert_eq!(by_key(fetched), by_key(stored.clone()), "fetched by key");
    // As text, with the parents the rows reference (MySQL builds no text).
    let mut some_ids: Vec<i64> = ids.iter().copied().step_by(2).collect();
    some_ids.push(i64::MAX);
    let as_text = info
        .ops()
        .fetch_text(&txn, &some_ids, &["city_id".to_owned()])
        .await
        .unwrap();
    if backend == Backend::MySql {
        assert!(as_text.is_none());
    } else {
        let as_text = as_text.unwrap();
        let text_rows: Vec<Row> = serde_json::from_str(&as_text.rows.json).unwrap();
        let wanted: Vec<Row> = stored
            .iter()
            .filter(|row| some_ids.contains(&row["id"].as_i64().unwrap()))
            .cloned()
            .collect();
        assert_eq!(as_text.rows.rows, 100);
        assert_eq!(by_key(text_rows), by_key(wanted), "fetched by key as text");
        let mut parents = as_text.parents.concat();
        parents.sort_unstable();
        assert_eq!(parents, [1, 2, 3], "each parent once");
    }
    let paged = info.ops().page(&txn, i64::MIN, 1_000).await.unwrap();
    assert_eq!(paged, by_key(stored.clone()), "paged in key order");
    // Keys with gaps between them: the rows asked for, and only those.
    let some: Vec<i64> = (1..=100).collect();
    let new: Vec<Row> = some
        .iter()
        .map(|&id| {
            to_row::<person::Entity>(&person::Model {
                id: id as i32,
                name: format!("n{id}"),
                city_id: 1,
            })
        })
        .collect();
    info.ops()
        .upsert_many(&txn, &new.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let odd: Vec<i64> = some.iter().copied().filter(|id| id % 2 == 1).collect();
    let fetched = by_key(info.ops().fetch(&txn, &odd).await.unwrap());
    assert_eq!(fetched.len(), 50);
    assert!(
        fetched
            .iter()
            .all(|row| row["id"].as_i64().unwrap() % 2 == 1)
    );
    // An upsert replaces the row with its key.
    let renamed = to_row::<person::Entity>(&person::Model {
        id: 3,
        name: "renamed".into(),
        city_id: 2,
    });
    info.ops().upsert_many(&txn, &[&renamed]).await.unwrap();
    assert_eq!(info.ops().fetch(&txn, &[3]).await.unwrap(), vec![renamed]);
    txn.rollback().await.unwrap();
}

on_every_backend!(a_snapshot_page_written_as_text_is_checked_and_takes_unique_values);

/// A repair page is written from its JSON text where the database can read it (SQLite):
/// rows of the wrong shape are refused with nothing written, and a local row holding a
/// unique value the page gives another row makes way for it.
async fn a_snapshot_page_written_as_text_is_checked_and_takes_unique_values(
    backend: Backend,
    name: &str,
) {
    let Some(db) = tracked_db(backend, name).await else {
        return;
    };
    let info = dbsync::Registry::global().table("city").unwrap();
    let txn = dbsync::begin_untracked(&db).await.unwrap();
    let local = to_row::<city::Entity>(&city::Model {
        id: 9,
        name: "Paris".into(),
    });
    info.ops().insert_many(&txn, &[&local]).await.unwrap();
    for bad in [
        r#"[{"id": 1}]"#,
        r#"[{"id": 1, "name": "X", "extra": 1}]"#,
        r#"[{"id": "1", "name": "X"}]"#,
        r#"[{"id": 1.5, "name": "X"}]"#,
        r#"[{"id": 4294967296, "name": "X"}]"#,
        r#"[{"id": 1, "name": 7}]"#,
        r#"[{"id": 1, "name": true}]"#,
        r#"[{"id": 1, "name": "X", "name": "Y"}]"#,
        r#"[{"id": 1, "name": "X"}, {"id": 2}]"#,
        r#"[[1, "X"]]"#,
    ] {
        let result = info
            .ops()
            .write_snapshot_text(&txn, bad, &info.unique)
            .await;
        if backend == Backend::Sqlite {
            assert!(
                matches!(result, Err(Error::RowCodec { .. })),
                "{bad}: {result:?}"
            );
        } else {
            assert_eq!(result.unwrap(), None, "only SQLite reads pages as text");
        }
    }
    let page = r#"[{"id": 1, "name": "Paris"}, {"id": 9, "name": "Lyon"}]"#;
    let written = info
        .ops()
        .write_snapshot_text(&txn, page, &info.unique)
        .await
        .unwrap();
    if let Some(written) = written {
        assert_eq!(written, 2);
        let mut cities = city::Entity::find().all(&*txn).await.unwrap();
        cities.sort_by_key(|c| c.id);
        assert_eq!(
            cities,
            [
                city::Model {
                    id: 1,
                    name: "Paris".into()
                },
                city::Model {
                    id: 9,
                    name: "Lyon".into()
                },
            ]
        );
        let gone = info
            .ops()
            .delete_absent_text(&txn, r#"[{"id": 9, "name": "Lyon"}]"#, 0, 5);
        assert!(gone.await.unwrap());
        let left: Vec<i32> = city::Entity::find()
            .all(&*txn)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(left, [9], "only keys in (0, 5] absent from the page go");
    }
    txn.rollback().await.unwrap();
}

#[test]
fn a_row_round_trips_without_a_database() {
    let model = sample(9);
    let row = through_the_wire(&to_row::<every_type::Entity>(&model));
    assert_eq!(from_row::<every_type::Entity>(&row).unwrap(), model);
    // SQL NULL and JSON null stay apart.
    assert_eq!(row["maybe_json"], serde_json::json!("null"));
    assert_eq!(row["maybe_text"], serde_json::Value::Null);
    assert_eq!(row["decimal"], serde_json::json!("12345.6700"));
    assert_eq!(row["bytes"], serde_json::json!("AAEC/v8="));
    assert_eq!(row["size"], serde_json::json!("large"));
    assert_eq!(row["level"], serde_json::json!(9));
    assert!(!row.contains_key("not_stored"));
}

#[test]
fn non_finite_floats_round_trip() {
    for x in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE,
    ] {
        let mut model = sample(1);
        model.double = x;
        model.single = x as f32;
        let back = from_row::<every_type::Entity>(&through_the_wire(
            &to_row::<every_type::Entity>(&model),
        ))
        .unwrap();
        assert_eq!(back.double.to_bits(), x.to_bits());
        assert_eq!(back.single.to_bits(), (x as f32).to_bits());
    }
}

#[test]
fn a_row_with_a_wrong_type_is_refused_with_the_column() {
    let mut row = to_row::<every_type::Entity>(&sample(1));
    row.insert("int".into(), serde_json::json!("not a number"));
    match from_row::<every_type::Entity>(&row) {
        Err(Error::RowCodec { table, column, .. }) => {
            assert_eq!(table, "every_type");
            assert_eq!(column, "int");
        }
        other => panic!("expected RowCodec, got {other:?}"),
    }
}

#[test]
fn a_row_with_an_out_of_range_integer_is_refused() {
    let mut row = to_row::<every_type::Entity>(&sample(1));
    row.insert("small".into(), serde_json::json!(70_000));
    assert!(
        matches!(from_row::<every_type::Entity>(&row), Err(Error::RowCodec { column, .. }) if column == "small")
    );
}

#[test]
fn a_row_with_an_unknown_or_missing_column_is_refused() {
    let mut row = to_row::<every_type::Entity>(&sample(1));
    row.insert("evil; DROP TABLE x".into(), serde_json::json!(1));
    assert!(
        matches!(from_row::<every_type::Entity>(&row), Err(Error::RowCodec { column, .. }) if column == "evil; DROP TABLE x")
    );
    let mut row = to_row::<every_type::Entity>(&sample(1));
    row.remove("text");
    assert!(
        matches!(from_row::<every_type::Entity>(&row), Err(Error::RowCodec { column, .. }) if column == "text")
    );
}

#[test]
fn a_null_in_a_non_null_column_is_refused() {
    let mut row = to_row::<every_type::Entity>(&sample(1));
    row.insert("text".into(), serde_json::Value::Null);
    assert!(
        matches!(from_row::<every_type::Entity>(&row), Err(Error::RowCodec { column, .. }) if column == "text")
    );
}
