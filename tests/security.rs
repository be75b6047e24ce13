//! Bad input is refused with a typed error and changes nothing: malformed, oversized,
//! unsigned, tampered, replayed and unauthorized requests, unknown nodes, tables and columns.

use dbsync::messages::{
    ErrorBody, ErrorCode, LogCursor, PROTOCOL_VERSION, PullRequest, PushRequest, RequestMeta,
    WireOperation, nonce, now_millis, sign,
};
use dbsync::{Command, Error};
use dbsync_server::{ServerConfig, SyncServer};
use dbsync_tests::entities::city;
use dbsync_tests::fixtures::{add_city, cities};
use dbsync_tests::harness::{
    Adapter, TestServer, client, serve, server_db, start, unregistered_client,
};
use dbsync_tests::{Backend, on_every_server};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

on_every_server!(
    malformed_bodies_are_refused,
    unsigned_and_tampered_requests_are_refused,
    a_replayed_request_is_refused,
    an_unknown_node_is_refused,
    unknown_tables_and_columns_are_refused,
    an_oversized_request_is_refused,
    another_protocol_version_is_refused,
    the_authorization_hook_can_refuse_a_node,
    a_before_push_hook_can_veto_a_push,
    a_body_signed_for_one_procedure_is_refused_by_another,
    reads_need_a_signature_unless_the_server_allows_unsigned_ones,
    compressed_bodies_are_bounded_and_checked,
    pushed_rows_must_match_their_operations,
    a_pull_cursor_outside_its_versions_is_refused,
);

/// Credentials of a registered node, read from its database as an attacker with the
/// secret would have them.
async fn credentials(client: &dbsync::Client) -> (i64, String) {
    let row = client
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            client.db().get_database_backend(),
            "SELECT node_id, secret FROM dbsync_node",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
    )
}

async fn raw(
    server: &TestServer,
    path: &str,
    body: Vec<u8>,
    node: Option<(i64, String)>,
) -> (u16, Option<ErrorBody>) {
    let headers = match node {
        Some((id, signature)) => vec![
            ("x-dbsync-node", id.to_string()),
            ("x-dbsync-signature", signature),
        ],
        None => vec![],
    };
    post_with(server, path, &headers, body).await
}

/// Posts `body` to `path` with exactly `headers`; the status and the error body, if any.
async fn post_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Option<ErrorBody>) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/{path}", server.url))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).ok())
}

fn meta(node_id: i64) -> RequestMeta {
    RequestMeta {
        protocol: PROTOCOL_VERSION,
        node_id,
        timestamp: now_millis(),
        nonce: nonce(),
        extra_data: serde_json::Value::Null,
    }
}

fn push_of(node_id: i64, table: &str, row: serde_json::Value) -> PushRequest {
    PushRequest {
        meta: meta(node_id),
        push_id: nonce(),
        base_version: 0,
        operations: vec![WireOperation {
            table: table.into(),
            row_id: 1,
            command: Command::Insert,
        }],
        rows: [(table.to_owned(), vec![row.as_object().unwrap().clone()])].into(),
    }
}

async fn server_cities(server: &TestServer) -> usize {
    city::Entity::find().all(server.db()).await.unwrap().len()
}

async fn malformed_bodies_are_refused(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let (id, secret) = credentials(&a).await;
    for body in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        b"{\"operations\": 7}".to_vec(),
    ] {
        let signature = sign(&secret, "push", &body);
        let (status, error) = raw(&server, "push", body, Some((id, signature))).await;
        assert_eq!(status, 400);
        assert_eq!(error.unwrap().code, ErrorCode::Malformed);
    }
    let (status, error) = raw(&server, "register", b"[1,2".to_vec(), None).await;
    assert_eq!((status, error.unwrap().code), (400, ErrorCode::Malformed));
    assert_eq!(server_cities(&server).await, 0);
}

