//! Faults a sync client meets in the field, produced for real: answers cut mid-transfer after
//! the server committed, a pull cancelled half-way (the process killed or the laptop asleep),
//! requests that never reach the server, requests delivered late and twice, and two
//! processes syncing the same local database at once. After each, syncing again converges with nothing lost and nothing applied
//! twice.

use dbsync::{Client, Error};
use dbsync_tests::fixtures::{add_city, cities};
use dbsync_tests::harness::{Adapter, client, start};
use dbsync_tests::{Backend, log, on_every_server};

on_every_server!(
    a_pull_cancelled_half_way_leaves_nothing_and_the_next_one_completes,
    a_request_that_never_reached_the_server_is_simply_retried,
    two_processes_syncing_one_local_database_lose_and_duplicate_nothing,
    a_connection_cut_mid_answer_changes_nothing_and_a_retry_converges,
    a_push_delivered_late_and_twice_is_applied_once,
    a_failing_pull_in_another_process_leaves_a_pull_in_progress_whole,
);

async fn a_pull_cancelled_half_way_leaves_nothing_and_the_next_one_completes(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..20 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    // The process dies right after the first page arrived: the pull future is dropped there.
    let (pages, mut first_page) = tokio::sync::mpsc::unbounded_channel();
    let paged = Client::builder(b.db().clone(), server.url.clone())
        .page_size(5)
        .progress(move |p| {
            if p.phase == dbsync::Phase::Downloading {
                let _ = pages.send(p.items);
            }
        })
        .build()
        .unwrap();
    tokio::select! {
        _ = paged.pull() => panic!("the pull should have been stopped after its first page"),
        items = first_page.recv() => assert_eq!(items, Some(5)),
    }
    assert!(
        cities(b.db()).await.is_empty(),
        "nothing of a cancelled pull is applied"
    );
    assert_eq!(b.version().await.unwrap(), 0);
    paged.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(log(b.db()).await, []);
}

async fn a_request_that_never_reached_the_server_is_simply_retried(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    add_city(a.db(), "Patient").await;
    // The same node, pointed at an address where nothing listens: the request is lost.
    let lost = Client::new(a.db().clone(), "http://127.0.0.1:9/sync");
    assert!(matches!(lost.push().await, Err(Error::Offline(_))));
    assert!(matches!(lost.sync().await, Err(Error::Offline(_))));
    let report = a.sync().await.unwrap();
    assert!(
        !report.push.unwrap().replayed,
        "the server never saw the first attempt"
    );
    assert_eq!(cities(server.db()).await, cities(a.db()).await);
}

async fn two_processes_syncing_one_local_database_lose_and_duplicate_nothing(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    let other = client(&server, &format!("{name}_other")).await;
    // A second "process": its own connection pool on the same SQLite file.
    let path = dbsync_tests::sqlite_path(&format!("{name}_a"));
    let second_db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let twin = Client::new(second_db, server.url.clone());
    for round in 0..5 {
        add_city(a.db(), &format!("a{round}")).await;
        add_city(other.db(), &format!("o{round}")).await;
        let (x, y, z) = tokio::join!(a.sync(), twin.sync(), other.sync());
        for result in [x, y, z] {
            match result {
                Ok(_) | Err(Error::PullSuggested { .. }) => {}
                Err(err) => panic!("round {round}: {err}"),
            }
        }
    }
    for _ in 0..3 {
        for node in [&a, &twin, &other] {
            node.sync().await.unwrap();
        }
    }
    let on_server = cities(server.db()).await;
    assert_eq!(
        on_server.len(),
        10,
        "every write arrived once: {on_server:?}"
    );
    assert_eq!(cities(a.db()).await, on_server);
    assert_eq!(cities(other.db()).await, on_server);
    assert_eq!(log(a.db()).await, []);
}

/// A proxy on 127.0.0.1 in front of `server` that passes requests through and cuts every
/// answer after `keep` bytes, like a connection dropped mid-transfer.
async fn cutting_proxy(server: &str, keep: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream: std::net::SocketAddr = server
        .trim_start_matches("http://")
        .trim_end_matches("/sync")
        .parse()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut from_client, mut to_client) = inbound.split();
                let (mut from_server, mut to_server) = outbound.split();
                let requests = tokio::io::copy(&mut from_client, &mut to_server);
                let answers = async {
                    let mut sent = 0;
                    let mut buffer = vec![0u8; 4096];
                    while sent < keep {
                        let n = from_server.read(&mut buffer).await?;
                        if n == 0 {
                            break;
                        }
                        let n = n.min(keep - sent);
                        to_client.write_all(&buffer[..n]).await?;
                        sent += n;
                    }
                    Ok::<_, std::io::Error>(())
                };
                tokio::select! {
                    _ = requests => {}
                    _ = answers => {}
                }
            });
        }
    });
    format!("http://{address}/sync")
}

