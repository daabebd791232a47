//! A real Varnish in front of the server, with the VCL shipped in `deploy/varnish/`: pinned
//! answers are hits that never reach the server again, head answers reach it about once per
//! `max-age`, and a publish purges the dataset's answers so that the next read shows the new
//! figure.
//!
//! Needs `varnishd` with the xkey vmod (Debian's `varnish` and `varnish-modules`; `bash
//! .ci/setup` installs them), at `/usr/sbin/varnishd` or `TRADELEDGER_VARNISHD`. Without it
//! the tests fail, unless `TRADELEDGER_SKIP_VARNISH=1` says to skip them (never under
//! `CI=true`).

use crate::support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const PINNED_QUERY: &str = r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: { revision: 2 }) { value revision } }"#;
const HEAD_QUERY: &str =
    r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { value revision } }"#;
/// Longest wait for Varnish to start (it compiles the VCL with the C compiler) and for a
/// purged answer to be replaced; generous, for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// varnishd, or `None` when the tests are to be skipped.
fn varnishd() -> Option<PathBuf> {
    let path = std::env::var_os("TRADELEDGER_VARNISHD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/varnishd"));
    if Command::new(&path).arg("-V").output().is_ok_and(|o| o.status.success()) {
        return Some(path);
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if !ci && std::env::var("TRADELEDGER_SKIP_VARNISH").as_deref() == Ok("1") {
        eprintln!("skipped: TRADELEDGER_SKIP_VARNISH=1");
        return None;
    }
    panic!(
        "varnishd ({}) does not run: run `bash .ci/setup` (installs Debian's varnish and \
         varnish-modules), set TRADELEDGER_VARNISHD to the binary, or set TRADELEDGER_SKIP_VARNISH=1 \
         to skip these tests",
        path.display()
    );
}

/// A varnishd in the foreground, killed when dropped.
struct Varnish {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Varnish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Varnish {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts varnishd with the shipped VCL pointed at `backend_port`, on a free port.
    async fn start(binary: PathBuf, backend_port: u16, port: u16) -> Varnish {
        let dir = tempfile::tempdir().unwrap();
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/varnish/tradeledger.vcl"),
        )
        .unwrap();
        assert!(shipped.contains(".port = \"8000\";"));
        let vcl = shipped.replace(".port = \"8000\";", &format!(".port = \"{backend_port}\";"));
        let vcl_path = dir.path().join("tradeledger.vcl");
        std::fs::write(&vcl_path, vcl).unwrap();
        let log = std::fs::File::create(dir.path().join("varnishd.log")).unwrap();
        // -F: foreground; -n: a working directory of its own; -j none: no privilege
        // separation (so the temp directory need not be readable by another user); -T none:
        // no management port.
        let child = Command::new(&binary)
            .args(["-F", "-j", "none", "-T", "none", "-s", "malloc,32m"])
            .arg("-n")
            .arg(dir.path().join("work"))
            .arg("-a")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-f")
            .arg(&vcl_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start varnishd");
        let mut v = Varnish { child, port, _dir: dir };
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", v.url())).send().await {
                if r.status().is_success() {
                    return v;
                }
            }
            if let Ok(Some(status)) = v.child.try_wait() {
                panic!("varnishd exited ({status}): {}", v.log());
            }
            assert!(start.elapsed() < DEADLINE, "varnishd did not answer: {}", v.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("varnishd.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GraphQL GETs the server has answered (any status), from its `/metrics`.
async fn origin_gets(app: &TestApp) -> u64 {
    app.metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("tradeledger_http_requests_total{")
                && l.contains("route=\"/graphql\"")
                && l.contains("method=\"GET\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn get_through(client: &reqwest::Client, varnish: &Varnish, query: &str) -> (reqwest::header::HeaderMap, Value) {
    let r = client
        .get(format!("{}/graphql", varnish.url()))
        .query(&[("query", query)])
        .header("accept", "application/json")
        .send()
        .await
        .expect("request through varnish");
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    (headers, r.json().await.unwrap())
}

fn age(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("age")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

/// A pinned answer is a hit (`Age` > 0) and does not reach the server again; a head answer
/// reaches it about once per `max-age`, however often clients ask.
#[tokio::test]
async fn varnish_serves_pinned_answers_and_refreshes_head_answers_by_max_age() {
    let Some(binary) = varnishd() else { return };
    let app = spawn_app_with(
        |c| {
            c.http_caching.max_age = 1;
            c.http_caching.stale_while_revalidate = 0;
        },
        true,
    )
    .await;
    let varnish = Varnish::start(binary, app.addr.port(), free_port()).await;
    let client = reqwest::Client::new();

    let before = origin_gets(&app).await;
    let (_, first) = get_through(&client, &varnish, PINNED_QUERY).await;
    assert_eq!(first["data"]["observation"]["revision"], 2, "{first}");
    assert_eq!(origin_gets(&app).await, before + 1);
    // Age counts whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..5 {
        let (headers, body) = get_through(&client, &varnish, PINNED_QUERY).await;
        assert_eq!(body, first);
        assert!(age(&headers) > 0, "a hit: {headers:?}");
        assert!(headers.get("xkey").is_none(), "surrogate keys stay in the cache");
    }
    assert_eq!(
        origin_gets(&app).await,
        before + 1,
        "the pinned answer never reached the server again"
    );

    // The head answer over a few seconds of steady asking.
    let before = origin_gets(&app).await;
    let start = Instant::now();
    let mut asked = 0u64;
    while start.elapsed() < Duration::from_secs(4) {
        get_through(&client, &varnish, HEAD_QUERY).await;
        asked += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = start.elapsed().as_secs() + 1;
    let reached = origin_gets(&app).await - before;
    assert!(
        reached >= 2,
        "the head answer expired and was fetched again ({reached} of {asked})"
    );
    assert!(
        reached <= seconds + 2,
        "about once per max-age of 1 s: {reached} origin requests for {asked} over {seconds} s"
    );
}

/// After a publish, the server purges the dataset's keys in Varnish, and the next read
/// through Varnish shows the new figure although its head answer had an hour to live.
#[tokio::test]
async fn a_publish_purges_varnish_and_the_next_read_is_new() {
    let Some(binary) = varnishd() else { return };
    let port = free_port();
    let app = spawn_app_with(
        |c| {
            c.http_caching.max_age = 3600;
            c.purge_urls = vec![format!("http://127.0.0.1:{port}/")];
        },
        true,
    )
    .await;
    let varnish = Varnish::start(binary, app.addr.port(), port).await;
    let client = reqwest::Client::new();
    let (_, old) = get_through(&client, &varnish, HEAD_QUERY).await;
    let (_, pinned) = get_through(&client, &varnish, PINNED_QUERY).await;
    let (headers, again) = get_through(&client, &varnish, HEAD_QUERY).await;
    assert_eq!(again, old);
    assert!(
        headers
            .get("x-varnish")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(' ')),
        "a hit"
    );

    let v = app
        .gql_write(
            PUBLISH,
            json!({ "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000c101", "_T._T._T", "2025-S1", "-4700") }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let before = origin_gets(&app).await;
    let start = Instant::now();
    loop {
        let (_, now) = get_through(&client, &varnish, HEAD_QUERY).await;
        if now["data"]["observation"]["value"] == "-4700" {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the new figure never came through varnish: {now}; {}",
            varnish.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pinned answer was not purged: still a hit.
    let (_, still) = get_through(&client, &varnish, PINNED_QUERY).await;
    assert_eq!(still, pinned);
    assert_eq!(
        origin_gets(&app).await,
        before + 1,
        "only the purged head answer was fetched"
    );
}
