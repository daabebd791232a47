//! The `graphql-transport-ws` protocol rules, the legacy `graphql-ws` protocol, and shutdown.

use super::*;

/// `subscribe` before `connection_init` closes with 4401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_before_init_closes_4401() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    subscribe(&mut ws, "1", RELEASES, json!({})).await;
    assert_eq!(expect_close(&mut ws).await, 4401);
}

/// `subscribe` with the id of an active subscription closes with 4409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscription_id_closes_4409() {
    let app = spawn_app().await;
    let mut sub = app.subscribe("dup", RELEASES, json!({})).await;
    wait_subscribers(&app, 1).await;
    subscribe(&mut sub.ws, "dup", RELEASES, json!({})).await;
    assert_eq!(expect_close(&mut sub.ws).await, 4409);
}

/// A second `connection_init` closes with 4429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connection_init_closes_4429() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(expect_close(&mut ws).await, 4429);
}

/// Invalid JSON, unknown types, missing fields, a non-object init payload and binary frames close with 4400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_close_4400() {
    let app = spawn_app().await;
    let texts = [
        (false, "{not json"),
        (false, "[]"),
        (false, r#"{"type": "bogus"}"#),
        (true, r#"{"type": "bogus"}"#),
        (true, r#"{"type": "subscribe", "id": "1"}"#),
        (
            true,
            r#"{"type": "subscribe", "payload": {"query": "subscription { releasePublished { revision } }"}}"#,
        ),
        (
            true,
            r#"{"type": "subscribe", "id": "1", "payload": {"variables": {}}}"#,
        ),
        (true, r#"{"type": "complete"}"#),
        (false, r#"{"type": "connection_init", "payload": [1]}"#),
    ];
    for (initialised, text) in texts {
        let mut ws = connect(&app).await;
        if initialised {
            init(&mut ws).await;
        }
        send_text(&mut ws, text).await;
        assert_eq!(
            expect_close(&mut ws).await,
            4400,
            "for {text} (after init: {initialised})"
        );
    }
    for initialised in [false, true] {
        let mut ws = connect(&app).await;
        if initialised {
            init(&mut ws).await;
        }
        timeout(RECV, ws.send(Message::binary(b"{\"type\":\"ping\"}".to_vec())))
            .await
            .expect("send timed out")
            .expect("send");
        assert_eq!(
            expect_close(&mut ws).await,
            4400,
            "binary frame (after init: {initialised})"
        );
    }
}

/// A message over the size limit (`max_body_bytes`) closes with 1009 (message too big), not 1000 (normal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_closes_1009() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024, true).await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    // A small message is fine...
    send(&mut ws, json!({"type": "ping", "payload": {"x": "y".repeat(100)}})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    // ...a big one is refused.
    send(&mut ws, json!({"type": "ping", "payload": {"x": "y".repeat(4_000)}})).await;
    let (code, reason) = expect_close_with_reason(&mut ws).await;
    assert_eq!(code, 1009, "close reason {reason:?}");
}

/// Messages far larger than the server's initial per-connection read buffer (a few KiB) but
/// within the size limit arrive whole: a padded subscribe and a big ping both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_read_buffer_are_read_whole() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let pad = "y".repeat(100_000);
    send(&mut ws, json!({"type": "ping", "payload": {"x": pad}})).await;
    let pong = recv(&mut ws).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["payload"]["x"].as_str().map(str::len), Some(100_000));
    let padded = format!(
        "subscription {{ releasePublished {{ revision release {{ id }} }} }} # {}",
        "z".repeat(50_000)
    );
    subscribe(&mut ws, "big", &padded, json!({})).await;
    wait_subscribers(&app, 1).await;
    let (id, input) = new_release("_T._T._T", "2026-S1", "7");
    let revision = publish_revision(&app, input).await;
    let (got_revision, got_id, _) = next_release(&mut ws, "big").await;
    assert_eq!((got_revision, got_id.as_str()), (revision, id.as_str()));
}

/// No `connection_init` within `ws_init_timeout` closes with 4408; an initialised connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_init_closes_4408_after_the_init_timeout() {
    let app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_millis(300), true).await;
    // A server whose init timeout is an hour, and an idle connection to it opened first: were
    // the setting ignored (both servers on the default), this one would be closed first.
    let patient_app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_secs(3600), true).await;
    let mut patient = connect(&patient_app).await;
    // The server's timer starts once the upgrade is done, after this instant.
    let started = Instant::now();
    let mut idle = connect(&app).await;
    let mut prompt = connect(&app).await;
    init(&mut prompt).await;

    // `expect_close` gives up after RECV, which only guards against a connection that is
    // never closed.
    assert_eq!(expect_close(&mut idle).await, 4408);
    let waited = started.elapsed();
    // Not closed at once for some other reason: the init timeout ran out first.
    assert!(
        waited >= Duration::from_millis(300),
        "closed with 4408 after {waited:?}, before the 300 ms init timeout"
    );
    // The connection with the longer init timeout, older than `idle`, is still open.
    expect_quiet(&mut patient).await;

    tokio::time::sleep(Duration::from_millis(400)).await;
    send(&mut prompt, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut prompt).await["type"], "pong");
}

