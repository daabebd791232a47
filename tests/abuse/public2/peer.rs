//! Item 1: one client holds every connection slot.

use super::*;

/// With `--max-connections-per-peer 4`, 127.0.0.1 holding three keep-alive connections and a
/// WebSocket gets a 429 (Retry-After, closed) for a fifth, while 127.0.0.2 is served; once
/// the WebSocket closes, 127.0.0.1 is served again.
#[tokio::test]
async fn peer_one_address_is_capped_while_another_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections-per-peer", "4"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", server.addr).await;
        let resp = get(&mut s, "/healthz").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        held.push(s);
    }
    let ws = ws_open("127.0.0.1", server.addr).await;

    let mut extra = connect_from("127.0.0.1", server.addr).await;
    let resp = get(&mut extra, "/healthz").await;
    assert!(resp.starts_with("HTTP/1.1 429"), "the fifth connection got: {resp:?}");
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{resp}");
    assert!(lower.contains("connection: close"), "{resp}");
    assert!(lower.contains("limit 4"), "{resp}");
    assert!(closed_within(&mut extra, Duration::from_secs(5)).await);
    // Also a WebSocket upgrade.
    let refused = ws_upgrade(connect_from("127.0.0.1", server.addr).await, server.addr, &[]).await;
    assert_eq!(refused.err(), Some(429));

    let mut other = connect_from("127.0.0.2", server.addr).await;
    let resp = get(&mut other, "/healthz").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "127.0.0.2 got: {resp:?}");
    let resp = get(&mut other, "/graphql?query=%7Bledger%7Brevision%7D%7D").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "127.0.0.2 got: {resp:?}");

    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from("127.0.0.1", server.addr).await;
        let resp = get(&mut again, "/healthz").await;
        if resp.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "127.0.0.1 not served after its WebSocket closed: {resp:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Behind a trusted proxy (`--trusted-proxies 127.0.0.0/8`), the client is the right-most
/// untrusted address of X-Forwarded-For: two WebSockets of 203.0.113.7 fill its cap of 2, a
/// third is refused with 429 even when the client prepends an address of its own, and
/// 203.0.113.8 through the same proxy is served.
#[tokio::test]
async fn peer_behind_a_trusted_proxy_the_forwarded_client_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-connections-per-peer",
            "2",
            "--trusted-proxies",
            "10.0.0.0/8,127.0.0.0/8",
        ],
    )
    .await;
    let addr = server.addr;
    let via_proxy = |xff: &'static str| async move {
        let stream = connect_from("127.0.0.1", addr).await;
        ws_upgrade(stream, addr, &[("x-forwarded-for", xff)]).await
    };
    let first = via_proxy("203.0.113.7").await.expect("first WebSocket");
    let second = via_proxy("203.0.113.7, 10.1.1.1").await.expect("second WebSocket");
    assert_eq!(via_proxy("203.0.113.7").await.err(), Some(429));
    assert_eq!(via_proxy("203.0.113.8, 203.0.113.7").await.err(), Some(429));
    let other = via_proxy("203.0.113.8")
        .await
        .expect("another client through the proxy");
    // The proxy's own connections are not capped by its address: three are open.
    drop((first, second, other));
}

/// With every one of `--max-connections 10` taken, `/healthz`, `/readyz` and `/metrics`
/// still answer (in slots kept for them, then the connection closes), while any other path
/// gets the 503.
#[tokio::test]
async fn peer_health_and_metrics_answer_when_every_slot_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "10"]).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = connect_from("127.0.0.1", server.addr).await;
        let resp = get(&mut s, "/healthz").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        held.push(s);
    }
    let mut graphql = connect_from("127.0.0.1", server.addr).await;
    let resp = get(&mut graphql, "/graphql?query=%7Bledger%7Brevision%7D%7D").await;
    assert!(
        resp.starts_with("HTTP/1.1 503"),
        "a query with every slot taken got: {resp:?}"
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let mut s = connect_from("127.0.0.1", server.addr).await;
        let resp = get(&mut s, path).await;
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "{path} with every slot taken got: {resp:?}"
        );
        assert!(resp.to_ascii_lowercase().contains("connection: close"), "{resp}");
        assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    }
    drop(held);
}

/// A WebSocket whose client sent `connection_init` and nothing more (it does not read, so it
/// answers no ping) is closed after `--idle-timeout-ms` with 1001 and a reason naming it,
/// although the server pings it all along; a client that answers the pings stays.
#[tokio::test]
async fn peer_a_silent_websocket_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--idle-timeout-ms", "1500", "--ws-keepalive-ms", "200"]).await;
    let mut silent = ws_open("127.0.0.1", server.addr).await;
    let mut answering = ws_open("127.0.0.1", server.addr).await;
    // Answers every ping with a pong for three idle timeouts, and sends nothing else.
    let answered = async {
        let mut pings = 0;
        let _ = timeout(Duration::from_millis(4500), async {
            while let Some(Ok(msg)) = answering.next().await {
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["type"], "ping", "{v}");
                    pings += 1;
                    ws_send(&mut answering, json!({"type": "pong"})).await;
                }
            }
        })
        .await;
        pings
    };
    let pings = answered.await;
    assert!(pings > 3, "the server pinged {pings} times");

    let (frame, texts) = ws_close(&mut silent, Duration::from_secs(30)).await;
    let frame = frame.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    assert!(frame.reason.contains("idle"), "{frame:?}");
    assert!(texts > 3, "the silent client was pinged {texts} times before the close");

    ws_send(&mut answering, json!({"type": "ping"})).await;
    assert_eq!(ws_recv(&mut answering).await["type"], "pong");
}