async fn a_connection_cut_mid_answer_changes_nothing_and_a_retry_converges(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..200 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    // The push reaches the server, which commits; its answer is cut.
    let cut = Client::new(a.db().clone(), cutting_proxy(&server.url, 40).await);
    match cut.push().await {
        Err(Error::Offline(_)) | Err(Error::ServerError { .. }) => {}
        other => panic!("expected a broken answer, got {other:?}"),
    }
    let retry = a.push().await.unwrap();
    assert!(
        retry.replayed,
        "the server had applied the push whose answer was cut"
    );
    assert_eq!(cities(server.db()).await.len(), 200);

    // A pull whose page is cut mid-transfer applies nothing; the next one completes.
    let b = client(&server, &format!("{name}_b")).await;
    let cut = Client::new(b.db().clone(), cutting_proxy(&server.url, 250).await);
    assert!(cut.pull().await.is_err());
    assert!(cities(b.db()).await.is_empty());
    assert_eq!(b.version().await.unwrap(), 0);
    b.pull().await.unwrap();
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(log(a.db()).await, []);
}

/// A proxy that captures the first request it receives and never answers it; the request's
/// raw bytes come out of the returned channel, to be delivered later.
async fn swallowing_proxy() -> (String, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (captured, receiver) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut inbound, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        while !complete(&request) {
            let n = inbound.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the client hung up before sending its whole request");
            request.extend_from_slice(&buffer[..n]);
        }
        let _ = captured.send(request);
        // Hold the connection open, unanswered, until the client gives up.
        let _ = inbound.read(&mut buffer).await;
    });
    (format!("http://{address}/sync"), receiver)
}

/// Whether `request` holds a whole HTTP/1.1 request with a `content-length` body.
fn complete(request: &[u8]) -> bool {
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    request.len() >= end + 4 + length
}

/// Delivers raw request bytes to `server` on a connection of their own and returns the
/// answer's status and body.
async fn deliver(server: &str, request: &[u8]) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server
        .trim_start_matches("http://")
        .trim_end_matches("/sync");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server closes the connection after answering, which ends the answer.
    let text = String::from_utf8_lossy(request);
    let line_end = text.find("\r\n").unwrap();
    let mut closing = request[..line_end + 2].to_vec();
    closing.extend_from_slice(b"connection: close\r\n");
    closing.extend_from_slice(&request[line_end + 2..]);
    stream.write_all(&closing).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
    let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
    let mut body = answer[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = chunked.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&chunked[..line]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunked[line + 2..line + 2 + size]);
        chunked = &chunked[line + 2 + size + 2..];
    }
}

async fn a_push_delivered_late_and_twice_is_applied_once(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..5 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    // The first attempt is held up on the way; the client gives up on it.
    let (proxy, captured) = swallowing_proxy().await;
    let delayed = Client::builder(a.db().clone(), proxy)
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(matches!(delayed.push().await, Err(Error::Timeout)));
    let held = captured.await.unwrap();

    // The retry goes through, as a push the server never saw.
    let retry = a.push().await.unwrap();
    assert!(!retry.replayed);
    let version = retry.new_version.unwrap();

    // The first attempt arrives late: the server knows its push id and applies nothing.
    let (status, body) = deliver(&server.url, &held).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: dbsync::messages::PushResponse = serde_json::from_slice(&body).unwrap();
    assert!(answer.replayed);
    assert_eq!(answer.new_version, version);

    // And once more: its nonce was used, so it is refused outright.
    let (status, body) = deliver(&server.url, &held).await;
    let refusal: dbsync::messages::ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, refusal.code),
        (401, dbsync::messages::ErrorCode::Replayed)
    );

    assert_eq!(cities(server.db()).await.len(), 5, "applied exactly once");
    assert_eq!(server.server.latest_version().await.unwrap(), version);
    assert_eq!(log(a.db()).await, []);
    a.sync().await.unwrap();
    assert_eq!(cities(a.db()).await, cities(server.db()).await);
}

async fn a_failing_pull_in_another_process_leaves_a_pull_in_progress_whole(
    backend: Backend,
    adapter: Adapter,
    name: &str,
) {
    let Some(server) = start(backend, adapter, name).await else {
        return;
    };
    let a = client(&server, &format!("{name}_a")).await;
    for i in 0..20 {
        add_city(a.db(), &format!("c{i}")).await;
    }
    a.sync().await.unwrap();
    let b = client(&server, &format!("{name}_b")).await;
    // The pull stops after its first page until the other process is done.
    let (paused, on_pause) = std::sync::mpsc::channel();
    let (resume, on_resume) = std::sync::mpsc::channel::<()>();
    let on_resume = std::sync::Mutex::new(on_resume);
    let pulling = dbsync_tests::harness::on_own_thread(
        &format!("{name}_b"),
        &server.url,
        move |builder| {
            // Staged on disk, where the other process could reach the pages.
            builder.page_size(5).staging_memory(0).progress(move |p| {
                if p.phase == dbsync::Phase::Downloading && p.items == 5 {
                    paused.send(()).unwrap();
                    on_resume.lock().unwrap().recv().unwrap();
                }
            })
        },
        |slow| async move { slow.pull().await },
    );
    tokio::task::spawn_blocking(move || on_pause.recv().unwrap())
        .await
        .unwrap();
    // Another process on the same file starts a pull that fails: it must not take the first
    // pull's staged page with it.
    let path = dbsync_tests::sqlite_path(&format!("{name}_b"));
    let other = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let offline = Client::new(other, "http://127.0.0.1:9/sync");
    assert!(matches!(offline.pull().await, Err(Error::Offline(_))));
    resume.send(()).unwrap();
    let report = tokio::task::spawn_blocking(move || pulling.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.operations, 20);
    assert_eq!(cities(b.db()).await, cities(server.db()).await);
    assert_eq!(cities(b.db()).await.len(), 20, "no page was lost");
}
