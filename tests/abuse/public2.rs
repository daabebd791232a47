//! "Face the public, round 2": one client holding every connection slot, subscriptions that
//! pin memory behind a client that does not read, bytes in the cost model, and the fast
//! path's hold on the projection lock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, MaybeTlsStream, WebSocketStream};

use crate::proc_support::{generated_store, Server};
use crate::support::ws::{recv as ws_recv, send as ws_send};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A TCP connection to `server` from the loopback address `from` (all of 127/8 is local).
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .expect("bind the client socket");
    socket.connect(server).await.expect("connect")
}

/// Sends `GET path` and reads one response, whole (`content-length`) or up to the close.
async fn get(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The answers are immediate: the bound only guards against a hang, and says so.
    const HANG_GUARD: Duration = Duration::from_secs(20);
    let done = timeout(HANG_GUARD, async {
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end].lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_some_and(|length| got.len() >= end + 4 + length) {
                    return;
                }
            }
        }
    })
    .await;
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(
        done.is_ok(),
        "no complete answer (head and Content-Length bytes of body) nor a close within {HANG_GUARD:?}; \
         received so far: {got:?}"
    );
    got
}

/// True once the server has closed `stream` within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    timeout(wait, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Upgrades `stream` to a graphql-transport-ws WebSocket with extra `headers`; the status
/// on refusal.
async fn ws_upgrade(stream: TcpStream, server: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = format!("ws://{server}/graphql/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("graphql-transport-ws"));
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match timeout(
        Duration::from_secs(10),
        client_async(request, MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("upgrade in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// A WebSocket from `from`, initialised (`connection_ack` received).
async fn ws_open(from: &str, server: SocketAddr) -> Ws {
    let mut ws = ws_upgrade(connect_from(from, server).await, server, &[])
        .await
        .expect("upgrade");
    ws_send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(ws_recv(&mut ws).await["type"], "connection_ack");
    ws
}

/// Reads on until the close frame (within `wait`); the frame, and how many text messages
/// came before it.
async fn ws_close(ws: &mut Ws, wait: Duration) -> (Option<CloseFrame>, usize) {
    let mut texts = 0;
    let frame = timeout(wait, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Text(_))) => texts += 1,
                Some(Ok(_)) => {}
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame in time");
    (frame, texts)
}

/// Resident and peak memory of a process, in kB, from `/proc/PID/status`.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Waits (bounded) until the server has logged `text`.
async fn logged(server: &Server, text: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    while !server.stderr().contains(text) {
        assert!(
            Instant::now() < deadline,
            "the server did not log {text:?} within {wait:?}; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 1: one client holds every connection slot
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Item 2: subscriptions behind a client that does not read
// ---------------------------------------------------------------------------------------------

/// Releases and observations per release of the store of items 2 and 4.
const RELEASES: u32 = 20;
const PER_RELEASE: u32 = 5000;
/// Subscriptions opened by the client that does not read.
const SUBSCRIPTIONS: usize = 30;

/// A client subscribes thirty times to the replay of every release with all its figures
/// (30 x 20 x 0.3 MB of results) and never reads: the server holds at most
/// `--ws-max-buffered-bytes` of them plus one per subscription, its peak memory grows by far
/// less than the results' total, and after the send timeout it closes the connection with
/// 4504 and a reason naming why (read once the client reads again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_a_client_that_does_not_read_is_bounded_in_bytes_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    let server = Server::start(
        &data,
        &[
            "--ws-max-buffered-bytes",
            "1000000",
            "--ws-send-timeout-ms",
            "8000",
            "--idle-timeout-ms",
            "0",
        ],
    )
    .await;
    let pid = server.child.id();
    // One release's results, read the ordinary way, to know their size.
    let one = server
        .query(
            "{ releases(first: 1) { nodes { observations { key period value previousValue } } } }",
            json!({}),
        )
        .await;
    let per_result = one.to_string().len() as u64;
    let total_kb = per_result * u64::from(RELEASES) * SUBSCRIPTIONS as u64 / 1024;
    let (before, _) = memory_kb(pid);

    let mut ws = ws_open("127.0.0.1", server.addr).await;
    for i in 0..SUBSCRIPTIONS {
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "id": format!("s{i}"), "payload": {"query":
                "subscription { releasePublished(afterRevision: 0) { revision release { observations { key period value previousValue } } } }"}}),
        )
        .await;
    }
    logged(&server, "did not read in time", Duration::from_secs(120)).await;
    let (_, peak) = memory_kb(pid);
    let grew = peak.saturating_sub(before);
    println!("results {total_kb} kB in all; peak grew by {grew} kB (from {before} kB)");
    assert!(
        grew < total_kb / 3,
        "peak memory grew by {grew} kB while the client did not read; the results total {total_kb} kB"
    );

    let (frame, texts) = ws_close(&mut ws, Duration::from_secs(30)).await;
    let frame = frame.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 4504, "{frame:?}");
    assert!(frame.reason.contains("did not read"), "{frame:?}");
    assert!(
        texts < RELEASES as usize * SUBSCRIPTIONS,
        "{texts} results were sent to a client that did not read"
    );
    // The server is well and serves others.
    server.query("{ ledger { revision } }", json!({})).await;
}

// ---------------------------------------------------------------------------------------------
// Item 4: cost counts bytes as well as objects
// ---------------------------------------------------------------------------------------------

fn error_code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// On 20 releases x 5,000 figures (~375 KB per event), a page of 1,000 figures each with
/// its inclusion proof's canonical event (a 100-byte query for ~375 MB), and three aliases
/// of every event's canonical text, are refused before they run with LIMIT_EXCEEDED, the
/// estimate and the limit; the server's peak memory stays far below what building them
/// would take. Then thirty aliases of the events' revisions alone are answered without
/// reading the events (peak memory again small, where reading them parses 30 x 7.5 MB).
#[tokio::test]
async fn cost_large_texts_are_refused_by_their_bytes_before_they_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    let server = Server::start(&data, &["--response-cache-entries", "0"]).await;
    let pid = server.child.id();
    let largest_event = server
        .query("{ events(after: 1, first: 1) { nodes { canonical } } }", json!({}))
        .await["events"]["nodes"][0]["canonical"]
        .as_str()
        .unwrap()
        .len() as u64;
    let (before, _) = memory_kb(pid);

    let proofs = r#"{a0: observations(dataset:"SYNTHETIC_TRADE", first:1000){nodes{proof{canonical}}}}"#;
    let aliases: Vec<String> = (0..3)
        .map(|i| format!("a{i}: events(first: 1000) {{ nodes {{ canonical }} }}"))
        .collect();
    let events = format!("{{ {} }}", aliases.join(" "));
    for query in [proofs, events.as_str()] {
        let (status, v) = server.post(query, json!({}), None).await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(error_code(&v), "LIMIT_EXCEEDED", "{v}");
        assert!(v["data"].is_null(), "{v}");
        let ext = &v["errors"][0]["extensions"];
        let estimate = ext["bytes"].as_u64().expect("the estimate in bytes");
        assert_eq!(ext["maxResponseBytes"], 16 * 1024 * 1024, "{v}");
        assert!(estimate >= 3 * largest_event, "{v}");
        let message = v["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&estimate.to_string()) && message.contains("16777216"),
            "{message}"
        );
    }
    let (_, peak) = memory_kb(pid);
    let grew = peak.saturating_sub(before);
    let would_be = 1000 * largest_event / 1024;
    println!("largest event {largest_event} B; peak grew by {grew} kB; building the proofs: {would_be} kB");
    assert!(
        grew < would_be / 10,
        "peak memory grew by {grew} kB for queries that were refused (building one: {would_be} kB)"
    );

    // Revisions alone: answered, and nothing read.
    let aliases: Vec<String> = (0..30)
        .map(|i| format!("a{i}: events(first: 1000) {{ nodes {{ revision }} pageInfo {{ hasNextPage }} }}"))
        .collect();
    let (before, _) = memory_kb(pid);
    let data = server.query(&format!("{{ {} }}", aliases.join(" ")), json!({})).await;
    let nodes = data["a29"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), RELEASES as usize + 1, "{data}");
    assert_eq!(nodes[0]["revision"], 1);
    assert_eq!(nodes[RELEASES as usize]["revision"], RELEASES + 1);
    assert_eq!(data["a0"]["pageInfo"]["hasNextPage"], false);
    let (_, peak) = memory_kb(pid);
    let grew = peak.saturating_sub(before);
    let read_all = 30 * (u64::from(RELEASES) * largest_event) / 1024;
    println!("revisions of every event, 30 times: peak grew by {grew} kB (reading them: {read_all} kB)");
    assert!(
        grew < read_all / 10,
        "peak memory grew by {grew} kB for revisions alone (the events read: {read_all} kB)"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 3: the projection's lock, held by the fast path, and /healthz
// ---------------------------------------------------------------------------------------------

/// With a reader holding the projection's lock and a write waiting for it (the lock lets
/// the write go first, so any new reader queues behind it), `/healthz` and `/readyz` still
/// answer, with the head before the write; once the reader lets go, the write lands and
/// `/healthz` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_healthz_answers_while_a_write_waits_for_the_projection() {
    use tradeledger::http::{run, ServerConfig};
    use tradeledger::ledger::OpenOptions;
    use tradeledger::store::{LogStore, SledStore};
    use tradeledger::Ledger;

    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(&dir.path().join("log")).unwrap());
    let (ledger, _) = Ledger::open(store as std::sync::Arc<dyn LogStore>, OpenOptions::default()).unwrap();
    crate::support::common::load_fixtures(&ledger).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, ledger.clone(), ServerConfig::default(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = |path: &'static str| {
        let client = client.clone();
        async move {
            let resp = client.get(format!("http://{addr}{path}")).send().await;
            match resp {
                Ok(r) => Ok((r.status().as_u16(), r.json::<Value>().await.unwrap())),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    assert_eq!(health("/healthz").await.unwrap().1["revision"], 3);

    // A reader holds the lock (on a thread of its own: the guard is a std lock's).
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = std::sync::mpsc::channel::<()>();
    let reader = {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            let guard = ledger.read();
            held.send(()).unwrap();
            let _ = released.recv_timeout(Duration::from_secs(60));
            drop(guard);
        })
    };
    holding.recv().unwrap();
    // A write, which waits for the lock.
    let write = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let draft =
                crate::support::common::draft(vec![crate::support::common::obs("IPR._T._T", "2031-S1", None, "17")]);
            ledger.publish(draft, None, "test").await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "the write should be waiting for the lock");

    let healthz = health("/healthz").await;
    let readyz = health("/readyz").await;
    release.send(()).unwrap();
    reader.join().unwrap();
    let (status, body) = healthz.expect("/healthz answers while a write waits for the lock");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 3, "{body}");
    let (status, body) = readyz.expect("/readyz answers while a write waits for the lock");
    assert_eq!((status, &body["revision"]), (200, &json!(3)), "{body}");

    let committed = write.await.unwrap().expect("the write lands once the reader is done");
    assert_eq!(committed.revision, 4);
    assert_eq!(health("/healthz").await.unwrap().1["revision"], 4);
    let _ = stop.send(());
    let _ = server.await;
}

