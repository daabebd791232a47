//! What an operations team reads: `/metrics` in both of its formats, checked by Prometheus's
//! own parsers (`promtool check metrics`, and the Python client's parsers through
//! `tests/tools/check_metrics.py`), the metrics address and token, and the request log read
//! from the real binary's standard error.
//!
//! `promtool` (Debian's `prometheus`) and the Python `prometheus-client` are installed by
//! `bash .ci/setup`; without them the metrics tests fail, naming the fix.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::proc_support::{release_input, Server, PUBLISH};
use crate::support::ws::{self, Ws};
use crate::support::*;
use tradeledger::auth::Token;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_SCRAPE: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Runs `program args` with `input` on stdin; its exit status and output. Panics, naming the
/// setup step, when the program is missing.
fn run_tool(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("cannot run `{program}` ({e}): run `bash .ci/setup` (it installs promtool and prometheus-client)")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .expect("write the exposition");
    let out = child.wait_with_output().expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The Python client's parser for `format` over `text`: the families it read (`name type
/// samples` lines), or a panic with what it said.
fn python_parse(format: &str, text: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/check_metrics.py");
    let (ok, out) = run_tool("python3", &[script.to_str().unwrap(), format], text);
    assert!(
        !out.contains("No module named 'prometheus_client'"),
        "the Python prometheus-client is missing: run `bash .ci/setup`"
    );
    assert!(ok, "prometheus_client's {format} parser: {out}\n---\n{text}");
    out
}

async fn get_metrics(app: &TestApp, accept: Option<&str>, token: Option<&str>) -> (u16, String, String) {
    let mut req = app.client.get(format!("http://{}/metrics", app.addr));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

/// Families every exposition has once a request was served and the cache was used: counters
/// with their samples, a histogram and a gauge.
const FAMILIES: [&str; 5] = [
    "tradeledger_http_requests counter",
    "tradeledger_response_cache_hits counter",
    "tradeledger_graphql_fast_path_answers counter",
    "tradeledger_http_request_duration_seconds histogram",
    "tradeledger_ledger_head_revision gauge",
];

/// `/metrics` is valid Prometheus text 0.0.4 by default (counter families named with
/// `_total`, no `# EOF`), for `promtool check metrics` and the Python client's parser, and
/// valid OpenMetrics 1.0 (`# EOF`, `_total` on samples only) when `Accept` asks for it, as
/// Prometheus does, for the Python client's strict OpenMetrics parser.
#[tokio::test]
async fn metrics_are_valid_in_both_formats() {
    let app = spawn_app().await;
    let q = "{ observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"IPR._T._T\", period: \"2025-S1\") { value } }";
    for _ in 0..3 {
        assert!(app.gql(q, json!({})).await.get("errors").is_none());
    }

    let (status, ct, text) = get_metrics(&app, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE tradeledger_http_requests_total counter\n"),
        "{text}"
    );
    let (ok, out) = run_tool("promtool", &["check", "metrics"], &text);
    assert!(ok, "promtool check metrics: {out}\n---\n{text}");
    let families = python_parse("prometheus", &text);
    for f in FAMILIES {
        assert!(families.contains(&format!("{f} ")), "no `{f}` family in:\n{families}");
    }

    for accept in [OPENMETRICS, PROMETHEUS_SCRAPE] {
        let (status, ct, text) = get_metrics(&app, Some(accept), None).await;
        assert_eq!(status, 200);
        assert_eq!(ct, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE tradeledger_http_requests counter\n"), "{text}");
        let families = python_parse("openmetrics", &text);
        for f in FAMILIES {
            assert!(families.contains(&format!("{f} ")), "no `{f}` family in:\n{families}");
        }
    }
    // Accepted less than text/plain, or not at all: Prometheus text.
    for accept in [
        "text/plain;q=1, application/openmetrics-text;q=0.5",
        "application/openmetrics-text;q=0, */*",
        "text/html,application/xhtml+xml,*/*;q=0.8",
    ] {
        let (_, ct, _) = get_metrics(&app, Some(accept), None).await;
        assert!(ct.starts_with("text/plain; version=0.0.4"), "Accept {accept}: {ct}");
    }
}

/// With `--read-tokens`, `/metrics` on the main address needs a read (or write) token like
/// every read: 401 with `WWW-Authenticate: Bearer` without one or with a wrong one.
#[tokio::test]
async fn metrics_need_a_read_token_when_reads_do() {
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    for token in [None, Some("not-a-token-at-all")] {
        let resp = app
            .client
            .get(format!("http://{}/metrics", app.addr))
            .header(
                "authorization",
                token.map(|t| format!("Bearer {t}")).unwrap_or_default(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "token {token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body = resp.text().await.unwrap();
        assert!(!body.contains("tradeledger_"), "{body}");
    }
    for token in [READ_SECRET, WRITE_SECRET] {
        let (status, _, text) = get_metrics(&app, None, Some(token)).await;
        assert_eq!(status, 200);
        assert!(text.contains("tradeledger_ledger_head_revision"));
    }
    // Without read tokens, /metrics stays public.
    let open = spawn_app().await;
    assert_eq!(get_metrics(&open, None, None).await.0, 200);
}

/// The address `metrics on ADDR` printed for `--metrics-listen`.
fn metrics_addr(server: &Server) -> String {
    let stdout = server.stdout();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("no `metrics on` line in {stdout}"))
        .trim()
        .to_owned()
}

/// `--metrics-listen` serves `/metrics` (both formats) on its own address without a token,
/// and nothing else there, while the main address keeps it behind `--read-tokens`.
#[tokio::test]
async fn metrics_listen_serves_metrics_on_another_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--read-tokens",
            "viewer:metrics-read-secret",
        ],
    )
    .await;
    let addr = metrics_addr(&server);
    assert_ne!(addr, server.addr.to_string());
    let resp = server
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("tradeledger_ledger_head_revision"));
    let om = server
        .client
        .get(format!("http://{addr}/metrics"))
        .header("accept", OPENMETRICS)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    for path in ["/graphql", "/healthz", "/"] {
        let status = server
            .client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path} on the metrics address");
    }
    let main = server
        .client
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 401);
}

