//! Property: nodes that change the same rows offline, then sync in any order, converge.
//!
//! Three nodes make random inserts, updates and deletes of cities (unique names) and houses
//! (a foreign key to a city) against a real server on 127.0.0.1, syncing at random moments;
//! then everyone syncs until quiet. Checked: every node equals the server, no unsynced
//! operation is left, foreign keys hold, and every inserted city that nobody renamed or
//! deleted is on the server.
//!
//! CI runs a few cases with a fixed seed; run more with
//! `DBSYNC_CONVERGENCE_CASES=500 cargo test -p dbsync-tests --test convergence -- --nocapture`.

use dbsync::{Client, Error};
use dbsync_tests::entities::{city, house};
use dbsync_tests::fixtures::{cities, houses};
use dbsync_tests::harness::{Adapter, TestServer, client, start};
use dbsync_tests::{Backend, log};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Set,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

const NODES: usize = 3;
const NAMES: &[&str] = &["Lyon", "Nice", "Metz", "Brest", "Arles"];

#[derive(Clone, Debug)]
enum Action {
    InsertCity(usize),
    RenameCity(usize, usize),
    DeleteCity(usize),
    InsertHouse(usize),
    MoveHouse(usize, usize),
    DeleteHouse(usize),
    Sync,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..NAMES.len()).prop_map(Action::InsertCity),
        2 => (0..8usize, 0..NAMES.len()).prop_map(|(c, n)| Action::RenameCity(c, n)),
        1 => (0..8usize).prop_map(Action::DeleteCity),
        3 => (0..8usize).prop_map(Action::InsertHouse),
        2 => (0..8usize, 0..8usize).prop_map(|(h, c)| Action::MoveHouse(h, c)),
        1 => (0..8usize).prop_map(Action::DeleteHouse),
        2 => Just(Action::Sync),
    ]
}

/// What the run did that the final check needs.
#[derive(Default)]
struct History {
    inserted: BTreeSet<String>,
    touched: BTreeSet<String>,
}

async fn pick_city(db: &DatabaseConnection, n: usize) -> Option<city::Model> {
    let all = city::Entity::find()
        .order_by_asc(city::Column::Id)
        .all(db)
        .await
        .unwrap();
    (!all.is_empty()).then(|| all[n % all.len()].clone())
}

async fn pick_house(db: &DatabaseConnection, n: usize) -> Option<house::Model> {
    let all = house::Entity::find()
        .order_by_asc(house::Column::Id)
        .all(db)
        .await
        .unwrap();
    (!all.is_empty()).then(|| all[n % all.len()].clone())
}

static FIXES: AtomicUsize = AtomicUsize::new(0);

