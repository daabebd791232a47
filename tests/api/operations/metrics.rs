//! `/metrics` in both formats, checked by Prometheus's parsers; its token and its own address.

use super::*;

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