// ---------------------------------------------------------------------------------------
// The request log

/// The JSON lines of the request log in `stderr` (the other lines are `tracing`'s).
fn access_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("path").is_some() && v.get("duration_ms").is_some())
        .collect()
}

const QUERY_MARKER: &str = "marker_in_the_query_text";
const VARIABLE_MARKER: &str = "VARIABLE-VALUE-7d1e";
const LOG_SECRET: &str = "access-log-secret-4f2a";

fn marked_query() -> String {
    format!(
        "query Figure($k: String!) {{ {QUERY_MARKER}: observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $k, period: \"2025-S1\") {{ value }} }}"
    )
}

async fn ws_operation(server: &Server, query: &str) -> Ws {
    let url = format!("ws://{}/graphql/ws", server.addr);
    let (mut socket, _) = ws::try_connect(&url, Some(ws::TRANSPORT), None).await.unwrap();
    ws::send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "token": LOG_SECRET } }),
    )
    .await;
    assert_eq!(ws::recv(&mut socket).await["type"], "connection_ack");
    ws::send(
        &mut socket,
        json!({ "id": "op-1", "type": "subscribe", "payload": { "query": query, "operationName": "Head" } }),
    )
    .await;
    assert_eq!(ws::recv(&mut socket).await["type"], "next");
    assert_eq!(ws::recv(&mut socket).await["type"], "complete");
    socket
}

