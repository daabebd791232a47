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

// ---------------------------------------------------------------------------------------------
// Class 3: heavy work must not freeze everyone, and the timeout cancels it
// ---------------------------------------------------------------------------------------------

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

/// Waits until the process `pid` stops using CPU: two samples of its CPU time, `WINDOW`
/// apart, equal. Returns how long after the call that was seen, or `None` if its CPU time
/// still grew in every window until `until`.
async fn cpu_quiet_before(pid: u32, until: Instant) -> Option<Duration> {
    const WINDOW: Duration = Duration::from_millis(200);
    let started = Instant::now();
    let mut before = cpu_time(pid);
    loop {
        tokio::time::sleep(WINDOW).await;
        let now = cpu_time(pid);
        if now == before {
            return Some(started.elapsed());
        }
        if Instant::now() >= until {
            return None;
        }
        before = now;
    }
}

/// While three heavy queries run (on the query pool's slow lane), `/healthz` and a cheap
/// uncached query are answered: each probe is answered while every heavy request sent before
/// it is still running, none of them finishing in between. Without the pool (operations
/// run on the I/O threads, in one poll) a probe waits for a heavy query to end.
///
/// No latency is compared with a constant: a probe counts as clean when the three heavy
/// requests were in flight when it was sent and none had completed when its answer came. A
/// heavy query that finishes during a probe makes the probe dirty, and makes the heavy
/// query heavier (more aliases, up to the limit), so a fast machine only makes the clean
/// probes come easier. The test passes at `CLEAN` clean probes and fails at `DIRTY` dirty
/// ones (a protected server has about one dirty probe in a hundred).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_queries_do_not_freeze_health_or_cheap_queries() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    const HEAVY: usize = 3;
    const CLEAN: usize = 30;
    const DIRTY: usize = 15;
    let store = generated_store().await;
    let server = Server::start(store.path(), &["--response-cache-entries", "0"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Heavy requests sent and not yet answered, and heavy requests answered so far.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let aliases = Arc::new(AtomicUsize::new(5));
    let mut heavy = Vec::new();
    for _ in 0..HEAVY {
        let (client, url) = (server.client.clone(), server.url.clone());
        let (stop, in_flight, completed, aliases) =
            (stop.clone(), in_flight.clone(), completed.clone(), aliases.clone());
        heavy.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while !stop.load(SeqCst) {
                let n = aliases.load(SeqCst);
                let started = Instant::now();
                in_flight.fetch_add(1, SeqCst);
                let resp = client
                    .post(&url)
                    .json(&json!({ "query": heavy_query(n) }))
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await
                    .expect("heavy request (no answer within 600 s)");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.expect("heavy body");
                completed.fetch_add(1, SeqCst);
                in_flight.fetch_sub(1, SeqCst);
                assert_eq!(status, 200, "{}", &body.to_string()[..body.to_string().len().min(500)]);
                assert!(body.get("errors").is_none(), "heavy query failed");
                done.push((n, started.elapsed()));
            }
            done
        }));
    }
    let health = format!("http://{}/healthz", server.addr);
    let (mut clean, mut dirty, mut skipped) = (Vec::new(), Vec::new(), 0usize);
    while clean.len() < CLEAN && dirty.len() < DIRTY {
        assert!(
            heavy.iter().all(|h| !h.is_finished()),
            "a heavy query failed while probing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let done_before = completed.load(SeqCst);
        if in_flight.load(SeqCst) < HEAVY {
            // A heavy client is between two requests: no probe now.
            skipped += 1;
            continue;
        }
        let started = Instant::now();
        let resp = server.client.get(&health).send().await.expect("healthz");
        assert_eq!(resp.status(), 200);
        let data = server.query("{ ledger { revision } }", json!({})).await;
        assert!(data["ledger"]["revision"].as_u64().unwrap() > 1000);
        let took = started.elapsed();
        let finished_meanwhile = completed.load(SeqCst) - done_before;
        if finished_meanwhile == 0 {
            clean.push(took);
        } else {
            dirty.push((took, finished_meanwhile));
            // The heavy queries are not heavy enough to outlast a probe on this machine.
            let n = aliases.load(SeqCst);
            aliases.store((n * 2).min(30), SeqCst);
        }
    }
    stop.store(true, SeqCst);
    let mut heavy_times = Vec::new();
    for h in heavy {
        heavy_times.extend(h.await.expect("heavy task"));
    }
    eprintln!(
        "probes: {} clean {clean:?}, {} dirty (took, heavy queries finished meanwhile) {dirty:?}, \
         {skipped} skipped; heavy queries (aliases, took) {heavy_times:?}",
        clean.len(),
        dirty.len()
    );
    assert!(
        clean.len() >= CLEAN,
        "only {} probes were answered while the heavy queries ran; {} waited for a heavy query \
         to finish (took, heavy queries finished meanwhile): {dirty:?}",
        clean.len(),
        dirty.len()
    );
}