/// A fast-path query of thirty aliased pages of 5,000 figures (the projection's lock taken
/// per page, not across all thirty) lets writes through while it runs: of writes sent one
/// after the other once the query is under way, some complete in the first half of the
/// query's time (holding the lock throughout, the first would wait to about its end). It
/// also fails with a lock that lets a new reader in ahead of a waiting writer (std's
/// `RwLock`: its unlock wakes the writer, and the query, still on its core, takes the lock for
/// its next page before the writer gets to run, page after page).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_a_long_aliased_fast_path_query_lets_a_write_through() {
    const WRITER: &str = "writer:lock-secret";
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    // Pages of 5,000 (limits raised to allow them), so that the query runs long enough. Its
    // first run, through async-graphql, may take longer than the default request timeout on
    // a loaded machine: the timeout is not what this test is about.
    let server = Server::start(
        &data,
        &[
            "--request-timeout-ms",
            "100000",
            "--write-tokens",
            WRITER,
            "--response-cache-entries",
            "0",
            "--max-page-size",
            "5000",
            "--max-cost",
            "1000000",
            "--max-response-bytes",
            "200000000",
        ],
    )
    .await;
    let aliases: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "a{i}: observations(dataset: \"SYNTHETIC_TRADE\", first: 5000) {{ nodes {{ key period measure value revisionCount publishedAt release {{ id title status }} }} }}"
            )
        })
        .collect();
    let long = format!("{{ {} }}", aliases.join(" "));
    let fast_answers = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("tradeledger_graphql_fast_path_answers_total "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    // Learned from async-graphql's clean answer; then answered on the fast path.
    let first = server.query(&long, json!({})).await;
    let figure = first["a0"]["nodes"][0].clone();
    let before = fast_answers(server.metrics().await);

    let input = |n: usize| {
        json!({
            "dataset": "SYNTHETIC_TRADE",
            "status": "REVISED",
            "title": format!("SYNTHETIC lock test release {n}"),
            "publishedAt": "2026-01-15T00:00:00Z",
            "source": "SYNTHETIC: tests through the binary",
            "observations": [{ "key": figure["key"], "period": figure["period"], "measure": figure["measure"], "value": format!("{n}.5") }]
        })
    };
    let started = Instant::now();
    let query = {
        let client = server.client.clone();
        let url = server.url.clone();
        let long = long.clone();
        tokio::spawn(async move {
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .json(&json!({ "query": long }))
                .send()
                .await
                .unwrap();
            // The answer is built whole before its head is sent: the query is done here.
            let done = Instant::now();
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap();
            (status, body.len(), done)
        })
    };
    // Once the query is under way (it runs for a second or more in a debug build), writes
    // one after the other until it is done.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut writes = Vec::new();
    while !query.is_finished() {
        let (_, written) = server
            .post(
                crate::proc_support::PUBLISH,
                json!({ "input": input(writes.len()) }),
                Some("lock-secret"),
            )
            .await
            .unwrap();
        assert!(written.get("errors").is_none(), "{written}");
        writes.push(Instant::now());
    }
    let (status, len, query_done) = query.await.unwrap();
    assert_eq!(status, 200);
    assert!(len > 1_000_000, "the long query's answer: {len} bytes");
    let took = query_done - started;
    let first_half = writes.iter().filter(|w| **w - started < took / 2).count();
    let during = writes.iter().filter(|w| **w < query_done).count();
    println!(
        "query took {took:?}; of {} writes, {during} were done before it, {first_half} in its first half",
        writes.len()
    );
    assert_eq!(
        fast_answers(server.metrics().await),
        before + 1,
        "the long query ran on the fast path"
    );
    // Holding the lock for the whole query, the first write waits for all of it (and lands
    // about when it ends); per root field, writes go through between pages.
    assert!(
        first_half >= 1,
        "no write was done in the first half of the fast-path query ({took:?}); {during} before its end"
    );
}