/// `--access-log json`: one line per request with its time, client, method, path (never the
/// query string), status, bytes, duration and token name, and for GraphQL the operation, its
/// type and cost, cache hit and fast path; one line per WebSocket operation; never the
/// token's secret, the query text or the variables.
#[tokio::test]
async fn the_access_log_has_a_line_per_request_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--access-log",
            "json",
            "--write-tokens",
            &format!("publisher:{LOG_SECRET}"),
            "--log",
            "warn",
        ],
    )
    .await;
    let q = marked_query();
    for _ in 0..2 {
        let (status, body) = server
            .post(
                &q,
                json!({ "k": "IPR._T._T", "unused": VARIABLE_MARKER }),
                Some(LOG_SECRET),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let get = format!(
        "http://{}/graphql?query={}&variables=%7B%22x%22%3A%22{VARIABLE_MARKER}%22%7D",
        server.addr, "%7B%20ledger%20%7B%20revision%20%7D%20%7D"
    );
    assert_eq!(server.client.get(&get).send().await.unwrap().status(), 200);
    let (_, body) = server
        .post(
            PUBLISH,
            json!({ "input": release_input("5b0c1d2e-0000-4000-8000-00000000a001", "IPR._T._T", "2030-S1", "7") }),
            Some(LOG_SECRET),
        )
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let socket = ws_operation(&server, "query Head { ledger { revision } }").await;
    drop(socket);
    assert_eq!(
        server
            .client
            .get(format!("http://{}/healthz", server.addr))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The WebSocket line is written when the operation ends; the healthz line after it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stderr = server.kill_and_read_stderr();
    for secret in [LOG_SECRET, VARIABLE_MARKER, QUERY_MARKER] {
        assert!(!stderr.contains(secret), "`{secret}` in the log:\n{stderr}");
    }
    let lines = access_lines(&stderr);
    let posts: Vec<&Value> = lines
        .iter()
        .filter(|l| l["method"] == "POST" && l["operation"] == "Figure")
        .collect();
    assert_eq!(posts.len(), 2, "{stderr}");
    for (l, cache) in posts.iter().zip(["miss", "hit"]) {
        assert_eq!(l["path"], "/graphql");
        assert_eq!(l["status"], 200);
        assert_eq!(l["peer"], "127.0.0.1");
        assert_eq!(l["token"], "publisher");
        assert_eq!(l["operation_type"], "query");
        assert_eq!(l["cost"], 1);
        assert_eq!(l["cache"], cache, "{l}");
        assert_eq!(l["fast_path"], false);
        assert!(l["bytes"].as_u64().unwrap() > 10, "{l}");
        assert!(l["duration_ms"].as_f64().is_some(), "{l}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(l["time"].as_str().unwrap()).is_ok(),
            "{l}"
        );
        assert!(l.get("query").is_none() && l.get("variables").is_none(), "{l}");
    }
    let get_line = lines
        .iter()
        .find(|l| l["method"] == "GET" && l["path"] == "/graphql")
        .unwrap_or_else(|| panic!("no GET line in {stderr}"));
    assert_eq!(get_line["token"], Value::Null);
    assert_eq!(get_line["operation_type"], "query");
    let publish = lines
        .iter()
        .find(|l| l["operation_type"] == "mutation")
        .unwrap_or_else(|| panic!("no mutation line in {stderr}"));
    assert_eq!(publish["token"], "publisher");
    assert_eq!(publish["cache"], Value::Null, "mutations are not cacheable");
    let ws_line = lines
        .iter()
        .find(|l| l["method"] == "WS")
        .unwrap_or_else(|| panic!("no WebSocket operation line in {stderr}"));
    assert_eq!(ws_line["path"], "/graphql/ws");
    assert_eq!(ws_line["id"], "op-1");
    assert_eq!(ws_line["status"], "complete");
    assert_eq!(ws_line["operation"], "Head");
    assert_eq!(ws_line["operation_type"], "query");
    assert_eq!(ws_line["token"], "publisher");
    assert_eq!(ws_line["peer"], "127.0.0.1");
    assert!(
        lines.iter().any(|l| l["path"] == "/healthz" && l["status"] == 200),
        "{stderr}"
    );
}

/// `--access-log-queries` adds the query text and the variables; the text format writes the
/// same fields as `key=value`.
#[tokio::test]
async fn access_log_queries_adds_texts_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--access-log", "text", "--access-log-queries", "--log", "warn"],
    )
    .await;
    let (status, _) = server
        .post(&marked_query(), json!({ "k": VARIABLE_MARKER }), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let stderr = server.kill_and_read_stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("operation=Figure"))
        .unwrap_or_else(|| panic!("no line for the query in {stderr}"));
    for field in [
        "method=POST",
        "path=/graphql",
        "status=200",
        "operation_type=query",
        "cache=miss",
        "fast_path=false",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
    assert!(line.contains(QUERY_MARKER), "{line}");
    assert!(line.contains(VARIABLE_MARKER), "{line}");
}

/// Without `--access-log` nothing is logged per request; `--slow-query-ms` still logs the
/// requests that take longer at WARN.
#[tokio::test]
async fn slow_requests_are_logged_without_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = Server::start(&dir.path().join("quiet"), &[]).await;
    quiet.query("{ ledger { revision } }", json!({})).await;
    let stderr = quiet.kill_and_read_stderr();
    assert!(
        !stderr.contains("path=/graphql") && !stderr.contains("slow request"),
        "{stderr}"
    );

    let server = Server::start(&dir.path().join("data"), &["--slow-query-ms", "1"]).await;
    // Re-reading and re-folding the log and walking the whole schema take more than a
    // millisecond.
    server
        .query(
            "query Audit { verifyLedger { ok checked } __schema { types { name fields { name args { name type { name } } } } } }",
            json!({}),
        )
        .await;
    let stderr = server.kill_and_read_stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("slow request") && l.contains("operation=Audit"))
        .unwrap_or_else(|| panic!("no slow-request line in {stderr}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("path=/graphql"), "{line}");
    assert!(!stderr.contains("\"path\""), "no access log lines: {stderr}");
}

// ---------------------------------------------------------------------------------------
// The error table of docs/operations.md

/// The rows of the error-code table in `docs/operations.md`: code and text.
fn documented_codes() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
        .expect("docs/operations.md");
    let start = doc
        .find("| code | when |")
        .expect("the error table in docs/operations.md");
    doc[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').splitn(2, '|').collect();
            (
                cells[0].trim().trim_matches('`').to_owned(),
                cells.get(1).unwrap_or(&"").trim().to_owned(),
            )
        })
        .collect()
}

