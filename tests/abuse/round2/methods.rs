//! Odd HTTP methods are labelled `other` and long ones refused; no `100 Continue` for a body
//! announced over the limit.

use super::*;

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
/// How long a read of the server's answer may wait: the answers are immediate, so this only
/// guards against a hang, and says what it waited for when it gives up.
const HANG_GUARD: Duration = Duration::from_secs(20);

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
        let n = timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no answer head within {HANG_GUARD:?} of a head announcing a body over the limit (the \
                     body is never sent); received so far: {:?}",
                    String::from_utf8_lossy(&answer)
                )
            })
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
    let n = timeout(HANG_GUARD, stream.read(&mut buf))
        .await
        .unwrap_or_else(|_| {
            panic!("nothing within {HANG_GUARD:?} of a head with expect: 100-continue and a body within the limit")
        })
        .expect("read");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 100 Continue"), "{first}");
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut rest = first;
    while !rest.contains("\"revision\"") {
        let n = timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("no answer within {HANG_GUARD:?} of sending the body; received so far: {rest:?}")
            })
            .expect("read");
        assert!(n > 0, "closed before answering: {rest}");
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
}
