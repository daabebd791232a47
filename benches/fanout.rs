//! Fan-out latency: N WebSocket subscribers to `releasePublished`, one publish over HTTP;
//! reports the time from the publish being acknowledged to each subscriber being notified.
//!
//! The server runs as a separate process (the release binary), so that the client's and the
//! server's sockets do not share one process's file-descriptor limit:
//!
//!   cargo build --release && cargo bench --bench fanout            # 1,000 and 10,000
//!   FANOUT=2000,5000 cargo bench --bench fanout

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SECRET: &str = "fanout-bench-secret";

fn start_server(dir: &std::path::Path) -> (Server, String) {
    let bin = std::env::var("TRADELEDGER_BIN")
        .unwrap_or_else(|_| format!("{}/target/release/tradeledger", env!("CARGO_MANIFEST_DIR")));
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--max-ws-connections",
            "30000",
            // Every subscriber connects from 127.0.0.1.
            "--max-connections-per-peer",
            "30000",
        ])
        .arg("--data-dir")
        .arg(dir)
        .arg("--fixtures")
        .arg(format!("{}/fixtures", env!("CARGO_MANIFEST_DIR")))
        .arg("--write-tokens")
        .arg(format!("bench:{SECRET}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin} (run `cargo build --release` first): {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    (Server(child), addr)
}

/// A small read buffer: tungstenite zero-fills its read buffer (128 KiB by default) on every
/// poll, which at 10,000 connections costs the client, sharing the server's cores, more than
/// the reading itself. Notifications are a few dozen bytes.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

async fn subscriber_count(http: &reqwest::Client, addr: &str) -> u64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tradeledger_subscribers "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(dir.path());
    let http = reqwest::Client::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    let setup = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(client_config()), false)
            .await
            .expect("connect");
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            ws.send(Message::text(json!({"type": "connection_init"}).to_string()))
                .await
                .unwrap();
            let _ack = ws.next().await;
            let sub = json!({"type": "subscribe", "id": "1",
                "payload": {"query": "subscription { releasePublished { revision } }"}});
            ws.send(Message::text(sub.to_string())).await.unwrap();
            ready.send(()).await.unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    if t.contains("\"next\"") {
                        // The socket is handed back and kept open until every subscriber has
                        // been notified: closing it here would make the server tear down
                        // connections while it is still notifying the others.
                        return (Instant::now(), ws);
                    }
                }
            }
            panic!("connection ended before the notification");
        }));
    }
    for _ in 0..n {
        ready_rx.recv().await.unwrap();
    }
    // Wait until the server has every subscription registered.
    while subscriber_count(&http, &addr).await < n as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let setup = setup.elapsed();
    let mutation = json!({"query": "mutation($r: ReleaseInput!) { publishRelease(input: $r) { revision } }",
        "variables": {"r": {"dataset": "KR_KNOWLEDGE_SERVICES", "status": "REVISED",
            "title": "SYNTHETIC fan-out bench", "publishedAt": "2026-01-01T00:00:00Z",
            "observations": [{"key": "_T._T._T", "period": "2026-S1", "value": "1"}]}}});
    let resp = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(SECRET)
        .json(&mutation)
        .send()
        .await
        .unwrap();
    let acked = Instant::now();
    assert!(resp.status().is_success());
    let mut received = Vec::with_capacity(n);
    let mut open = Vec::with_capacity(n);
    for t in tasks {
        let (at, ws) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("notified in time")
            .unwrap();
        received.push(at);
        open.push(ws);
    }
    drop(open);
    let mut lat: Vec<f64> = received
        .iter()
        .map(|t| t.saturating_duration_since(acked).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "fanout n={n:>6}: notified {:>6}, after ack p50 {:>8.1} ms, p99 {:>8.1} ms, last {:>8.1} ms (setup {:.1} s)",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1],
        setup.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; filters and other flags are ignored here.
    let sizes: Vec<usize> = std::env::var("FANOUT")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(run(n));
    }
}