async fn unsigned_and_tampered_requests_are_refused(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let (id, secret) = credentials(&a).await;
    let body = serde_json::to_vec(&push_of(
        id,
        "city",
        serde_json::json!({"id": 1, "name": "Evil"}),
    ))
    .unwrap();
    let (status, error) = raw(&server, "push", body.clone(), None).await;
    assert_eq!(
        (status, error.unwrap().code),
        (401, ErrorCode::BadSignature)
    );

    let signature = sign(&secret, "push", &body);
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("Evil", "Eviler")
        .into_bytes();
    let (status, error) = raw(&server, "push", tampered, Some((id, signature))).await;
    assert_eq!(
        (status, error.unwrap().code),
        (401, ErrorCode::BadSignature)
    );

    // Signed by this node but claiming to be another one.
    let other = client(&server, &format!("{name}_b")).await;
    let (other_id, _) = credentials(&other).await;
    let body = serde_json::to_vec(&push_of(
        other_id,
        "city",
        serde_json::json!({"id": 1, "name": "Evil"}),
    ))
    .unwrap();
    let (status, error) = raw(
        &server,
        "push",
        body.clone(),
        Some((id, sign(&secret, "push", &body))),
    )
    .await;
    assert_eq!(
        (status, error.unwrap().code),
        (401, ErrorCode::BadSignature)
    );
    assert_eq!(server_cities(&server).await, 0);
}

async fn a_replayed_request_is_refused(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let (id, secret) = credentials(&a).await;
    let body = serde_json::to_vec(&push_of(
        id,
        "city",
        serde_json::json!({"id": 1, "name": "Once"}),
    ))
    .unwrap();
    let signature = sign(&secret, "push", &body);
    let (status, _) = raw(&server, "push", body.clone(), Some((id, signature.clone()))).await;
    assert_eq!(status, 200);
    let (status, error) = raw(&server, "push", body, Some((id, signature))).await;
    assert_eq!((status, error.unwrap().code), (401, ErrorCode::Replayed));

    // A request from outside the replay window is refused whatever its nonce.
    let mut old = push_of(id, "city", serde_json::json!({"id": 2, "name": "Old"}));
    old.meta.timestamp -= 24 * 3600 * 1000;
    let body = serde_json::to_vec(&old).unwrap();
    let (status, error) = raw(
        &server,
        "push",
        body.clone(),
        Some((id, sign(&secret, "push", &body))),
    )
    .await;
    assert_eq!((status, error.unwrap().code), (401, ErrorCode::Replayed));
    assert_eq!(server_cities(&server).await, 1);
}

async fn an_unknown_node_is_refused(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let body = serde_json::to_vec(&push_of(
        4242,
        "city",
        serde_json::json!({"id": 1, "name": "Ghost"}),
    ))
    .unwrap();
    let signature = sign("guessed", "push", &body);
    let (status, error) = raw(&server, "push", body, Some((4242, signature))).await;
    assert_eq!((status, error.unwrap().code), (401, ErrorCode::UnknownNode));

    // Through the client API too: credentials the server does not know.
    let a = client(&server, &format!("{name}_a")).await;
    a.db()
        .execute_unprepared("UPDATE dbsync_node SET node_id = 4242")
        .await
        .unwrap();
    city::ActiveModel {
        name: Set("Ghost".into()),
        ..Default::default()
    }
    .insert(a.db())
    .await
    .unwrap();
    match a.push().await {
        Err(Error::PushRejected {
            code: ErrorCode::UnknownNode,
            ..
        }) => {}
        other => panic!("expected PushRejected(UnknownNode), got {other:?}"),
    }
    // The push may have been applied for all the node knows: it stays in flight.
    assert!(matches!(
        a.pull().await,
        Err(Error::Rejected {
            code: ErrorCode::UnknownNode,
            ..
        })
    ));
    assert_eq!(dbsync::unsynced_objects(a.db()).await.unwrap().len(), 1);
    assert_eq!(server_cities(&server).await, 0);
}

