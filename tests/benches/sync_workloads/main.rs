//! The sync workloads of the performance issue, over real HTTP on 127.0.0.1: a server
//! process (on a SQLite file, then on the local PostgreSQL when `DBSYNC_TEST_POSTGRES` is
//! set) and clients with SQLite files. Each figure stands beside its raw baseline, the same
//! rows written straight into the same kind of database (multi-row inserts in one
//! transaction), as a ratio.
//!
//! ```text
//! cargo bench -p dbsync-tests --bench sync_workloads
//! ```
//!
//! `DBSYNC_BENCH_RUNS` (default 3): runs of W1 to W5, whose median is reported.
//! `DBSYNC_BENCH_ONLY=W1,W6`: some workloads only. `DBSYNC_BENCH_SCALE` (default 1)
//! multiplies W1 to W4. `DBSYNC_BENCH_W6_ROWS` (default 1,000,000).
//! W7, tracking overhead, is `cargo bench -p dbsync-tests --bench tracking_overhead`.

mod measure;
mod workloads;

use dbsync_tests::Backend;
use measure::{Figures, header, line};
use std::future::Future;
use workloads::Server;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn wanted(workload: &str) -> bool {
    std::env::var("DBSYNC_BENCH_ONLY")
        .map(|only| {
            only.split(',')
                .any(|w| w.trim().eq_ignore_ascii_case(workload))
        })
        .unwrap_or(true)
}

/// Runs `workload` `runs` times, each on a fresh server, and keeps the median run's figures
/// with the highest memory peaks seen.
async fn median_of<F, Fut>(
    backend: Backend,
    name: &str,
    runs: usize,
    workload: F,
) -> Option<Figures>
where
    F: Fn(Server) -> Fut,
    Fut: Future<Output = Figures>,
{
    let mut all = Vec::new();
    for run in 0..runs {
        let server = Server::start(backend, &format!("bench_{name}_{backend:?}_{run}")).await?;
        all.push(workload(server).await);
    }
    let client_mb = all.iter().map(|f| f.client_mb).fold(0.0, f64::max);
    let server_mb = all.iter().map(|f| f.server_mb).fold(0.0, f64::max);
    all.sort_by_key(|f| f.time);
    // The spread shows what a median hides: a workload that is fast in most runs and
    // stalls in some.
    let spread = (runs > 1).then(|| {
        format!(
            "runs {:.3} to {:.3} s",
            all[0].time.as_secs_f64(),
            all[all.len() - 1].time.as_secs_f64()
        )
    });
    // Each run measures its own baseline: the ratio divides the median time by the median
    // baseline, not by the one baseline that happened to run beside the median run.
    let mut baselines: Vec<_> = all.iter().map(|f| f.baseline).collect();
    baselines.sort();
    let mut figures = all.swap_remove(all.len() / 2);
    figures.baseline = baselines[baselines.len() / 2];
    figures.client_mb = client_mb;
    figures.server_mb = server_mb;
    if let Some(spread) = spread {
        figures.note = if figures.note.is_empty() {
            spread
        } else {
            format!("{}; {spread}", figures.note)
        };
    }
    Some(figures)
}

async fn run(backend: Backend) {
    let runs = setting("DBSYNC_BENCH_RUNS", 3).max(1);
    let scale = setting("DBSYNC_BENCH_SCALE", 1).max(1);
    if Server::start(backend, &format!("bench_probe_{backend:?}"))
        .await
        .is_none()
    {
        return;
    }
    println!("\nserver on {backend:?} (median of {runs} runs for W1 to W5)");
    header();
    if wanted("W1")
        && let Some(f) = median_of(backend, "w1", runs, |s| async move {
            workloads::push(&s, scale).await
        })
        .await
    {
        line("W1 push 10k", &f);
    }
    if wanted("W2")
        && let Some(f) = median_of(backend, "w2", runs, |s| async move {
            workloads::pull(&s, scale).await
        })
        .await
    {
        line("W2 pull 10k", &f);
    }
    if wanted("W3")
        && let Some(f) = median_of(backend, "w3", runs, |s| async move {
            workloads::first_sync(&s, 10_000 * scale, 90_000 * scale, false).await
        })
        .await
    {
        line("W3 first sync 100k", &f);
    }
    if wanted("W4")
        && let Some(f) = median_of(backend, "w4", runs, |s| async move {
            workloads::merge(&s, scale).await
        })
        .await
    {
        line("W4 merge cycle", &f);
    }
    if wanted("W5")
        && let Some(f) = median_of(backend, "w5", runs, |s| async move {
            workloads::many_clients(&s, 50).await.0
        })
        .await
    {
        line("W5 50 clients x 100 ops", &f);
    }
    if wanted("W6") {
        let rows = setting("DBSYNC_BENCH_W6_ROWS", 1_000_000);
        if let Some(f) = median_of(backend, "w6", 1, |s| async move {
            workloads::first_sync(&s, rows / 10, rows - rows / 10, true).await
        })
        .await
        {
            line(&format!("W6 first sync {}k", rows / 1_000), &f);
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "dbsync sync workloads: {} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::env::consts::OS,
        );
        run(Backend::Sqlite).await;
        run(Backend::Postgres).await;
    });
}