/// With reads protected, a wrong or missing token closes with 4403; the read token (payload or header) is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_init_is_authenticated_when_reads_are_protected() {
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    for payload in [
        Some(json!({"authorization": "Bearer wrong-secret-123"})),
        Some(json!({})),
        None,
    ] {
        let mut ws = connect(&app).await;
        let mut msg = json!({"type": "connection_init"});
        if let Some(p) = &payload {
            msg["payload"] = p.clone();
        }
        send(&mut ws, msg).await;
        assert_eq!(expect_close(&mut ws).await, 4403, "payload {payload:?}");
    }

    let mut ws = connect(&app).await;
    init_with(&mut ws, Some(json!({"authorization": format!("Bearer {READ_SECRET}")}))).await;
    subscribe(&mut ws, "r", RELEASES, json!({"after": 2})).await;
    let (revision, id, _) = next_release(&mut ws, "r").await;
    assert_eq!((revision, id.as_str()), (3, REVISION_ID));

    let (mut ws, _) = try_connect(&app.ws_url, Some(TRANSPORT), Some(&format!("Bearer {READ_SECRET}")))
        .await
        .expect("upgrade");
    init(&mut ws).await;
}

/// An invalid document gets an `error` message for its id and the connection (and the id) stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_document_gets_an_error_and_the_connection_stays() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    for (id, query) in [
        ("syntax", "subscription {"),
        ("validation", "subscription { releasePublished { noSuchField } }"),
    ] {
        subscribe(&mut ws, id, query, json!({})).await;
        let msg = recv(&mut ws).await;
        assert_eq!(msg["type"], "error", "{msg}");
        assert_eq!(msg["id"], id, "{msg}");
        let errors = msg["payload"]
            .as_array()
            .unwrap_or_else(|| panic!("payload must be a list: {msg}"));
        assert!(!errors.is_empty() && errors[0]["message"].is_string(), "{msg}");
    }
    // Our own limits apply over WebSocket too: 40 aliased `__typename` fields pass
    // async-graphql's checks (which count neither) but not the alias limit.
    let flood: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let query = format!("subscription {{ releasePublished {{ {flood} revision }} }}");
    subscribe(&mut ws, "flood", &query, json!({})).await;
    let msg = recv(&mut ws).await;
    assert_eq!(
        (msg["type"].as_str(), msg["id"].as_str()),
        (Some("error"), Some("flood")),
        "{msg}"
    );
    assert_eq!(msg["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{msg}");
    assert!(
        msg["payload"][0]["message"].as_str().unwrap().contains("aliases"),
        "{msg}"
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    subscribe(&mut ws, "validation", RELEASES, json!({"after": 2})).await;
    let (revision, _, _) = next_release(&mut ws, "validation").await;
    assert_eq!(revision, 3);
}

/// `ping` is answered with `pong` echoing the payload, before and after init.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_pong() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "pong"}));
    init(&mut ws).await;
    send(&mut ws, json!({"type": "ping", "payload": {"n": 7}})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "pong", "payload": {"n": 7}}));
}

/// A client `complete` drops that subscription's stream and events, keeps the others, and frees the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_complete_stops_the_subscription() {
    let app = spawn_app().await;
    let mut sub = app.subscribe("a", RELEASES, json!({})).await;
    subscribe(&mut sub.ws, "b", RELEASES, json!({})).await;
    wait_subscribers(&app, 2).await;

    send(&mut sub.ws, json!({"type": "complete", "id": "a"})).await;
    wait_subscribers_at_most(&app, 1).await;
    let (id, input) = new_release("_T._T._T", "2026-S1", "1");
    let revision = publish_revision(&app, input).await;
    let msg = loop {
        let msg = sub.recv().await;
        match msg["id"].as_str() {
            // The protocol does not ask the server to confirm a client's `complete`, but
            // doing so is harmless; any other message for "a" is not.
            Some("a") => assert_eq!(msg["type"], "complete", "event after complete: {msg}"),
            _ => break msg,
        }
    };
    assert_eq!((&msg["type"], &msg["id"]), (&json!("next"), &json!("b")), "{msg}");
    let event = &msg["payload"]["data"]["releasePublished"];
    assert_eq!(
        (&event["revision"], &event["release"]["id"]),
        (&json!(revision), &json!(id))
    );
    sub.expect_quiet().await;

    // The id is free again.
    subscribe(&mut sub.ws, "a", RELEASES, json!({"after": revision - 1})).await;
    let (r, _, _) = sub.next_release().await;
    assert_eq!(r, revision);
}