async fn unknown_tables_and_columns_are_refused(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let (id, secret) = credentials(&a).await;
    let cases = [
        push_of(id, "sqlite_master", serde_json::json!({"id": 1})),
        push_of(
            id,
            "city",
            serde_json::json!({"id": 1, "name": "X", "\"; DROP TABLE city; --": 1}),
        ),
        push_of(id, "city", serde_json::json!({"id": 1, "name": 12})),
        // Each kind of value the database's JSON functions would take as it comes.
        push_of(id, "city", serde_json::json!({"id": 1})),
        push_of(id, "city", serde_json::json!({"id": 1, "name": ["X"]})),
        push_of(
            id,
            "person",
            serde_json::json!({"id": 1, "name": "X", "city_id": "1"}),
        ),
        push_of(
            id,
            "person",
            serde_json::json!({"id": 1, "name": "X", "city_id": 1.5}),
        ),
        push_of(
            id,
            "person",
            serde_json::json!({"id": 1, "name": "X", "city_id": 4_294_967_296_i64}),
        ),
        push_of(
            id,
            "tag",
            serde_json::json!({"id": 1, "label": "pull-only"}),
        ),
    ];
    for push in cases {
        let body = serde_json::to_vec(&push).unwrap();
        let (status, error) = raw(
            &server,
            "push",
            body.clone(),
            Some((id, sign(&secret, "push", &body))),
        )
        .await;
        let error = error.unwrap();
        assert_eq!(
            (status, error.code),
            (422, ErrorCode::InvalidOperation),
            "{}",
            error.message
        );
    }
    assert_eq!(server_cities(&server).await, 0);
    assert_eq!(
        server.server.latest_version().await.unwrap(),
        0,
        "nothing was versioned"
    );
}

async fn an_oversized_request_is_refused(backend: Backend, adapter: Adapter, name: &str) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let mut config = ServerConfig::default();
    config.max_body_bytes = 4 * 1024;
    let server = serve(SyncServer::builder(db).config(config), adapter).await;
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..100 {
        city::ActiveModel {
            name: Set(format!("a rather long city name number {i}")),
            ..Default::default()
        }
        .insert(a.db())
        .await
        .unwrap();
    }
    match a.push().await {
        Err(Error::PushRejected {
            code: ErrorCode::TooLarge,
            ..
        }) => {}
        other => panic!("expected PushRejected(TooLarge), got {other:?}"),
    }
    assert_eq!(server_cities(&server).await, 0);
    assert_eq!(
        dbsync::unsynced_objects(a.db()).await.unwrap().len(),
        100,
        "nothing is lost locally"
    );
}

async fn another_protocol_version_is_refused(backend: Backend, adapter: Adapter, name: &str) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let (status, error) = raw(&server, "register", br#"{"protocol": 99}"#.to_vec(), None).await;
    let error = error.unwrap();
    assert_eq!((status, error.code), (400, ErrorCode::ProtocolMismatch));
    assert_eq!(error.protocol, PROTOCOL_VERSION);
    // A protocol 2 push, whose operations are objects, is another version's, not malformed.
    let a = client(&server, &format!("{name}_a")).await;
    let (id, secret) = credentials(&a).await;
    let mut body = serde_json::to_value(meta(id)).unwrap();
    body["protocol"] = 2.into();
    body["push_id"] = nonce().into();
    body["base_version"] = 0.into();
    body["operations"] = serde_json::json!([{"table": "city", "row_id": 1, "command": "i"}]);
    body["rows"] = serde_json::json!({"city": [{"id": 1, "name": "Lyon"}]});
    let body = serde_json::to_vec(&body).unwrap();
    let signature = sign(&secret, "push", &body);
    let (status, error) = raw(&server, "push", body, Some((id, signature))).await;
    let code = error.map(|e| e.code);
    assert_eq!((status, code), (400, Some(ErrorCode::ProtocolMismatch)));
    assert_eq!(server_cities(&server).await, 0);
}

