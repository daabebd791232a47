//! Classes 3, 4 and 5 of the hostile-clients issue: heavy queries that froze everyone and ran
//! past their timeout, slow and numerous connections, a SIGTERM that never finished, and a
//! WebSocket without bounds per connection.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use crate::proc_support::{copy_dir, import, run_cli, Server, DATASET};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

mod heavy;
mod slow_clients;
mod websocket;

/// Releases and observations per release of the generated store: big enough that the heavy
/// query below runs for seconds in a debug build, small enough to import quickly.
const RELEASES: &str = "1000";
const OBSERVATIONS: &str = "20";

/// `aliases` (30 at most, the default limit) copies of the release list with each release's
/// event hash, which is read from the log: a thousand objects each, under the field, alias and
/// page-size limits. In a debug build one copy takes about half a second.
fn heavy_query(aliases: usize) -> String {
    let aliases: Vec<String> = (0..aliases)
        .map(|i| format!("a{i}: releases(first: 1000) {{ nodes {{ hash }} }}"))
        .collect();
    format!("{{ {} }}", aliases.join(" "))
}

/// A store of generated releases, made once per test binary and copied for each test
/// (a store is locked by the server that uses it).
async fn generated_store() -> TempDir {
    static TEMPLATE: OnceCell<TempDir> = OnceCell::const_new();
    let template = TEMPLATE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join("releases.json");
            let out = run_cli([
                "generate".as_ref(),
                "--releases".as_ref(),
                RELEASES.as_ref(),
                "--observations-per-release".as_ref(),
                OBSERVATIONS.as_ref(),
                file.as_os_str(),
            ])
            .await;
            assert_eq!(out.code(), Some(0), "generate failed: {out:?}");
            import(&dir.path().join("data"), &[file]).await;
            dir
        })
        .await;
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(&template.path().join("data"), copy.path());
    copy
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let used: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(used * 1000 / ticks)
}

/// Sends `kill -TERM pid`.
fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Raw HTTP/1.1: writes `request` and reads until the connection closes or `wait` passes.
async fn raw_exchange(stream: &mut TcpStream, request: &[u8], wait: Duration) -> String {
    stream.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let _ = timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads one response with a `content-length` from a keep-alive connection.
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(Duration::from_secs(60), async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before a full response");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                if got.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    })
    .await
    .expect("no whole response within 60 s")
}

/// True once the server has closed `stream` (EOF or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        timeout(wait, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await,
        Ok(())
    )
}

async fn ws_connect(server: &Server) -> Ws {
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = timeout(Duration::from_secs(60), connect_async(request))
        .await
        .expect("no WebSocket upgrade within 60 s")
        .expect("upgrade");
    ws_send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(ws_recv(&mut ws).await["type"], "connection_ack");
    ws
}

async fn ws_send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.expect("send");
}

/// The next JSON message (server pings skipped); panics on close or after 60 s (a hang guard).
async fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        let msg = timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("no WebSocket message within 60 s")
            .expect("the connection is open")
            .expect("a frame");
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ping" {
                    continue;
                }
                return v;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Starts a server over a copy of the generated store with `args`, and returns how long
/// `heavy_query(aliases)` takes there, run to the end (it must succeed): the yardstick of the
/// timeout tests, measured under the same load as they run.
async fn full_run(aliases: usize) -> Duration {
    let store = generated_store().await;
    let server = Server::start(store.path(), &["--response-cache-entries", "0"]).await;
    let started = Instant::now();
    let resp = server
        .client
        .post(&server.url)
        .json(&json!({ "query": heavy_query(aliases) }))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("the full heavy request (no answer within 600 s)");
    let status = resp.status();
    let body: Value = resp.json().await.expect("heavy body");
    let took = started.elapsed();
    assert_eq!(status, 200, "{}", &body.to_string()[..body.to_string().len().min(500)]);
    assert!(body.get("errors").is_none(), "the full heavy query failed");
    took
}
