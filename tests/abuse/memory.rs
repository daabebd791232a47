//! Memory comes back after big answers: WebSocket clients that subscribe to the replay of
//! every release with all its figures, many times over, and never read, pin no memory once
//! they are gone. The server keeps nothing of theirs, and its allocator (jemalloc, with
//! background threads) gives the freed pages back, where glibc's malloc kept them resident.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{client_async, MaybeTlsStream, WebSocketStream};

use crate::proc_support::{generated_store, Server};
use crate::support::ws::{recv as ws_recv, send as ws_send};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const RELEASES: u32 = 20;
const PER_RELEASE: u32 = 5000;
const CONNECTIONS: usize = 4;
const SUBSCRIPTIONS: usize = 30;
/// Each subscription replays every release with all its figures.
const REPLAY: &str = "subscription { releasePublished(afterRevision: 0) \
                      { revision release { observations { key period value previousValue } } } }";
/// Bytes of results a connection may have waiting (`--ws-max-buffered-bytes`).
const BUDGET: u64 = 4_000_000;
/// Guards against a server that never gets there; none of them bounds a duration measured.
const WAIT: Duration = Duration::from_secs(180);

/// Resident memory of a process, in kB, from `/proc/PID/status`.
fn resident_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("VmRSS in {status}"))
}

/// A sample of `/metrics` without labels, e.g. `tradeledger_websocket_connections`.
async fn metric(server: &Server, name: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{text}"))
}

/// Waits (bounded by [`WAIT`]) until the server has no WebSocket and no subscription stream.
async fn connections_gone(server: &Server) {
    let deadline = Instant::now() + WAIT;
    loop {
        let sockets = metric(server, "tradeledger_websocket_connections").await;
        let streams = metric(server, "tradeledger_subscribers").await;
        if sockets == 0.0 && streams == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server still had {sockets} WebSockets and {streams} subscription streams {WAIT:?} after the clients closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded by [`WAIT`]) until the server has logged `text` `times` times.
async fn logged(server: &Server, text: &str, times: usize) {
    let deadline = Instant::now() + WAIT;
    while server.stderr().matches(text).count() < times {
        assert!(
            Instant::now() < deadline,
            "the server did not log {text:?} {times} times within {WAIT:?}; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An initialised graphql-transport-ws connection whose socket takes in little (a 4 KiB
/// receive buffer), so that the server's sends block as soon as the client stops reading.
async fn small_window_ws(server: &Server) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.expect("connect");
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio::time::timeout(WAIT, client_async(request, MaybeTlsStream::Plain(stream)))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    ws_send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(ws_recv(&mut ws).await["type"], "connection_ack");
    ws
}

fn subscribe(id: &str) -> Value {
    json!({"type": "subscribe", "id": id, "payload": {"query": REPLAY}})
}

/// Four clients open thirty replays of every release each and never read. The server closes
/// them when its sends time out, the clients go, and once the server has let go of the
/// connections its resident memory comes back to what it was before, give or take what the
/// connections were allowed to hold at once (their byte budgets): the store keeps the pages
/// of the log the replays read, and glibc's malloc kept all it had at the peak, twice that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_comes_back_after_non_reading_subscribers_close() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    let budget = BUDGET.to_string();
    let server = Server::start(
        &data,
        &[
            "--ws-max-buffered-bytes",
            &budget,
            "--ws-send-timeout-ms",
            "8000",
            "--idle-timeout-ms",
            "0",
        ],
    )
    .await;
    let pid = server.child.id();
    server.query("{ ledger { revision } }", json!({})).await;
    let baseline = resident_kb(pid);
    // One release's results, read the ordinary way, to know their size.
    let one = server
        .query(
            "{ releases(first: 1) { nodes { observations { key period value previousValue } } } }",
            json!({}),
        )
        .await;
    let result_bytes = one.to_string().len() as u64;

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut ws = small_window_ws(&server).await;
        for i in 0..SUBSCRIPTIONS {
            ws_send(&mut ws, subscribe(&format!("s{i}"))).await;
        }
        clients.push(ws);
    }
    // Every connection is closed by the server for not reading: by then its subscriptions
    // have built what they could.
    logged(
        &server,
        "closing a WebSocket whose client did not read in time",
        CONNECTIONS,
    )
    .await;
    let under_attack = resident_kb(pid);
    drop(clients);
    connections_gone(&server).await;

    // What comes back is the allocator's affair, so it is polled for (bounded), not expected
    // at once.
    let asked_kb = result_bytes * u64::from(RELEASES) * (CONNECTIONS * SUBSCRIPTIONS) as u64 / 1024;
    let allowed = baseline + CONNECTIONS as u64 * BUDGET / 1024;
    let deadline = Instant::now() + WAIT;
    let mut resident = resident_kb(pid);
    while resident > allowed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        resident = resident_kb(pid);
    }
    println!(
        "baseline {baseline} kB, {under_attack} kB under attack, {resident} kB after the close; \
         results asked for {asked_kb} kB, one result {result_bytes} bytes"
    );
    assert!(
        resident <= allowed,
        "{WAIT:?} after the server let go of the connections it was still resident at {resident} kB, against \
         {baseline} kB before the attack (allowed: {allowed} kB; {under_attack} kB under attack)"
    );
    // The server is well and serves others.
    server.query("{ ledger { revision } }", json!({})).await;
}