async fn the_authorization_hook_can_refuse_a_node(backend: Backend, adapter: Adapter, name: &str) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let server = serve(
        SyncServer::builder(db).authorize(|request| {
            if request.extra_data.get("token").and_then(|t| t.as_str()) == Some("let me in") {
                Ok(())
            } else {
                Err(format!("{:?} needs a token", request.procedure))
            }
        }),
        adapter,
    )
    .await;
    let stranger = unregistered_client(&server, &format!("{name}_a")).await;
    match stranger.register().await {
        Err(Error::Rejected {
            code: ErrorCode::Unauthorized,
            message,
        }) => assert!(message.contains("token")),
        other => panic!("expected Rejected(Unauthorized), got {other:?}"),
    }
    let db = dbsync_tests::tracked_db(Backend::Sqlite, &format!("{name}_b"))
        .await
        .unwrap();
    let friend = dbsync::Client::builder(db, server.url.clone())
        .extra_data(serde_json::json!({"token": "let me in"}))
        .build()
        .unwrap();
    friend.register().await.unwrap();
    city::ActiveModel {
        name: Set("Allowed".into()),
        ..Default::default()
    }
    .insert(friend.db())
    .await
    .unwrap();
    friend.sync().await.unwrap();
    assert_eq!(server_cities(&server).await, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_offline() {
    let db = dbsync_tests::tracked_db(Backend::Sqlite, "offline_client")
        .await
        .unwrap();
    // Nothing listens on port 9 of the loopback address.
    let client = dbsync::Client::new(db, "http://127.0.0.1:9/sync");
    assert!(matches!(client.register().await, Err(Error::Offline(_))));
}

async fn a_before_push_hook_can_veto_a_push(backend: Backend, adapter: Adapter, name: &str) {
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let hook: dbsync_server::PushHook = std::sync::Arc::new(|_, push, _| {
        let vetoed = push.operations.iter().any(|op| op.table == "person");
        Box::pin(async move {
            if vetoed {
                Err("people are read-only here".to_owned())
            } else {
                Ok(())
            }
        })
    });
    let server = serve(SyncServer::builder(db).before_push(hook), adapter).await;
    let a = client(&server, &format!("{name}_a")).await;
    let lyon = city::ActiveModel {
        name: Set("Lyon".into()),
        ..Default::default()
    }
    .insert(a.db())
    .await
    .unwrap();
    dbsync_tests::entities::person::ActiveModel {
        name: Set("Ann".into()),
        city_id: Set(lyon.id),
        ..Default::default()
    }
    .insert(a.db())
    .await
    .unwrap();
    match a.push().await {
        Err(Error::PushRejected {
            code: ErrorCode::Unauthorized,
            message,
        }) => {
            assert!(message.contains("read-only"), "{message}");
        }
        other => panic!("expected PushRejected(Unauthorized), got {other:?}"),
    }
    assert_eq!(
        server_cities(&server).await,
        0,
        "the whole push was rolled back"
    );
    assert_eq!(dbsync::unsynced_objects(a.db()).await.unwrap().len(), 2);
}

fn pull_of(node_id: i64) -> Vec<u8> {
    serde_json::to_vec(&PullRequest {
        meta: meta(node_id),
        base_version: 0,
        target_version: None,
        after: None,
        page_size: None,
    })
    .unwrap()
}

async fn a_body_signed_for_one_procedure_is_refused_by_another(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let (id, secret) = credentials(&a).await;
    // A pull body is also a valid query or repair body shape-wise; only the signed procedure
    // tells them apart.
    let body = pull_of(id);
    let signature = sign(&secret, "pull", &body);
    for path in ["repair", "query", "push"] {
        let (status, error) = raw(&server, path, body.clone(), Some((id, signature.clone()))).await;
        assert_eq!(
            (status, error.unwrap().code),
            (401, ErrorCode::BadSignature),
            "a pull signature sent to {path}"
        );
    }
    let (status, _) = raw(&server, "pull", body, Some((id, signature))).await;
    assert_eq!(status, 200, "the same request where it was signed for");
}

async fn reads_need_a_signature_unless_the_server_allows_unsigned_ones(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let (id, _) = credentials(&a).await;
    // By default, every read is signed.
    assert_eq!(
        unsigned(&server, "pull", id, pull_of(id)).await,
        (401, Some(ErrorCode::BadSignature))
    );

    let Some(db) = server_db(backend, &format!("{name}_open")).await else {
        return;
    };
    let mut config = ServerConfig::default();
    config.require_signed_reads = false;
    let open = serve(SyncServer::builder(db).config(config), adapter).await;
    let b = client(&open, &format!("{name}_b")).await;
    let (id, _) = credentials(&b).await;
    let writer = client(&open, &format!("{name}_w")).await;
    city::ActiveModel {
        name: Set("Public".into()),
        ..Default::default()
    }
    .insert(writer.db())
    .await
    .unwrap();
    writer.sync().await.unwrap();
    assert_eq!(unsigned(&open, "pull", id, pull_of(id)).await, (200, None));
    // Anyone could have sent that: it does not count as the node having pulled.
    let row = open
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            open.db().get_database_backend(),
            format!("SELECT pulled_version FROM dbsync_nodes WHERE node_id = {id}"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0);
    // Writes stay signed whatever the setting.
    let push = serde_json::to_vec(&push_of(
        id,
        "city",
        serde_json::json!({"id": 1, "name": "Unsigned"}),
    ))
    .unwrap();
    assert_eq!(
        unsigned(&open, "push", id, push).await,
        (401, Some(ErrorCode::BadSignature))
    );
    assert_eq!(server_cities(&open).await, 1, "only the signed push");
}

/// Sends `body` to `path` as `node_id`, without a signature.
async fn unsigned(
    server: &TestServer,
    path: &str,
    node_id: i64,
    body: Vec<u8>,
) -> (u16, Option<ErrorCode>) {
    let headers = [("x-dbsync-node", node_id.to_string())];
    let (status, error) = post_with(server, path, &headers, body).await;
    (status, error.map(|e| e.code))
}

/// Sends `body` to `path` with a `content-encoding` header.
async fn encoded(
    server: &TestServer,
    path: &str,
    encoding: &str,
    body: Vec<u8>,
) -> (u16, Option<ErrorCode>) {
    let headers = [("content-encoding", encoding.to_owned())];
    let (status, error) = post_with(server, path, &headers, body).await;
    (status, error.map(|e| e.code))
}

async fn compressed_bodies_are_bounded_and_checked(backend: Backend, adapter: Adapter, name: &str) {
    use dbsync::messages::Compression;
    let Some(db) = server_db(backend, name).await else {
        return;
    };
    let mut config = ServerConfig::default();
    config.max_body_bytes = 1 << 20;
    let server = serve(SyncServer::builder(db).config(config), adapter).await;
    // 64 MiB of JSON-looking text that compresses to a few kilobytes.
    let bomb = format!("{{\"extra_data\": \"{}\"}}", "a".repeat(64 << 20)).into_bytes();
    for encoding in [Compression::Zstd, Compression::Gzip] {
        let (used, wire) = encoding.compress(&bomb);
        assert!(wire.len() < 1 << 20);
        let name = used.header().unwrap();
        assert_eq!(
            encoded(&server, "register", name, wire).await,
            (413, Some(ErrorCode::TooLarge)),
            "{name} bomb"
        );
        assert_eq!(
            encoded(&server, "register", name, b"not compressed at all".to_vec()).await,
            (400, Some(ErrorCode::Malformed)),
            "corrupt {name}"
        );
    }
    assert_eq!(
        encoded(&server, "register", "br", b"{}".to_vec()).await,
        (400, Some(ErrorCode::Malformed)),
        "an encoding dbsync does not speak"
    );
    // A well-formed compressed request goes through.
    let request = serde_json::json!({"protocol": PROTOCOL_VERSION, "extra_data": "x".repeat(4096)});
    let (used, wire) = Compression::Zstd.compress(&serde_json::to_vec(&request).unwrap());
    let (status, _) = encoded(&server, "register", used.header().unwrap(), wire).await;
    assert_eq!(status, 200);
    assert_eq!(
        server_nodes(&server).await,
        1,
        "only the well-formed registration made a node"
    );
}

async fn server_nodes(server: &TestServer) -> i64 {
    let row = server
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            server.db().get_database_backend(),
            "SELECT COUNT(*) FROM dbsync_nodes",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// A push's rows must hold one row for each insert and update, and nothing that is not a
/// row; a row no operation names is left out. Checked with and without a hook, which makes
/// the server decode the rows instead of writing them from their text.
async fn pushed_rows_must_match_their_operations(backend: Backend, adapter: Adapter, name: &str) {
    for hooked in [false, true] {
        let name = format!("{name}{}", if hooked { "h" } else { "" });
        let Some(db) = server_db(backend, &name).await else {
            return;
        };
        let mut builder = SyncServer::builder(db);
        if hooked {
            let hook: dbsync_server::PushHook =
                std::sync::Arc::new(|_, _, _| Box::pin(async { Ok(()) }));
            builder = builder.before_push(hook);
        }
        let server = serve(builder, adapter).await;
        let a = client(&server, &format!("{name}_a")).await;
        let (id, secret) = credentials(&a).await;
        // One insert of `city`, as a run of one key.
        let insert = |row_id| serde_json::json!(["city", "i", row_id, 1]);
        let push = |operations: serde_json::Value, rows: serde_json::Value| {
            let mut body = serde_json::to_value(meta(id)).unwrap();
            body["push_id"] = nonce().into();
            body["base_version"] = 0.into();
            body["operations"] = operations;
            body["rows"] = rows;
            serde_json::to_vec(&body).unwrap()
        };
        let lyon = serde_json::json!({"id": 1, "name": "Lyon"});
        let cases = [
            (
                "no row",
                push(
                    serde_json::json!([insert(1), insert(2)]),
                    serde_json::json!({"city": [lyon]}),
                ),
            ),
            (
                "two rows",
                push(
                    serde_json::json!([insert(1)]),
                    serde_json::json!({"city": [lyon, lyon]}),
                ),
            ),
            (
                "not rows",
                push(
                    serde_json::json!([insert(1)]),
                    serde_json::json!({"city": 7}),
                ),
            ),
            (
                "not objects",
                push(
                    serde_json::json!([insert(1)]),
                    serde_json::json!({"city": [1]}),
                ),
            ),
        ];
        for (case, body) in cases {
            let signature = sign(&secret, "push", &body);
            let (status, error) = raw(&server, "push", body, Some((id, signature))).await;
            let error = error.unwrap_or_else(|| panic!("{case}, hooked {hooked}: status {status}"));
            assert_eq!(
                (status, error.code),
                (422, ErrorCode::InvalidOperation),
                "{case}, hooked {hooked}: {}",
                error.message
            );
        }
        // Runs that hold no key, run past the largest key, or expand past what a message
        // may hold: malformed, whatever their rows.
        for run in [
            serde_json::json!(["city", "i", 1, 0]),
            serde_json::json!(["city", "i", i64::MAX, 2]),
            serde_json::json!(["city", "i", 1, dbsync::messages::MAX_OPERATIONS + 1]),
            serde_json::json!(["city", "i", 1, u64::MAX]),
        ] {
            let body = push(
                serde_json::json!([run.clone()]),
                serde_json::json!({"city": [lyon]}),
            );
            let signature = sign(&secret, "push", &body);
            let (status, error) = raw(&server, "push", body, Some((id, signature))).await;
            let code = error.map(|e| e.code);
            assert_eq!((status, code), (400, Some(ErrorCode::Malformed)), "{run}");
        }
        assert_eq!(server_cities(&server).await, 0, "hooked {hooked}");
        let extra = serde_json::json!({"id": 2, "name": "Nantes"});
        let body = push(
            serde_json::json!([insert(1)]),
            serde_json::json!({"city": [lyon, extra]}),
        );
        let signature = sign(&secret, "push", &body);
        let (status, _) = raw(&server, "push", body, Some((id, signature))).await;
        assert_eq!(status, 200, "hooked {hooked}");
        let cities = city::Entity::find().all(server.db()).await.unwrap();
        let names: Vec<&str> = cities.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Lyon"], "the row no operation names is left out");
    }
}

/// A pull's cursor is the server's own answer sent back: one pointing before the node's
/// version, past the pull's target, or into the middle of a version the node already has is
/// refused, not paged from (it could skip operations or page forever).
async fn a_pull_cursor_outside_its_versions_is_refused(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..3 {
        add_city(a.db(), &format!("city {i}")).await;
        a.push().await.unwrap();
    }
    let b = client(&server, &format!("{name}_b")).await;
    let (id, secret) = credentials(&b).await;
    let pull = |base: i64, after: Option<(i64, i64)>| {
        serde_json::to_vec(&PullRequest {
            meta: meta(id),
            base_version: base,
            target_version: Some(3),
            after: after.map(|(version, seq)| LogCursor { version, seq }),
            page_size: Some(1),
        })
        .unwrap()
    };
    for (base, after) in [
        (1, (0, i64::MAX)),
        (0, (4, 1)),
        (0, (4, i64::MAX)),
        (0, (2, -1)),
        (1, (1, 1)),
    ] {
        let body = pull(base, Some(after));
        let signature = sign(&secret, "pull", &body);
        let (status, error) = raw(&server, "pull", body, Some((id, signature))).await;
        assert_eq!(
            (status, error.map(|e| e.code)),
            (422, Some(ErrorCode::InvalidOperation)),
            "base {base}, cursor {after:?}"
        );
    }
    // The cursors the server gives: after a whole version, or inside one.
    for after in [(1, i64::MAX), (2, i64::MAX), (3, i64::MAX)] {
        let body = pull(0, Some(after));
        let signature = sign(&secret, "pull", &body);
        let (status, _) = raw(&server, "pull", body, Some((id, signature))).await;
        assert_eq!(status, 200, "cursor {after:?}");
    }
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(a.db()).await);
}