/// The table lists every code the server has (`ErrorCode::ALL`) and no other, and what each
/// row says provokes its code does: the request is sent and the code it gets compared. Two
/// codes need a failing store or a stalled writer and are provoked by the abuse suite
/// (`UNAVAILABLE`: `tests/abuse/ledger/health.rs`; `OUTCOME_UNKNOWN`: `tests/abuse/round2.rs`).
#[tokio::test]
async fn the_error_table_matches_the_codes_the_server_sends() {
    let rows = documented_codes();
    let mut documented: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    let mut real: Vec<String> = tradeledger::error_code::ErrorCode::ALL
        .iter()
        .map(|c| c.to_string())
        .collect();
    documented.sort_unstable();
    real.sort_unstable();
    assert_eq!(documented, real, "the table's codes are not the server's");

    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse("viewer:table-read-secret").unwrap()],
        true,
    )
    .await;
    let reader = Some("table-read-secret");
    let publish = |id: &str| json!({ "input": release_input(id, "IPR._T._T", "2031-S1", "1") });
    let aliases: String = (0..31).map(|i| format!("a{i}: ledger {{ revision }} ")).collect();
    let cases: Vec<(&str, &str, String, Value, Option<&str>)> = vec![
        (
            "BAD_USER_INPUT",
            "a bad argument",
            "{ observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"IPR._T._T\", period: \"2025-X9\") { value } }"
                .into(),
            json!({}),
            reader,
        ),
        (
            "GRAPHQL_PARSE_FAILED",
            "not GraphQL",
            "{ ledger {".into(),
            json!({}),
            reader,
        ),
        (
            "GRAPHQL_VALIDATION_FAILED",
            "an unknown field",
            "{ noSuchField }".into(),
            json!({}),
            reader,
        ),
        (
            "UNAUTHENTICATED",
            "a write without a token",
            PUBLISH.into(),
            publish("5b0c1d2e-0000-4000-8000-00000000e001"),
            None,
        ),
        (
            "UNAUTHENTICATED",
            "a token that is not one of the server's",
            "{ ledger { revision } }".into(),
            json!({}),
            Some("no-such-token-secret"),
        ),
        (
            "UNAUTHENTICATED",
            "a read without one",
            "{ ledger { revision } }".into(),
            json!({}),
            None,
        ),
        (
            "FORBIDDEN",
            "a write with a read token",
            PUBLISH.into(),
            publish("5b0c1d2e-0000-4000-8000-00000000e002"),
            reader,
        ),
        (
            "NOT_FOUND",
            "an unknown dataset",
            "{ observation(dataset: \"NO_SUCH\", key: \"IPR._T._T\", period: \"2025-S1\") { value } }".into(),
            json!({}),
            reader,
        ),
        (
            "CONFLICT",
            "an `expectedRevision` that is not the head",
            "mutation($input: ReleaseInput!) { publishRelease(input: $input, expectedRevision: 1) { revision } }"
                .into(),
            publish("5b0c1d2e-0000-4000-8000-00000000e003"),
            Some(WRITE_SECRET),
        ),
        (
            "LIMIT_EXCEEDED",
            "a limit of",
            format!("{{ {aliases} }}"),
            json!({}),
            reader,
        ),
        (
            "INTERNAL_SERVER_ERROR",
            "a fault of the server",
            // This test server was built without a checkpoint signing key.
            "{ verifierKey }".into(),
            json!({}),
            reader,
        ),
    ];
    for (code, claim, query, variables, token) in cases {
        let row = &rows.iter().find(|(c, _)| c == code).unwrap().1;
        assert!(row.contains(claim), "the {code} row does not say `{claim}`: {row}");
        let (_, body) = app.post(&query, variables, token).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{claim}: {body}");
    }
    // METHOD_NOT_ALLOWED is an HTTP answer: a mutation over GET.
    let row = &rows.iter().find(|(c, _)| c == "METHOD_NOT_ALLOWED").unwrap().1;
    assert!(row.contains("a mutation sent over `GET`"), "{row}");
    let resp = app
        .client
        .get(format!("{}?query=mutation%20%7B%20__typename%20%7D", app.url))
        .bearer_auth(WRITE_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED");
}

