//! Subscriptions over Server-Sent Events.

use super::*;

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
