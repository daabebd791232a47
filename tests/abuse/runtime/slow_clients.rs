//! Class 4: slow clients, too many connections, shutdown.

use super::*;

/// 200 connections that send half a request head are closed after the header-read timeout.
#[tokio::test]
async fn half_sent_request_heads_are_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    // The idle timeout is off: only the header-read timeout can close these connections.
    let server = Server::start(
        dir.path(),
        &["--header-read-timeout-ms", "500", "--idle-timeout-ms", "0"],
    )
    .await;
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        streams.push(s);
    }
    // The deadline only guards against connections that are never closed.
    let started = Instant::now();
    for s in &mut streams {
        assert!(
            closed_within(s, Duration::from_secs(120).saturating_sub(started.elapsed())).await,
            "a connection with a half-sent head is still open {:?} after it was sent (header-read \
             timeout 500 ms)",
            started.elapsed()
        );
    }
    // The server still serves.
    server.query("{ ledger { revision } }", json!({})).await;
}

/// A server whose header-read timeout is off and request timeout far away: only the idle
/// timeout of `ms` can close a connection.
async fn idle_only(dir: &std::path::Path, ms: &str) -> Server {
    let args = [
        "--idle-timeout-ms",
        ms,
        "--header-read-timeout-ms",
        "0",
        "--request-timeout-ms",
        "600000",
    ];
    Server::start(dir, &args).await
}

/// A connection whose request body stops arriving is closed after the idle timeout.
#[tokio::test]
async fn a_stalled_body_is_disconnected_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = idle_only(dir.path(), "500").await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"query\":",
    )
    .await
    .unwrap();
    // The deadline only guards against a connection that is never closed.
    assert!(
        closed_within(&mut s, Duration::from_secs(120)).await,
        "a connection whose body stalled is still open after 120 s (idle timeout 500 ms)"
    );
}

/// The idle timeout counts from the last byte moved, not from the connection's start: a body
/// that keeps arriving, a byte every 100 ms for some 3.5 s, is read to its end and answered
/// under an idle timeout of 1 s.
#[tokio::test]
async fn a_body_that_keeps_arriving_outlives_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = idle_only(dir.path(), "1000").await;
    let body = br#"{"query":"{ ledger { revision } }"}"#;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for byte in body {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(&[*byte]).await.unwrap();
    }
    assert!(started.elapsed() > Duration::from_secs(3));
    let resp = read_one_response(&mut s).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(r#""revision":"#), "{resp}");
}

/// With `--max-connections 50` the 51st connection gets a 503 with Retry-After and is closed;
/// once others leave, clients are served again.
#[tokio::test]
async fn connections_beyond_the_cap_are_refused_politely() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "50"]).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let resp = read_one_response(&mut s).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        held.push(s);
    }
    // Not /healthz, which has slots of its own beyond the cap.
    let query = format!(
        "GET /graphql?query=%7Bledger%7Brevision%7D%7D HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    // The server closes this connection after its answer; the wait only guards against a hang.
    let resp = raw_exchange(&mut extra, query.as_bytes(), Duration::from_secs(60)).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "the 51st connection got: {resp:?}");
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{resp}");
    assert!(lower.contains("connection: close"), "{resp}");

    held.truncate(40);
    // The deadline only guards against a server that never serves again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match server
            .client
            .get(format!("http://{}/healthz", server.addr))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "not served again within 60 s after 10 connections left: last answer {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// SIGTERM with an idle keep-alive client, a half-sent request, a WebSocket that never reads
/// and one that does: the process exits while all of them are still connected (none of them
/// holds it up past the grace period), and the reading WebSocket sees its subscription
/// completed and close code 1001.
#[tokio::test]
async fn sigterm_exits_within_the_grace_period_whatever_the_clients_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--shutdown-grace-ms", "1000"]).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(request.as_bytes()).await.unwrap();
    read_one_response(&mut idle).await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let subscribe = json!({"type": "subscribe", "id": "1", "payload": {
        "query": format!("subscription {{ observationRevised(dataset: \"{DATASET}\") {{ value }} }}")
    }});
    let mut deaf = ws_connect(&server).await;
    ws_send(&mut deaf, subscribe.clone()).await;
    let mut reader = ws_connect(&server).await;
    ws_send(&mut reader, subscribe).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    sigterm(server.child.id());
    let reading = async {
        let complete = ws_recv(&mut reader).await;
        assert_eq!(complete, json!({"type": "complete", "id": "1"}));
        loop {
            match timeout(Duration::from_secs(60), reader.next())
                .await
                .expect("no close frame within 60 s")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    // A server that waited for its clients would never exit: they stay connected until the
    // end of the test. The deadline only guards against that hang (the grace is 1 s).
    let (code, status) = tokio::join!(
        reading,
        server.child.wait_timeout(
            Duration::from_secs(120),
            "serve after SIGTERM (grace 1 s) with clients that never finish"
        )
    );
    assert_eq!(code, Some(1001));
    assert!(status.success(), "{status:?}");
    drop((idle, half, deaf));
}