/// A query sent with `subscribe` gets one `next` with its result, then `complete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_websocket_gets_next_then_complete() {
    let app = spawn_app().await;
    let mut sub = app.subscribe("q", "{ ledger { revision } }", json!({})).await;
    assert_eq!(sub.next_data().await, json!({"ledger": {"revision": 3}}));
    assert_eq!(sub.recv().await, json!({"type": "complete", "id": "q"}));
    sub.expect_quiet().await;
}

/// Idle connections get keep-alives at the configured interval: `ping` (transport) and `ka` (legacy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_get_keepalives() {
    let app = spawn_app_with(|c| c.ws_keepalive = Duration::from_millis(100), true).await;
    let mut ws = connect(&app).await;
    for initialised in [false, true] {
        if initialised {
            init(&mut ws).await;
        }
        match recv_raw(&mut ws).await {
            Got::Json(v) => assert_eq!(v, json!({"type": "ping", "payload": {"reason": "keepalive"}})),
            other => panic!("expected a keep-alive ping, got {other:?}"),
        }
    }
    let mut legacy = connect_with(&app, LEGACY).await;
    send(&mut legacy, json!({"type": "connection_init"})).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match recv_raw(&mut legacy).await {
            Got::Json(v) => seen.push(v["type"].as_str().unwrap_or("").to_owned()),
            other => panic!("expected ack and keep-alives, got {other:?}"),
        }
    }
    assert_eq!(seen, ["connection_ack", "ka", "ka"]);
}

/// A keep-alive interval of zero does not break connections: they still initialise and subscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_keepalive_interval_does_not_break_connections() {
    let app = spawn_app_with(|c| c.ws_keepalive = Duration::ZERO, true).await;
    let mut sub = app.subscribe("r", RELEASES, json!({"after": 2})).await;
    let (revision, _, _) = sub.next_release().await;
    assert_eq!(revision, 3);
}

/// An upgrade offering no supported subprotocol, or none, is refused with HTTP 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_subprotocol_is_refused_with_400() {
    let app = spawn_app().await;
    assert_eq!(
        refused_status(try_connect(&app.ws_url, Some("graphql-sse"), None).await),
        400
    );
    assert_eq!(refused_status(try_connect(&app.ws_url, None, None).await), 400);
}

/// Over `max_ws_connections` an upgrade is refused with 503 and Retry-After; a freed slot is reusable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_with_503() {
    let app = spawn_app_with(|c| c.max_ws_connections = 2, true).await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    init(&mut first).await;
    init(&mut second).await;
    assert_eq!(
        refused_status(try_connect(&app.ws_url, Some(TRANSPORT), None).await),
        503
    );

    timeout(RECV, first.close(None))
        .await
        .expect("close timed out")
        .expect("close");
    let start = Instant::now();
    let mut third = loop {
        match try_connect(&app.ws_url, Some(TRANSPORT), None).await {
            Ok((ws, _)) => break ws,
            Err(tungstenite::Error::Http(r)) if r.status() == 503 && start.elapsed() < RECV => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the freed slot was not given back: {e}"),
        }
    };
    init(&mut third).await;
}

// ---------------------------------------------------------------------------------------------
// Legacy protocol and shutdown
// ---------------------------------------------------------------------------------------------

/// Legacy `graphql-ws`: connection_init -> connection_ack, start -> data, stop -> complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_graphql_ws_protocol() {
    let app = spawn_app().await;
    let (mut ws, response) = try_connect(&app.ws_url, Some(LEGACY), None).await.expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
        Some(LEGACY)
    );
    send(&mut ws, json!({"type": "connection_init", "payload": {}})).await;
    assert_eq!(recv(&mut ws).await["type"], "connection_ack");
    send(
        &mut ws,
        json!({"type": "start", "id": "1", "payload": {"query": "subscription { releasePublished { revision release { id } } }"}}),
    )
    .await;
    wait_subscribers(&app, 1).await;

    let (id, input) = new_release("_T._T._T", "2026-S1", "3");
    let revision = publish_revision(&app, input).await;
    let data = recv(&mut ws).await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["id"], "1");
    assert_eq!(
        data["payload"]["data"]["releasePublished"],
        json!({"revision": revision, "release": {"id": id}})
    );

    send(&mut ws, json!({"type": "stop", "id": "1"})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "complete", "id": "1"}));
    wait_subscribers_at_most(&app, 0).await;
}

/// Graceful shutdown sends `complete` for every subscription, then closes every connection with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_completes_subscriptions_then_closes_1001() {
    let mut app = spawn_app().await;
    let mut sub = app.subscribe("live", RELEASES, json!({})).await;
    wait_subscribers(&app, 1).await;

    timeout(RECV, app.stop())
        .await
        .expect("the server did not stop in time");
    assert_eq!(sub.recv().await, json!({"type": "complete", "id": "live"}));
    let (code, reason) = expect_close_with_reason(&mut sub.ws).await;
    assert_eq!(code, 1001, "close reason {reason:?}");
}
