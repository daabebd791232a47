//! `releasePublished` (live, replayed after a revision, filtered) and `observationRevised`.

use super::*;

/// A live `releasePublished` subscription (graphql-transport-ws preferred) gets a release published over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_published_delivers_a_release_published_over_http() {
    let app = spawn_app().await;
    let (mut ws, response) = try_connect(&app.ws_url, Some(&format!("{LEGACY}, {TRANSPORT}")), None)
        .await
        .expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
        Some(TRANSPORT),
        "the server must prefer graphql-transport-ws when both are offered"
    );
    init(&mut ws).await;
    subscribe(
        &mut ws,
        "live",
        "subscription { releasePublished { revision release { id title } } }",
        json!({}),
    )
    .await;
    wait_subscribers(&app, 1).await;

    let (id, input) = new_release("_T._T._T", "2026-S1", "-5000");
    let revision = publish_revision(&app, input).await;
    assert_eq!(revision, 4, "fixtures take revisions 1 to 3");

    let (got_revision, got_id, title) = next_release(&mut ws, "live").await;
    assert_eq!((got_revision, got_id.as_str()), (revision, id.as_str()));
    assert_eq!(title, format!("SYNTHETIC test release {id}"));
    expect_quiet(&mut ws).await;
}

/// `afterRevision: 1` replays revisions 2, 3 and the missed releases in order, then continues live, no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_revision_replays_the_missed_releases_then_continues_live() {
    let app = spawn_app().await;
    let mut expected = vec![(2, PRELIMINARY_ID.to_owned()), (3, REVISION_ID.to_owned())];
    for i in 0..3 {
        let (id, input) = new_release("IPR._T._T", "2026-S1", &format!("-{i}"));
        expected.push((publish_revision(&app, input).await, id));
    }
    assert_eq!(expected.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);

    let mut sub = app.subscribe("resume", RELEASES, json!({"after": 1})).await;
    for (revision, id) in &expected {
        let (r, got, _) = sub.next_release().await;
        assert_eq!((r, &got), (*revision, id), "replay out of order or with a gap");
    }

    // Now live: two more.
    for i in 0..2 {
        let (id, input) = new_release("IPR._T._T", "2026-S1", &format!("1{i}"));
        let revision = publish_revision(&app, input).await;
        let (r, got, _) = sub.next_release().await;
        assert_eq!((r, got), (revision, id), "live release after the replay");
    }
    sub.expect_quiet().await;
}

/// `afterRevision` beyond the head is refused or skips to releases after it, never replaying earlier ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_revision_beyond_the_head_delivers_nothing_at_or_before_it() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    // The client says it has seen everything up to revision 6 (say, from a replica that is
    // further ahead); revisions 4 to 6 recorded here later are not "after" that.
    subscribe(&mut ws, "ahead", RELEASES, json!({"after": 6})).await;
    let refused = tokio::select! {
        _ = wait_subscribers(&app, 1) => None,
        msg = recv(&mut ws) => Some(msg),
    };
    if let Some(msg) = refused {
        // Refusing is fine, if it is a proper error for this subscription.
        assert_eq!(msg["id"], "ahead", "{msg}");
        let errors = match msg["type"].as_str() {
            Some("error") => &msg["payload"],
            Some("next") => &msg["payload"]["errors"],
            _ => panic!("expected an error, got {msg}"),
        };
        assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT", "{msg}");
        return;
    }
    let mut published = Vec::new();
    for i in 0..4 {
        let (id, input) = new_release("_T._T._T", "2026-S1", &i.to_string());
        published.push((publish_revision(&app, input).await, id));
    }
    assert_eq!(published.iter().map(|p| p.0).collect::<Vec<_>>(), [4, 5, 6, 7]);
    let (revision, id, _) = next_release(&mut ws, "ahead").await;
    assert_eq!(
        (revision, id),
        published[3].clone(),
        "afterRevision 6 must not deliver revision {revision}"
    );
    expect_quiet(&mut ws).await;
}

