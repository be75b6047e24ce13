//! Load: several server processes over one PostgreSQL database and many clients doing random
//! writes and syncing, concurrently, round after round. At the end every client equals the
//! server, and every write a client made is there: each client keeps its own ledger of the
//! cities and persons it created, renamed and deleted, and the server must hold exactly the
//! union of the ledgers.
//!
//! Runs when `DBSYNC_TEST_POSTGRES` is set. `DBSYNC_LOAD_CLIENTS` (default 32),
//! `DBSYNC_LOAD_ROUNDS` (default 4), `DBSYNC_LOAD_SERVERS` (default 3) and
//! `DBSYNC_LOAD_SEED` size it; CI runs the defaults, longer runs are made by hand.
//!
//! Every client writes only rows it created, so the expected end state is exact; the rows
//! still collide on keys (every node numbers its rows from 1), so nearly every sync moves
//! local rows and their children to fresh keys. Conflicts between writers of one row are the
//! subject of `tests/merge.rs` and `tests/convergence.rs`.

use dbsync::{Client, Error};
use dbsync_tests::entities::{city, person};
use dbsync_tests::fixtures::{add_city, add_person, cities, people};
use dbsync_tests::harness::{ServerProcess, server_db};
use dbsync_tests::{Backend, database_url, log, tracked_db};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one client believes it made: its live cities, and its live persons with their city.
#[derive(Default)]
struct Ledger {
    cities: BTreeSet<String>,
    persons: BTreeMap<String, String>,
    counter: u64,
}

struct Node {
    index: usize,
    db: sea_orm::DatabaseConnection,
    ledger: Ledger,
    rng: StdRng,
}

impl Node {
    fn fresh_name(&mut self, prefix: &str) -> String {
        self.ledger.counter += 1;
        format!("{prefix}{}-{}", self.index, self.ledger.counter)
    }

