//! Item 2: subscriptions behind a client that does not read.

use super::*;

/// Subscriptions opened by the client that does not read.
const SUBSCRIPTIONS: usize = 30;

/// A client subscribes thirty times to the replay of every release with all its figures
/// (30 x 20 x 0.3 MB of results) and never reads: the server holds at most
/// `--ws-max-buffered-bytes` of them plus one per subscription, its peak memory grows by far
/// less than the results' total, and after the send timeout it closes the connection with
/// 4504 and a reason naming why (read once the client reads again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_a_client_that_does_not_read_is_bounded_in_bytes_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    let server = Server::start(
        &data,
        &[
            "--ws-max-buffered-bytes",
            "1000000",
            "--ws-send-timeout-ms",
            "8000",
            "--idle-timeout-ms",
            "0",
        ],
    )
    .await;
    let pid = server.child.id();
    // One release's results, read the ordinary way, to know their size.
    let one = server
        .query(
            "{ releases(first: 1) { nodes { observations { key period value previousValue } } } }",
            json!({}),
        )
        .await;
    let per_result = one.to_string().len() as u64;
    let total_kb = per_result * u64::from(RELEASES) * SUBSCRIPTIONS as u64 / 1024;
    let (before, _) = memory_kb(pid);

    let mut ws = ws_open("127.0.0.1", server.addr).await;
    for i in 0..SUBSCRIPTIONS {
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "id": format!("s{i}"), "payload": {"query":
                "subscription { releasePublished(afterRevision: 0) { revision release { observations { key period value previousValue } } } }"}}),
        )
        .await;
    }
    logged(&server, "did not read in time", Duration::from_secs(120)).await;
    let (_, peak) = memory_kb(pid);
    let grew = peak.saturating_sub(before);
    println!("results {total_kb} kB in all; peak grew by {grew} kB (from {before} kB)");
    assert!(
        grew < total_kb / 3,
        "peak memory grew by {grew} kB while the client did not read; the results total {total_kb} kB"
    );

    let (frame, texts) = ws_close(&mut ws, Duration::from_secs(30)).await;
    let frame = frame.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 4504, "{frame:?}");
    assert!(frame.reason.contains("did not read"), "{frame:?}");
    assert!(
        texts < RELEASES as usize * SUBSCRIPTIONS,
        "{texts} results were sent to a client that did not read"
    );
    // The server is well and serves others.
    server.query("{ ledger { revision } }", json!({})).await;
}