/// A query past a 200 ms timeout is answered 503 before it could have run to the end (the
/// same query with a sixth of the work takes longer without a timeout), and the server then
/// stops using CPU long before the whole query would have ended.
#[tokio::test]
async fn a_query_past_its_timeout_is_answered_503_and_stops_using_cpu() {
    // heavy_query(30) does six times the work of heavy_query(5).
    let yardstick = full_run(5).await;
    let store = generated_store().await;
    let server = Server::start(store.path(), &["--request-timeout-ms", "200"]).await;
    let pid = server.child.id();
    let started = Instant::now();
    let resp = server
        .client
        .post(&server.url)
        .json(&json!({ "query": heavy_query(30) }))
        .send()
        .await
        .expect("heavy request");
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
    assert!(
        took < yardstick,
        "the 503 came after {took:?}, later than a sixth of the query takes in full \
         ({yardstick:?}): the answer waited for the work"
    );
    // Left running, the work would go on for about six yardsticks from `started`; it must
    // stop well before: the server's CPU time stops growing within two yardsticks.
    let quiet = cpu_quiet_before(pid, started + 2 * yardstick).await;
    assert!(
        quiet.is_some(),
        "the server's CPU time still grew {:?} after the timeout (a sixth of the query takes \
         {yardstick:?} in full): the work went on",
        started.elapsed()
    );
}

/// Beyond the running and waiting bounds of the query pool, requests get 503 with Retry-After.
#[tokio::test]
async fn beyond_the_admission_bound_requests_get_503_with_retry_after() {
    let store = generated_store().await;
    let server = Server::start(
        store.path(),
        &[
            "--max-concurrent-queries",
            "1",
            "--max-queued-queries",
            "1",
            "--response-cache-entries",
            "0",
        ],
    )
    .await;
    let requests = (0..6).map(|_| {
        let (client, url) = (server.client.clone(), server.url.clone());
        async move {
            let resp = client
                .post(&url)
                .json(&json!({ "query": heavy_query(3) }))
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap();
            (status, retry_after, body)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let refused: Vec<_> = results.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(results.iter().any(|(s, _, _)| *s == 200), "some were served");
    assert!(
        refused.len() >= 3,
        "at most 2 admitted at once; got {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for (_, retry_after, body) in refused {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains("busy"),
            "{body}"
        );
    }
    // Once the load is gone, queries are served again.
    server.query("{ ledger { revision } }", json!({})).await;
}

// ---------------------------------------------------------------------------------------------
// Class 4: slow clients, too many connections, shutdown
// ---------------------------------------------------------------------------------------------

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

/// A connection whose request body stops arriving is closed after the idle timeout.
#[tokio::test]
async fn a_stalled_body_is_disconnected_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The header-read timeout is off and the request timeout far away: only the idle timeout
    // can close this connection.
    let server = Server::start(
        dir.path(),
        &[
            "--idle-timeout-ms",
            "500",
            "--header-read-timeout-ms",
            "0",
            "--request-timeout-ms",
            "600000",
        ],
    )
    .await;
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

// ---------------------------------------------------------------------------------------------
// Class 5: WebSocket bounds per connection
// ---------------------------------------------------------------------------------------------

/// One connection opening 101 subscriptions gets an `error` (LIMIT_EXCEEDED) for the 101st and
/// stays usable: once one completes, a new one is accepted.
#[tokio::test]
async fn the_101st_subscription_on_one_connection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut ws = ws_connect(&server).await;
    let query = format!("subscription {{ observationRevised(dataset: \"{DATASET}\") {{ value }} }}");
    for i in 1..=101 {
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "id": i.to_string(), "payload": {"query": query}}),
        )
        .await;
    }
    let error = ws_recv(&mut ws).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "101", "{error}");
    assert_eq!(error["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{error}");
    assert!(
        error["payload"][0]["message"].as_str().unwrap().contains("100"),
        "{error}"
    );

    ws_send(&mut ws, json!({"type": "complete", "id": "1"})).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "id": "102", "payload": {"query": query}}),
    )
    .await;
    ws_send(&mut ws, json!({"type": "ping"})).await;
    // Had 102 been refused, its error would come before the pong.
    assert_eq!(ws_recv(&mut ws).await["type"], "pong");
}

/// A query over WebSocket gets the same timeout as over HTTP: an `error` with LIMIT_EXCEEDED,
/// before the query could have run to the end.
#[tokio::test]
async fn a_slow_query_over_websocket_times_out() {
    // heavy_query(30) does six times the work of heavy_query(5).
    let yardstick = full_run(5).await;
    let store = generated_store().await;
    let server = Server::start(store.path(), &["--request-timeout-ms", "200"]).await;
    let mut ws = ws_connect(&server).await;
    let started = Instant::now();
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "id": "q", "payload": {"query": heavy_query(30)}}),
    )
    .await;
    let answer = ws_recv(&mut ws).await;
    assert_eq!(
        answer["type"],
        "error",
        "{}",
        &answer.to_string()[..answer.to_string().len().min(300)]
    );
    assert_eq!(answer["id"], "q");
    assert_eq!(answer["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{answer}");
    let took = started.elapsed();
    assert!(
        took < yardstick,
        "the error came after {took:?}, later than a sixth of the query takes in full \
         ({yardstick:?}): the answer waited for the work"
    );
}
