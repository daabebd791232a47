//! `--max-events-scanned` over the real binary: a filter of `events` that matches
//! rarely must not read the whole log in one request; each page examines at most this many
//! events and says where it stopped.

use serde_json::json;

use crate::proc_support::*;

const EVENTS: &str = "query($after: Int) { events(actor: \"nobody\", after: $after) {
  nodes { revision } pageInfo { hasNextPage endCursor } examinedThrough totalCount } }";

/// With `--max-events-scanned 2`, a filter matching nothing walks the 3 fixture events in two
/// pages; `0` is refused at start-up.
#[tokio::test]
async fn filtered_events_stop_at_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-events-scanned", "2"]).await;
    let page = &server.query(EVENTS, json!({})).await["events"];
    assert_eq!(page["nodes"], json!([]), "{page}");
    assert_eq!(page["examinedThrough"], 2, "{page}");
    assert_eq!(page["pageInfo"]["hasNextPage"], true, "{page}");
    assert_eq!(page["pageInfo"]["endCursor"], "2", "{page}");
    assert_eq!(page["totalCount"], 3, "{page}");
    let page = &server.query(EVENTS, json!({ "after": 2 })).await["events"];
    assert_eq!(page["examinedThrough"], 3, "{page}");
    assert_eq!(page["pageInfo"]["hasNextPage"], false, "{page}");
    drop(server);

    let other = tempfile::tempdir().unwrap();
    let refused = match start_server(other.path(), &["--max-events-scanned", "0"]).await {
        Ok(_) => panic!("--max-events-scanned 0 was accepted"),
        Err(f) => f,
    };
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(refused.stderr.contains("--max-events-scanned"), "{refused:?}");
}
