//! "Face the public, round 2": the findings of an attacker's second run, each reproduced
//! against the real binary over real HTTP (or the real `import`), and the protection that
//! stops it.
//!
//! 1. Every distinct HTTP method became a `/metrics` label kept for ever (12,000 methods of
//!    60 KB made `/metrics` 600 MB): methods are labelled from a closed set (`OTHER` for the
//!    rest), and one longer than 32 bytes gets `400` before anything else.
//! 2. `defineDataset`'s parent-cycle check was O(N³): a deep chain of 20,000 codes would take
//!    hours. It is O(N) now, and a definition's size is bounded.
//! 3. `import` echoed the whole offending value (a 1 GB CSV line to stderr): quotes are cut
//!    at 200 bytes, and a CSV row or JSON string beyond a documented size is refused.
//! 4. A variable's default in `@include(if: $v)` was ignored by async-graphql and applied by
//!    the fast path: both apply it now.
//! 5. Writes answered "timed out" were recorded all the same: a write handed to the writer
//!    is waited for (`--write-timeout-ms`), or answered `OUTCOME_UNKNOWN` with its id.
//! 6. `100 Continue` was sent for a body announced over the limit.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::proc_support::Server;

/// Sends `method` to `/healthz`; returns the status.
async fn status_of_method(server: &Server, method: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method token");
    server
        .client
        .request(method, format!("http://{}/healthz", server.addr))
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

/// The count of `tradeledger_http_requests_total` for `route`, `method` and `status`, if the
/// series exists.
fn requests_counted(metrics: &str, route: &str, method: &str, status: u16) -> Option<u64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix("tradeledger_http_requests_total{")?;
        let (labels, value) = rest.split_once("} ")?;
        let mut labels: Vec<&str> = labels.split(',').collect();
        labels.sort_unstable();
        let mut wanted = [
            format!("method=\"{method}\""),
            format!("route=\"{route}\""),
            format!("status=\"{status}\""),
        ];
        wanted.sort_unstable();
        (labels == wanted).then(|| value.trim().parse().expect("a count"))
    })
}

/// Item 1: 600 distinct odd methods (up to 32 bytes, the limit) add one series labelled
/// `OTHER`, not 600 series named by the client, so `/metrics` stays small; a method of 33
/// bytes (or 60 KB) is answered `400` and never reaches the router or the metrics.
#[tokio::test]
async fn odd_methods_are_labelled_other_and_long_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    // Standard methods keep their label.
    assert_eq!(status_of_method(&server, "GET").await, 200);
    let before = server.metrics().await;
    const ODD: usize = 600;
    for i in 0..ODD {
        let method = format!("ODD{i:04}{}", "Z".repeat(i % 26));
        assert!(method.len() <= 32);
        // The router answers them: no such method on this route.
        assert_eq!(status_of_method(&server, &method).await, 405, "{method}");
    }
    let after = server.metrics().await;
    assert!(!after.contains("ODD"), "a raw method is a label:\n{after}");
    assert_eq!(
        requests_counted(&after, "/healthz", "OTHER", 405),
        Some(ODD as u64),
        "{after}"
    );
    assert_eq!(requests_counted(&after, "/healthz", "GET", 200), Some(1), "{after}");
    // A few series more (OTHER, and /metrics' own count and latency histogram): far below
    // the line per method (some 90 bytes each) that raw labels took.
    assert!(
        after.len() < before.len() + 4_000,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );

    assert_ne!(status_of_method(&server, &"M".repeat(32)).await, 400);
    for len in [33, 60_000] {
        assert_eq!(status_of_method(&server, &"M".repeat(len)).await, 400, "{len} bytes");
    }
    let last = server.metrics().await;
    assert_eq!(requests_counted(&last, "/healthz", "OTHER", 400), None, "{last}");
    assert!(!last.contains("MMMM"), "{last}");
    assert_eq!(status_of_method(&server, "GET").await, 200, "still serving");
}

/// Item 6: a POST whose `Content-Length` is over `--max-body-bytes` and that asks for
/// `Expect: 100-continue` gets `413` at once, not `100 Continue` (which would invite the
/// client to send what will be refused).
#[tokio::test]
async fn no_100_continue_for_a_body_announced_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body-bytes", "1000"]).await;
    let head = |length: usize| {
        format!(
            "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             accept: application/json\r\ncontent-length: {length}\r\nexpect: 100-continue\r\n\r\n"
        )
    };
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head(2_000_000).as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the head of the first response is complete (or the server closes).
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("an answer without sending the body")
            .expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // Within the limit, the client is invited to send its body, and it is served.
    let body = json!({ "query": "{ ledger { revision } }" }).to_string();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head(body.len()).as_bytes()).await.unwrap();
    let n = timeout(Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("100 Continue")
        .expect("read");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 100 Continue"), "{first}");
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut rest = first;
    while !rest.contains("\"revision\"") {
        let n = timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("the answer")
            .expect("read");
        assert!(n > 0, "closed before answering: {rest}");
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
}