/// Releases published during a replay longer than one chunk arrive exactly once, with dense increasing revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_published_during_a_replay_arrive_exactly_once() {
    const BEFORE: usize = 300; // more than the replay chunk of 256
    const DURING: usize = 200;
    let app = spawn_app().await;
    let (before_ids, before) = releases(BEFORE, "_T._T.ASIA");
    publish_many(&app, before, 16).await;
    let (during_ids, during) = releases(DURING, "_T._T.NAM");

    let mut wanted: HashSet<String> = before_ids.into_iter().chain(during_ids).collect();
    wanted.insert(PRELIMINARY_ID.into());
    wanted.insert(REVISION_ID.into());
    let total = wanted.len();
    assert_eq!(total, BEFORE + DURING + 2);

    let mut sub = app.subscribe("all", RELEASES, json!({"after": 0})).await;

    let collect = async {
        let mut got: Vec<(u64, String)> = Vec::new();
        let mut seen = HashSet::new();
        while seen.len() < total {
            let (revision, id, _) = sub.next_release().await;
            assert!(wanted.contains(&id), "unexpected release {id}");
            assert!(
                seen.insert(id.clone()),
                "release {id} delivered twice (revision {revision})"
            );
            if let Some((last, _)) = got.last() {
                assert_eq!(revision, last + 1, "revisions must be dense and increasing");
            } else {
                assert_eq!(revision, 2, "the replay starts at the first release");
            }
            got.push((revision, id));
        }
        got
    };
    let (got, revisions) = tokio::join!(collect, publish_many(&app, during, 8));
    assert_eq!(got.len(), total);
    assert_eq!(got.last().unwrap().0, *revisions.iter().max().unwrap());
    assert_eq!(got.last().unwrap().0, (total + 1) as u64);
    sub.expect_quiet().await;
}

/// `releasePublished(dataset:)` delivers the KR_KNOWLEDGE_SERVICES release but not one of another dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_published_filters_by_dataset() {
    let app = spawn_app().await;
    let define = app
        .gql_write(
            "mutation($input: DatasetInput!) { defineDataset(input: $input) { id } }",
            json!({"input": {
                "id": "SYNTHETIC_OTHER",
                "name": "SYNTHETIC second dataset for the subscription filter test",
                "publisher": "tests",
                "unit": "USD",
                "unitMultiplier": 6,
                "dimensions": [{
                    "id": "COUNTERPART",
                    "label": "Counterpart region",
                    "codes": [
                        {"code": "_T", "label": "World"},
                        {"code": "ASIA", "label": "Asia", "parent": "_T"}
                    ]
                }],
                "measures": ["BAL"]
            }}),
        )
        .await;
    assert_eq!(define["data"]["defineDataset"]["id"], "SYNTHETIC_OTHER", "{define}");

    let mut sub = app
        .subscribe(
            "kr",
            "subscription { releasePublished(dataset: \"KR_KNOWLEDGE_SERVICES\") { revision release { id title } } }",
            json!({}),
        )
        .await;
    wait_subscribers(&app, 1).await;

    let (_, mut other) = new_release("_T", "2026-S1", "1");
    other["dataset"] = json!("SYNTHETIC_OTHER");
    let other_revision = publish_revision(&app, other).await;
    let (kr_id, kr) = new_release("_T._T._T", "2026-S1", "2");
    let kr_revision = publish_revision(&app, kr).await;
    assert!(kr_revision > other_revision);

    let (revision, id, _) = sub.next_release().await;
    assert_eq!((revision, id), (kr_revision, kr_id), "only the KR release may arrive");
    sub.expect_quiet().await;
}