/// `serve --help` names the code a NATS timeout gives clients: a storage failure is
/// `UNAVAILABLE`, as the error table says.
#[test]
fn serve_help_names_the_real_codes() {
    use clap::CommandFactory;
    let mut cli = tradeledger::cli::Cli::command();
    let help = cli
        .find_subcommand_mut("serve")
        .expect("serve")
        .render_long_help()
        .to_string();
    let start = help.find("--nats-timeout-ms").expect("the flag");
    let end = help[start + 2..].find("\n  -").map_or(help.len(), |e| start + 2 + e);
    let nats = &help[start..end];
    assert!(nats.contains("UNAVAILABLE"), "{nats}");
    assert!(!nats.contains("INTERNAL_SERVER_ERROR"), "{nats}");
}

/// The compose file's NATS servers have no credentials, so their ports are not published to
/// the host; the Docker docs name the file the generated write token is kept in.
#[test]
fn compose_keeps_nats_off_the_host_and_the_docs_find_the_token() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).expect("docker-compose.yml");
    let mut service: Option<&str> = None;
    let mut nats_services = 0;
    for line in compose.lines() {
        // A service is a key indented by two spaces under `services:`.
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                service = Some(name);
                nats_services += usize::from(name.starts_with("nats"));
            }
        }
        if service.is_some_and(|s| s.starts_with("nats")) {
            assert!(!line.trim_start().starts_with("ports:"), "{service:?} publishes {line}");
        }
    }
    assert_eq!(nats_services, 3, "the three NATS services were not found");
    let ops = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let token_file = format!("/data/{}", tradeledger::auth::TOKEN_FILE);
    assert!(
        ops.contains(&token_file),
        "docs/operations.md does not say {token_file}"
    );
}

/// `examples/verify_inclusion.py` checks the proof of the docs' own `inclusionProof` query;
/// a proof without `treeSize` takes it from the checkpoint, and without either (or with
/// fields missing, or an error response) the script says what is missing instead of failing
/// with a traceback.
#[tokio::test]
async fn the_inclusion_example_runs_on_the_documented_query() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/transparency.md")).unwrap();
    let query = docs
        .lines()
        .find(|l| l.starts_with("{ inclusionProof("))
        .expect("the documented inclusionProof query");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (_, response) = server.post(query, json!({}), None).await.unwrap();
    assert!(response.get("errors").is_none(), "{response}");
    let note = server.query("{ checkpoint(treeSize: 3) { note } }", json!({})).await["checkpoint"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = root.join("examples/verify_inclusion.py");
    let run = |proof: &Value, with_note: bool| {
        let proof_path = dir.path().join("proof.json");
        std::fs::write(&proof_path, proof.to_string()).unwrap();
        let note_path = dir.path().join("checkpoint.txt");
        std::fs::write(&note_path, &note).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(&proof_path);
        if with_note {
            cmd.arg(&note_path);
        }
        let out = cmd.output().expect("python3 runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("Traceback"), "{text}");
        (out.status.code(), text)
    };
    let (code, out) = run(&response, true);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        run(&response, false).0,
        Some(0),
        "the documented query selects treeSize"
    );

    let mut bare = response["data"]["inclusionProof"].clone();
    bare.as_object_mut().unwrap().remove("treeSize");
    bare.as_object_mut().unwrap().remove("revision");
    let (code, out) = run(&bare, true);
    assert_eq!(code, Some(0), "tree size from the checkpoint: {out}");
    let (code, out) = run(&bare, false);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("treeSize"), "{out}");

    bare.as_object_mut().unwrap().remove("hashes");
    let (code, out) = run(&bare, true);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("hashes"), "{out}");
    let (code, out) = run(&json!({ "data": null, "errors": [{ "message": "no" }] }), true);
    assert_eq!(code, Some(2), "{out}");
}

