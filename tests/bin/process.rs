//! A dbsync server or client in a process of its own, for the tests that kill processes
//! (`tests/process_faults.rs`, `tests/load.rs`).
//!
//! ```text
//! dbsync-test-process server <database url> [<hang folder>]
//! dbsync-test-process client <node database url> <server url> <push|pull|repair|sync> <page size>
//! ```
//!
//! The server serves the fixture tables on a free port of 127.0.0.1 and prints
//! `listening <url>`. With a hang folder, each push, once its operations are applied and
//! before it commits, creates `<folder>/entered` and waits for `<folder>/release`.
//!
//! The client runs one procedure on an existing node database, printing
//! `progress <phase> <items>` as it goes and then `done elapsed_ms=<ms> peak_mb=<MB>` (the
//! process's peak resident memory), or `error <message>`.

use dbsync::{Client, UnsyncedPolicy};
use dbsync_server::SyncServer;
use sea_orm::EntityName;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("server") if args.len() >= 2 => {
            runtime.block_on(server(&args[1], args.get(2).map(PathBuf::from)))
        }
        Some("client") if args.len() == 5 => {
            let page_size = args[4].parse().expect("page size");
            runtime.block_on(client(&args[1], &args[2], &args[3], page_size))
        }
        _ => {
            eprintln!("usage: see the top of tests/bin/process.rs");
            std::process::exit(2);
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn server(url: &str, hang: Option<PathBuf>) {
    // The entities register themselves only if this binary links them.
    assert!(
        dbsync::Registry::global()
            .table(dbsync_tests::entities::city::Entity.table_name())
            .is_some(),
        "the fixture entities are registered"
    );
    let db = dbsync_tests::connect_server(url).await;
    let mut builder = SyncServer::builder(db);
    if let Some(folder) = hang {
        builder = builder.after_push(Arc::new(move |_, _, _| {
            let folder = folder.clone();
            Box::pin(async move {
                std::fs::write(folder.join("entered"), b"").map_err(|e| e.to_string())?;
                while !folder.join("release").exists() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(())
            })
        }));
    }
    let server = builder.build();
    server.setup().await.expect("server setup");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().nest("/sync", dbsync_server::axum::router(server));
    say(&format!("listening http://{address}/sync"));
    axum::serve(listener, app).await.expect("serve");
}

async fn client(url: &str, server: &str, procedure: &str, page_size: u32) {
    let db = dbsync_tests::connect(url).await;
    let client = Client::builder(db, server)
        .page_size(page_size)
        .progress(|p| say(&format!("progress {:?} {}", p.phase, p.items)))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let result = match procedure {
        "push" => client.push().await.map(drop),
        "pull" => client.pull().await.map(drop),
        "repair" => client.repair(UnsyncedPolicy::Refuse).await.map(drop),
        "sync" => client.sync().await.map(drop),
        other => panic!("unknown procedure {other}"),
    };
    match result {
        Ok(()) => say(&format!(
            "done elapsed_ms={} peak_mb={:.0}",
            started.elapsed().as_millis(),
            peak_mb()
        )),
        Err(err) => say(&format!("error {err}")),
    }
}

/// This process's peak resident memory in MB (Linux; 0 elsewhere).
fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