/// Syncs; a unique clash is fixed the way an application would, by renaming its row.
async fn sync(node: &Client, history: &mut History) -> Result<(), Error> {
    for _ in 0..6 {
        match node.sync().await {
            Ok(_) => return Ok(()),
            Err(Error::UniqueConstraint { conflicts }) => {
                for conflict in conflicts {
                    let id = i32::try_from(conflict.row_id).unwrap();
                    if let Some(row) = city::Entity::find_by_id(id).one(node.db()).await.unwrap() {
                        history.touched.insert(row.name.clone());
                        let fixed =
                            format!("{} #{}", row.name, FIXES.fetch_add(1, Ordering::SeqCst));
                        city::ActiveModel {
                            id: Set(id),
                            name: Set(fixed),
                        }
                        .update(node.db())
                        .await
                        .unwrap();
                    }
                }
            }
            Err(Error::PullSuggested { .. }) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(Error::PullSuggested {
        message: "no quiet state after 6 attempts".into(),
    })
}

async fn run(
    server: &TestServer,
    nodes: &[Client],
    steps: &[(usize, Action)],
) -> Result<(), TestCaseError> {
    let mut history = History::default();
    for (who, action) in steps {
        let node = &nodes[*who];
        let db = node.db();
        match action {
            Action::InsertCity(n) => {
                let name = format!("{} {who}", NAMES[*n]);
                let inserted = city::ActiveModel {
                    name: Set(name.clone()),
                    ..Default::default()
                }
                .insert(db)
                .await;
                if inserted.is_ok() {
                    history.inserted.insert(name);
                }
            }
            Action::RenameCity(c, n) => {
                if let Some(row) = pick_city(db, *c).await {
                    let name = NAMES[*n].to_owned();
                    let model = city::ActiveModel {
                        id: Set(row.id),
                        name: Set(name.clone()),
                    };
                    if model.update(db).await.is_ok() {
                        history.touched.insert(row.name);
                        history.touched.insert(name);
                    }
                }
            }
            Action::DeleteCity(c) => {
                if let Some(row) = pick_city(db, *c).await {
                    history.touched.insert(row.name);
                    city::Entity::delete_by_id(row.id).exec(db).await.unwrap();
                }
            }
            Action::InsertHouse(c) => {
                if let Some(row) = pick_city(db, *c).await {
                    let model = house::ActiveModel {
                        address: Set(format!("house of node {who}")),
                        city_id: Set(Some(row.id)),
                        ..Default::default()
                    };
                    model.insert(db).await.unwrap();
                }
            }
            Action::MoveHouse(h, c) => {
                if let (Some(house), Some(city)) =
                    (pick_house(db, *h).await, pick_city(db, *c).await)
                {
                    let mut model: house::ActiveModel = house.into();
                    model.city_id = Set(Some(city.id));
                    model.update(db).await.unwrap();
                }
            }
            Action::DeleteHouse(h) => {
                if let Some(house) = pick_house(db, *h).await {
                    house::Entity::delete_by_id(house.id)
                        .exec(db)
                        .await
                        .unwrap();
                }
            }
            Action::Sync => sync(node, &mut history)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        }
    }
    // Everyone syncs until a whole round changes nothing.
    for _ in 0..8 {
        for node in nodes {
            sync(node, &mut history)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    let server_cities = cities(server.db()).await;
    let server_houses = houses(server.db()).await;
    for (i, node) in nodes.iter().enumerate() {
        prop_assert_eq!(
            &cities(node.db()).await,
            &server_cities,
            "node {} cities",
            i
        );
        prop_assert_eq!(
            &houses(node.db()).await,
            &server_houses,
            "node {} houses",
            i
        );
        prop_assert!(
            log(node.db()).await.is_empty(),
            "node {} has unsynced operations",
            i
        );
        let broken = node
            .db()
            .query_all_raw(sea_orm::Statement::from_string(
                node.db().get_database_backend(),
                "PRAGMA foreign_key_check",
            ))
            .await
            .unwrap();
        prop_assert!(broken.is_empty(), "node {} has broken foreign keys", i);
    }
    let names: BTreeSet<String> = server_cities.into_iter().map(|(_, n)| n).collect();
    for name in history.inserted.difference(&history.touched) {
        prop_assert!(names.contains(name), "inserted city {:?} vanished", name);
    }
    Ok(())
}

#[test]
fn nodes_editing_offline_converge_with_the_server() {
    let cases: u32 = std::env::var("DBSYNC_CONVERGENCE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed keeps CI reproducible; DBSYNC_CONVERGENCE_SEED explores other runs.
    let seed: u64 = std::env::var("DBSYNC_CONVERGENCE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261125);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let case = AtomicUsize::new(0);
    let strategy = proptest::collection::vec((0..NODES, action()), 5..40);
    let result = runner.run(&strategy, |steps| {
        let n = case.fetch_add(1, Ordering::SeqCst);
        runtime.block_on(async {
            let name = format!("convergence_{n}");
            let server = start(Backend::Sqlite, Adapter::Axum, &name).await.unwrap();
            let mut nodes = Vec::new();
            for i in 0..NODES {
                nodes.push(client(&server, &format!("{name}_{i}")).await);
            }
            run(&server, &nodes, &steps).await
        })
    });
    println!(
        "convergence: {} cases, seed {seed}",
        case.load(Ordering::SeqCst)
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