    async fn city_id(&self, name: &str) -> i32 {
        city::Entity::find()
            .filter(city::Column::Name.eq(name))
            .one(&self.db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node {} lost its city {name}", self.index))
            .id
    }

    /// One random write on the node's own rows; returns whether it wrote anything.
    async fn write(&mut self) -> bool {
        let choice = self.rng.random_range(0..10);
        let own: Vec<String> = self.ledger.cities.iter().cloned().collect();
        let persons: Vec<String> = self.ledger.persons.keys().cloned().collect();
        match choice {
            0..=2 => {
                let name = self.fresh_name("c");
                add_city(&self.db, &name).await;
                self.ledger.cities.insert(name);
            }
            3..=5 if !own.is_empty() => {
                let home = own[self.rng.random_range(0..own.len())].clone();
                let name = self.fresh_name("p");
                add_person(&self.db, &name, self.city_id(&home).await).await;
                self.ledger.persons.insert(name, home);
            }
            6 | 7 if !own.is_empty() => {
                let old = own[self.rng.random_range(0..own.len())].clone();
                let new = self.fresh_name("c");
                city::ActiveModel {
                    id: Set(self.city_id(&old).await),
                    name: Set(new.clone()),
                }
                .update(&self.db)
                .await
                .unwrap();
                self.ledger.cities.remove(&old);
                self.ledger.cities.insert(new.clone());
                for home in self.ledger.persons.values_mut() {
                    if *home == old {
                        *home = new.clone();
                    }
                }
            }
            8 if !persons.is_empty() => {
                let gone = persons[self.rng.random_range(0..persons.len())].clone();
                person::Entity::delete_many()
                    .filter(person::Column::Name.eq(gone.as_str()))
                    .exec(&self.db)
                    .await
                    .unwrap();
                self.ledger.persons.remove(&gone);
            }
            9 if !own.is_empty() => {
                // The persons living there go with it (ON DELETE CASCADE).
                let gone = own[self.rng.random_range(0..own.len())].clone();
                city::Entity::delete_by_id(self.city_id(&gone).await)
                    .exec(&self.db)
                    .await
                    .unwrap();
                self.ledger.cities.remove(&gone);
                self.ledger.persons.retain(|_, home| *home != gone);
            }
            _ => return false,
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_over_several_server_processes_lose_nothing() {
    let name = "load";
    let Some(server) = server_db(Backend::Postgres, name).await else {
        return;
    };
    let clients = setting("DBSYNC_LOAD_CLIENTS", 32) as usize;
    let rounds = setting("DBSYNC_LOAD_ROUNDS", 4);
    let processes = setting("DBSYNC_LOAD_SERVERS", 3) as usize;
    let seed = setting("DBSYNC_LOAD_SEED", 20261125);
    let url = database_url(Backend::Postgres, &format!("{name}_srv")).unwrap();
    // All at once, as replicas start: each runs the server's idempotent setup.
    let program = env!("CARGO_BIN_EXE_dbsync-test-process");
    let servers = futures::future::join_all(
        (0..processes).map(|_| ServerProcess::start(program, &url, None)),
    )
    .await;
    let addresses: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();

    let mut nodes = Vec::new();
    for index in 0..clients {
        let db = tracked_db(Backend::Sqlite, &format!("{name}_{index}"))
            .await
            .unwrap();
        Client::new(db.clone(), addresses[index % processes].clone())
            .register()
            .await
            .unwrap();
        nodes.push(Node {
            index,
            db,
            ledger: Ledger::default(),
            rng: StdRng::seed_from_u64(seed + index as u64),
        });
    }

    let started = Instant::now();
    let (mut writes, mut syncs, mut deferred) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for round in 0..rounds {
        let outcomes = futures::future::join_all(nodes.iter_mut().map(|node| {
            let address = addresses[(node.index + round as usize) % processes].clone();
            async move {
                let mut wrote = 0;
                for _ in 0..3 {
                    wrote += u64::from(node.write().await);
                }
                let result = Client::new(node.db.clone(), address).sync().await;
                (node.index, wrote, result)
            }
        }))
        .await;
        for (index, wrote, result) in outcomes {
            writes += wrote;
            syncs += 1;
            match result {
                Ok(_) => {}
                // Other nodes kept winning the race to push: the writes wait for the next round.
                Err(Error::PullSuggested { .. }) => deferred += 1,
                Err(err) => failures.push(format!("round {round}, node {index}: {err}")),
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(failures.is_empty(), "failed syncs: {failures:#?}");

    // Quiet: every node syncs alone until nothing is left, then pulls the last changes.
    for _ in 0..2 {
        for node in &nodes {
            Client::new(node.db.clone(), addresses[0].clone())
                .sync()
                .await
                .unwrap();
        }
    }

    let on_server = cities(&server).await;
    let server_people = people(&server).await;
    let expected_cities: BTreeSet<String> = nodes
        .iter()
        .flat_map(|n| n.ledger.cities.iter().cloned())
        .collect();
    let actual_cities: BTreeSet<String> = on_server.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(
        actual_cities, expected_cities,
        "every city written is there"
    );
    let city_names: BTreeMap<i32, String> = on_server.iter().cloned().collect();
    let expected_people: BTreeMap<String, String> = nodes
        .iter()
        .flat_map(|n| n.ledger.persons.clone())
        .collect();
    let actual_people: BTreeMap<String, String> = server_people
        .iter()
        .map(|(_, name, city)| (name.clone(), city_names[city].clone()))
        .collect();
    assert_eq!(
        actual_people, expected_people,
        "every person written is there, at home"
    );
    for node in &nodes {
        assert_eq!(cities(&node.db).await, on_server, "node {}", node.index);
        assert_eq!(people(&node.db).await, server_people, "node {}", node.index);
        assert_eq!(log(&node.db).await, [], "node {}", node.index);
    }
    println!(
        "load: {processes} server processes, {clients} clients, {rounds} rounds: {writes} writes, \
         {syncs} concurrent syncs ({deferred} deferred to the next round) in {:.1} s; \
         {} cities and {} persons on the server; 0 lost, 0 duplicated, 0 failed",
        elapsed.as_secs_f64(),
        on_server.len(),
        server_people.len(),
    );
}