/// The custom scalars' descriptions, which code generators copy into clients, name no Rust
/// type, and the guide maps every custom scalar of the schema for them.
#[tokio::test]
async fn scalars_are_described_for_clients_and_mapped_in_the_guide() {
    let app = spawn_app().await;
    let v = app
        .gql(
            "{ __schema { types { kind name description specifiedByURL } } }",
            json!({}),
        )
        .await;
    let builtin = ["String", "Int", "Float", "Boolean", "ID"];
    let scalars: Vec<&Value> = v["data"]["__schema"]["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter(|t| t["kind"] == "SCALAR" && !builtin.contains(&t["name"].as_str().unwrap()))
        .collect();
    assert_eq!(scalars.len(), 4, "{scalars:?}");
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md")).unwrap();
    for s in scalars {
        let name = s["name"].as_str().unwrap();
        let description = s["description"].as_str().unwrap_or("");
        assert!(!description.is_empty(), "{name} has no description");
        for rust in ["Implement the", "<Utc>", "::", "Rust"] {
            assert!(
                !description.contains(rust),
                "{name}'s description names Rust: {description}"
            );
        }
        assert!(
            guide.contains(&format!("| `{name}` |")),
            "docs/guide.md does not map {name}"
        );
        assert!(
            guide.contains(&format!("    {name}: string")),
            "no codegen mapping of {name}"
        );
    }
}

/// A subscription sent to `/graphql` is refused with a message that names both places
/// subscriptions are served (and `extensions.websocket`, `extensions.sse`), not as a
/// validation failure.
#[tokio::test]
async fn a_subscription_over_http_names_the_websocket_endpoint() {
    let app = spawn_app().await;
    let q = "subscription Feed { releasePublished { revision } }";
    for accept in ["application/graphql-response+json", "application/json"] {
        let resp = app
            .client
            .post(&app.url)
            .header("content-type", "application/json")
            .header("accept", accept)
            .json(&json!({ "query": q }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, if accept == "application/json" { 200 } else { 400 }, "{body}");
        let e = &body["errors"][0];
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(e["extensions"]["websocket"], "/graphql/ws", "{body}");
        assert_eq!(e["extensions"]["sse"], "/graphql/stream", "{body}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("/graphql/ws") && message.contains("/graphql/stream"),
            "{body}"
        );
    }
    let get = app
        .client
        .get(format!(
            "{}?query=subscription%20%7B%20releasePublished%20%7B%20revision%20%7D%20%7D",
            app.url
        ))
        .send()
        .await
        .unwrap();
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["websocket"], "/graphql/ws", "{body}");
}

// ---------------------------------------------------------------------------------------
// Subscriptions over Server-Sent Events

const SSE_SUBSCRIPTION: &str =
    "subscription Feed { releasePublished(afterRevision: 1) { revision release { title } } }";

async fn open_stream(app: &TestApp, query: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("http://{}/graphql/stream", app.addr))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .json(&json!({ "query": query }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Reads the stream until `n` events arrived (comments skipped): `(event, data)` pairs.
async fn events(resp: &mut reqwest::Response, buffer: &mut String, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut kind = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if !block.starts_with(':') {
                out.push((kind, data));
            }
        }
        if out.len() >= n {
            break;
        }
        let chunk = tokio::time::timeout(ws::RECV, resp.chunk())
            .await
            .expect("an event in time")
            .expect("the stream")
            .unwrap_or_else(|| panic!("the stream ended after {out:?}"));
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    out
}

/// `POST /graphql/stream` with `Accept: text/event-stream` runs a subscription as graphql-sse
/// (distinct connections): a `next` event per result, replayed from `afterRevision` and then
/// live, and `complete` when the server stops.
#[tokio::test]
async fn subscriptions_stream_over_server_sent_events() {
    let mut app = spawn_app().await;
    let mut resp = open_stream(&app, SSE_SUBSCRIPTION, None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buffer = String::new();
    let replayed = events(&mut resp, &mut buffer, 2).await;
    let revisions: Vec<Value> = replayed
        .iter()
        .map(|(kind, data)| {
            assert_eq!(kind, "next", "{data}");
            serde_json::from_str::<Value>(data).unwrap()["data"]["releasePublished"]["revision"].clone()
        })
        .collect();
    assert_eq!(revisions, [json!(2), json!(3)]);
    let v = app
        .gql_write(
            PUBLISH,
            json!({ "input": release_input("5b0c1d2e-0000-4000-8000-00000000f001", "IPR._T._T", "2031-S1", "5") }),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    let live = events(&mut resp, &mut buffer, 1).await;
    let data: Value = serde_json::from_str(&live[0].1).unwrap();
    assert_eq!(data["data"]["releasePublished"]["revision"], 4, "{data}");
    app.stop().await;
    let end = events(&mut resp, &mut buffer, 1).await;
    assert_eq!(end[0].0, "complete", "{end:?}");
}

/// The stream has the WebSocket endpoint's rules: a token under `--read-tokens` (401
/// without), the request limits (a 4xx GraphQL error before anything streams), one of the
/// `--max-ws-connections` slots (503 beyond), subscriptions only, and `Accept` must allow it.
#[tokio::test]
async fn server_sent_events_keep_the_websocket_rules() {
    let app = spawn_app_with(
        |c| {
            c.tokens.read = vec![Token::parse("viewer:sse-read-secret").unwrap()];
            c.max_ws_connections = 1;
        },
        true,
    )
    .await;
    let refused = open_stream(&app, SSE_SUBSCRIPTION, None).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    let bad = open_stream(&app, "subscription { noSuchField }", Some("sse-read-secret")).await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );

    let query = open_stream(&app, "{ ledger { revision } }", Some("sse-read-secret")).await;
    assert_eq!(query.status(), 400);
    assert!(query.text().await.unwrap().contains("POST /graphql"));

    let not_sse = app
        .client
        .post(format!("http://{}/graphql/stream", app.addr))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .bearer_auth("sse-read-secret")
        .json(&json!({ "query": SSE_SUBSCRIPTION }))
        .send()
        .await
        .unwrap();
    assert_eq!(not_sse.status(), 406);

    let mut open = open_stream(&app, SSE_SUBSCRIPTION, Some("sse-read-secret")).await;
    assert_eq!(open.status(), 200);
    let mut buffer = String::new();
    events(&mut open, &mut buffer, 1).await;
    let second = open_stream(&app, SSE_SUBSCRIPTION, Some("sse-read-secret")).await;
    assert_eq!(second.status(), 503, "the only slot is taken");
    assert!(second.headers().contains_key("retry-after"));
    // So is the WebSocket endpoint's.
    let ws = ws::try_connect(&app.ws_url, Some(ws::TRANSPORT), None).await;
    assert_eq!(ws::refused_status(ws), 503);
    drop(open);
}

/// The graphql-sse npm client (`tests/browser/sse.mjs`, distinct connections mode) gets the
/// replayed releases from `/graphql/stream`, with the read token under `--read-tokens`; a
/// subscription the server refuses reaches its `error` callback. Needs node and
/// `tests/browser/node_modules` (`bash .ci/setup`).
#[tokio::test]
async fn the_graphql_sse_client_subscribes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/graphql-sse/package.json")
            .is_file(),
        "no tests/browser/node_modules/graphql-sse: run `bash .ci/setup`"
    );
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse("viewer:sse-client-secret").unwrap()],
        true,
    )
    .await;
    let url = format!("http://{}/graphql/stream", app.addr);
    let run = |token: &'static str, query: &'static str, results: &'static str| {
        let script = root.join("tests/browser/sse.mjs");
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new("node")
                .arg(script)
                .args([url.as_str(), token, query, results])
                .output()
                .unwrap_or_else(|e| panic!("node runs ({e}): run `bash .ci/setup`"));
            (
                out.status.code(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
    };
    let (code, out) = tokio::time::timeout(ws::RECV, run("sse-client-secret", SSE_SUBSCRIPTION, "2"))
        .await
        .expect("the client finished")
        .unwrap();
    assert_eq!(code, Some(0), "{out}");
    let revisions: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|_| panic!("not a result: {l}\n{out}")))
        .map(|v| v["data"]["releasePublished"]["revision"].clone())
        .collect();
    assert_eq!(revisions, [json!(2), json!(3)], "{out}");

    let (code, out) = tokio::time::timeout(ws::RECV, run("not-the-secret", SSE_SUBSCRIPTION, "1"))
        .await
        .expect("the client finished")
        .unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error"), "{out}");
}
