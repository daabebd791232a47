//! The request log on standard error: a line per request, no secrets, slow requests.

use super::*;

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
        server.addr,
        "%7B%20ledger%20%7B%20revision%20%7D%20releases(first%3A%202)%20%7B%20nodes%20%7B%20id%20%7D%20%7D%20%7D"
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
    // The ledger, the connection and its two releases: the cost `--max-cost` counts.
    assert_eq!(get_line["cost"], 4, "{get_line}");
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