/// An unknown dataset or a negative `afterRevision` is reported with its code and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscription_arguments_are_reported_with_codes() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let cases = [
        (
            "unknown",
            "subscription { releasePublished(dataset: \"NOPE\") { revision } }",
            "NOT_FOUND",
        ),
        (
            "negative",
            "subscription { releasePublished(afterRevision: -1) { revision } }",
            "BAD_USER_INPUT",
        ),
    ];
    for (id, query, code) in cases {
        subscribe(&mut ws, id, query, json!({})).await;
        let msg = recv(&mut ws).await;
        assert_eq!(msg["id"], id, "{msg}");
        match msg["type"].as_str() {
            // Either an `error` message...
            Some("error") => assert_eq!(msg["payload"][0]["extensions"]["code"], code, "{msg}"),
            // ...or an execution result with the error, then `complete`.
            Some("next") => {
                assert_eq!(msg["payload"]["errors"][0]["extensions"]["code"], code, "{msg}");
                let done = recv(&mut ws).await;
                assert_eq!(done, json!({"type": "complete", "id": id}));
            }
            _ => panic!("expected error or next for {id}, got {msg}"),
        }
    }
    // The connection still works, and so does the id of a finished operation.
    subscribe(&mut ws, "unknown", RELEASES, json!({"after": 2})).await;
    let (revision, id, _) = next_release(&mut ws, "unknown").await;
    assert_eq!((revision, id.as_str()), (3, REVISION_ID));
}

// ---------------------------------------------------------------------------------------------
// observationRevised
// ---------------------------------------------------------------------------------------------

/// Reads `observationRevised` events until `total` has `t` and `regions` has `r` (the two
/// subscriptions interleave freely); each in arrival order.
async fn revised_events(ws: &mut Ws, t: usize, r: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut total, mut regions) = (Vec::new(), Vec::new());
    while total.len() < t || regions.len() < r {
        let msg = recv(ws).await;
        assert_eq!(msg["type"], "next", "{msg}");
        let event = msg["payload"]["data"]["observationRevised"].clone();
        match msg["id"].as_str() {
            Some("total") => total.push(event),
            Some("regions") => regions.push(event),
            _ => panic!("unexpected {msg}"),
        }
    }
    (total, regions)
}

/// `observationRevised` reports value changes of matching keys (previous, delta), not new or unchanged figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observation_revised_reports_changes_of_the_watched_figure_only() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let fields = "key period previousValue value delta version revision";
    for (id, key) in [("total", "_T._T._T"), ("regions", "_T._T.")] {
        subscribe(
            &mut ws,
            id,
            &format!(
                "subscription {{ observationRevised(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"{key}\") {{ {fields} }} }}"
            ),
            json!({}),
        )
        .await;
    }
    wait_subscribers(&app, 2).await;

    // 2025-S1 total: -4610 (synthetic revision, version 2) -> -4700.
    let r1 = publish_revision(&app, new_release("_T._T._T", "2025-S1", "-4700").1).await;
    let expected_first = json!({"key": "_T._T._T", "period": "2025-S1", "previousValue": "-4610",
        "value": "-4700", "delta": "-90", "version": 3, "revision": r1});
    let (total, regions) = revised_events(&mut ws, 1, 1).await;
    assert_eq!((total, regions), (vec![expected_first.clone()], vec![expected_first]));

    // Nothing for `total`: a new figure of the key, a revision of another key (which the
    // pattern matches), the same value again (a version 4 that changes nothing).
    publish_revision(&app, new_release("_T._T._T", "2026-S1", "100").1).await;
    let asia = publish_revision(&app, new_release("_T._T.ASIA", "2025-S1", "3600").1).await;
    publish_revision(&app, new_release("_T._T._T", "2025-S1", "-4700").1).await;
    // A second real change of the total is its next event.
    let r2 = publish_revision(&app, new_release("_T._T._T", "2025-S1", "-4650").1).await;
    let expected_second = json!({"key": "_T._T._T", "period": "2025-S1", "previousValue": "-4700",
        "value": "-4650", "delta": "50", "version": 5, "revision": r2});
    let (total, regions) = revised_events(&mut ws, 1, 2).await;
    assert_eq!(total, std::slice::from_ref(&expected_second));
    assert_eq!(
        regions,
        [
            json!({"key": "_T._T.ASIA", "period": "2025-S1", "previousValue": "3570", "value": "3600",
                   "delta": "30", "version": 3, "revision": asia}),
            expected_second
        ]
    );
    expect_quiet(&mut ws).await;
}
