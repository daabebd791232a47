//! Class 5: WebSocket bounds per connection.

use super::*;

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
