//! Property: whatever bytes arrive, every handler answers with a typed error or a valid
//! answer, never panics, and a refused request writes nothing.
//!
//! The handlers are called directly (no HTTP), with bodies that are random bytes, random JSON,
//! and valid requests with random mutations, correctly signed so that they reach the parsing
//! and applying code. CI runs a fixed budget; `DBSYNC_FUZZ_CASES=5000` runs longer.

use dbsync::Command;
use dbsync::messages::{
    PROTOCOL_VERSION, PullRequest, PushRequest, QueryRequest, RepairRequest, RequestMeta,
    SignedRequest, WireOperation, nonce, now_millis, sign,
};
use dbsync_server::SyncServer;
use dbsync_tests::Backend;
use dbsync_tests::harness::server_db;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

fn meta(node_id: i64) -> RequestMeta {
    RequestMeta {
        protocol: PROTOCOL_VERSION,
        node_id,
        timestamp: now_millis(),
        nonce: nonce(),
        extra_data: Value::Null,
    }
}

/// JSON values of every shape, for rows, filters and whole bodies.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z\"'; \\-\\\\]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Clone, Debug)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
    Push {
        table: String,
        row_id: i64,
        command: u8,
        row: Value,
    },
    Query {
        table: String,
        filters: Value,
    },
    Pull {
        base: i64,
        target: Option<i64>,
        page: Option<u32>,
    },
    Repair {
        table: String,
        after: i64,
    },
}

fn body() -> impl Strategy<Value = Body> {
    let table = prop_oneof![
        Just("city".to_owned()),
        Just("person".to_owned()),
        Just("tag".to_owned()),
        "[a-z_;\"]{0,10}"
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
        any_json().prop_map(Body::Json),
        (table.clone(), any::<i64>(), 0u8..3, any_json()).prop_map(
            |(table, row_id, command, row)| Body::Push {
                table,
                row_id,
                command,
                row
            }
        ),
        (table.clone(), any_json()).prop_map(|(table, filters)| Body::Query { table, filters }),
        (any::<i64>(), any::<Option<i64>>(), any::<Option<u32>>())
            .prop_map(|(base, target, page)| Body::Pull { base, target, page }),
        (table, any::<i64>()).prop_map(|(table, after)| Body::Repair { table, after }),
    ]
}

fn encode(body: &Body, node_id: i64) -> (&'static str, Vec<u8>) {
    match body {
        Body::Bytes(bytes) => ("push", bytes.clone()),
        Body::Json(value) => ("pull", serde_json::to_vec(value).unwrap()),
        Body::Push {
            table,
            row_id,
            command,
            row,
        } => {
            let command = [Command::Insert, Command::Update, Command::Delete][*command as usize];
            let mut row = row.as_object().cloned().unwrap_or_default();
            row.insert("id".into(), json!(row_id));
            let push: PushRequest = PushRequest {
                meta: meta(node_id),
                push_id: nonce(),
                base_version: 0,
                operations: vec![WireOperation {
                    table: table.clone(),
                    row_id: *row_id,
                    command,
                }],
                rows: [(table.clone(), vec![row])].into(),
            };
            ("push", serde_json::to_vec(&push).unwrap())
        }
        Body::Query { table, filters } => {
            let query = QueryRequest {
                meta: meta(node_id),
                table: table.clone(),
                filters: filters.as_object().cloned().unwrap_or_default(),
            };
            ("query", serde_json::to_vec(&query).unwrap())
        }
        Body::Pull { base, target, page } => {
            let pull = PullRequest {
                meta: meta(node_id),
                base_version: *base,
                target_version: *target,
                after: None,
                page_size: *page,
            };
            ("pull", serde_json::to_vec(&pull).unwrap())
        }
        Body::Repair { table, after } => {
            let repair = RepairRequest {
                meta: meta(node_id),
                snapshot_version: None,
                after: Some(dbsync::messages::RepairCursor {
                    table: table.clone(),
                    after_id: *after,
                }),
                page_size: Some(10),
            };
            ("repair", serde_json::to_vec(&repair).unwrap())
        }
    }
}

async fn count(server: &SyncServer, table: &str) -> i64 {
    let row = server
        .db()
        .query_one_raw(Statement::from_string(
            server.db().get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

#[test]
fn every_handler_survives_arbitrary_input_and_a_refusal_writes_nothing() {
    let cases: u32 = std::env::var("DBSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, node_id, secret) = runtime.block_on(async {
        let db = server_db(Backend::Sqlite, "bad_input").await.unwrap();
        let server = SyncServer::new(db);
        server.setup().await.unwrap();
        let body = serde_json::to_vec(&json!({"protocol": PROTOCOL_VERSION})).unwrap();
        let node = server.handle_register(&body).await.unwrap();
        (server, node.node_id, node.secret)
    });
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let result = runner.run(&body(), |body| {
        runtime.block_on(async {
            let (procedure, bytes) = encode(&body, node_id);
            let request = SignedRequest {
                node_id,
                signature: sign(&secret, procedure, &bytes),
                body: bytes.clone(),
            };
            let before = (
                count(&server, "city").await,
                count(&server, "person").await,
                count(&server, "dbsync_versions").await,
            );
            let refused = match procedure {
                "push" => server.handle_push(&request).await.err(),
                "pull" => server.handle_pull(&request).await.err(),
                "query" => server.handle_query(&request).await.err(),
                _ => server.handle_repair(&request).await.err(),
            };
            let register = server.handle_register(&bytes).await;
            prop_assert!(register.is_err() || serde_json::from_slice::<Value>(&bytes).is_ok());
            if let Some(err) = refused {
                prop_assert!(
                    err.status() < 500,
                    "{procedure}: internal error for bad input: {err}"
                );
                let after = (
                    count(&server, "city").await,
                    count(&server, "person").await,
                    count(&server, "dbsync_versions").await,
                );
                prop_assert_eq!(before, after, "a refused request wrote something");
            }
            Ok(())
        })
    });
    println!("bad input: {cases} cases");
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
