//! The event chain, `verifyLedger`, and publishing: read-your-write, idempotency, as-of reads
//! after later revisions.

use super::*;

/// `events` lists 3 events whose `prevHash` links the chain and whose `hash` is SHA-256(`canonical`).
#[tokio::test]
async fn events_form_a_hash_chain() {
    let app = spawn_app().await;
    let data = app.query(
            "{ events { totalCount pageInfo { hasNextPage } nodes { revision kind actor prevHash hash canonical dataset release { id } } } }",
            json!({}),
        ).await;
    let c = &data["events"];
    assert_eq!(c["totalCount"], 3);
    assert_eq!(c["pageInfo"]["hasNextPage"], false);
    let nodes = c["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let kinds: Vec<&str> = nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["DATASET_DEFINED", "RELEASE_PUBLISHED", "RELEASE_PUBLISHED"]);
    assert_eq!(nodes[0]["release"], Value::Null);
    assert_eq!(nodes[1]["release"]["id"], PRELIMINARY_ID);
    assert_eq!(nodes[2]["release"]["id"], REVISION_ID);
    let mut prev = "0".repeat(64);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["revision"], i + 1);
        assert_eq!(n["actor"], "fixtures");
        assert_eq!(n["dataset"], DATASET);
        assert_eq!(n["prevHash"], prev.as_str(), "event {}", i + 1);
        let canonical = n["canonical"].as_str().unwrap();
        let hash = n["hash"].as_str().unwrap();
        assert!(is_hex64(hash));
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            hash,
            "event {}",
            i + 1
        );
        // The canonical bytes name the revision and the previous hash they chain to.
        let parsed: Value = serde_json::from_str(canonical).expect("canonical is JSON");
        assert_eq!(parsed["revision"], i + 1);
        assert_eq!(parsed["prev_hash"], prev.as_str());
        prev = hash.to_owned();
    }
    assert_eq!(prev, app.head().await.1, "the last hash is the ledger head");

    // Paging by revision.
    let data = app
        .query(
            "{ events(after: 1, first: 1) { totalCount pageInfo { hasNextPage hasPreviousPage } nodes { revision } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["nodes"], json!([{ "revision": 2 }]));
    assert_eq!(data["events"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(data["events"]["pageInfo"]["hasPreviousPage"], true);
    let v = app.gql("{ events(after: -1) { totalCount } }", json!({})).await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

/// `verifyLedger` checks all 3 events and finds nothing wrong.
#[tokio::test]
async fn verify_ledger_is_ok() {
    let app = spawn_app().await;
    let data = app
        .query("{ verifyLedger { ok checked firstBadRevision reason } }", json!({}))
        .await;
    assert_eq!(
        data["verifyLedger"],
        json!({ "ok": true, "checked": 3, "firstBadRevision": null, "reason": null })
    );
}

// ---------------------------------------------------------------------------------------
// publish, read-your-write, idempotency, as-of after later revisions

/// A publish is visible to the next read; re-sending it is `duplicate` with the original revision.
#[tokio::test]
async fn publish_then_read_your_write_and_idempotent_republish() {
    let app = spawn_app().await;
    let input = release_input(NEW_ID, "IPR._T._T", "2025-S1", "-2600.5");
    let r = app.publish(input.clone()).await;
    assert_eq!(r["revision"], 4);
    assert_eq!(r["duplicate"], false);
    assert_eq!(r["release"], json!({ "id": NEW_ID, "status": "REVISED" }));
    let hash = r["hash"].as_str().unwrap().to_owned();
    assert!(is_hex64(&hash));
    assert_eq!(app.head().await, (4, hash.clone()));

    let data = app
        .query(OBSERVATION, json!({ "key": "IPR._T._T", "period": "2025-S1" }))
        .await;
    let o = &data["observation"];
    assert_eq!(o["value"], "-2600.5");
    assert_eq!(o["revisedFrom"], "-2530");
    assert_eq!(o["preliminaryValue"], "-2450");
    assert_eq!(o["versionCount"], 3);
    assert_eq!(o["revision"], 4);
    assert_eq!(o["revisionFromPreliminary"], "-150.5");
    assert_eq!(o["release"]["id"], NEW_ID);

    // The write was recorded under the name of the token, never its secret.
    let data = app
        .query("{ events(after: 3) { nodes { actor canonical } } }", json!({}))
        .await;
    assert_eq!(data["events"]["nodes"][0]["actor"], "tester");
    assert!(!data["events"]["nodes"][0]["canonical"]
        .as_str()
        .unwrap()
        .contains(WRITE_SECRET));

    // Same id, same content: the original answer.
    let again = app.publish(input.clone()).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["revision"], 4);
    assert_eq!(again["hash"], hash.as_str());
    assert_eq!(app.head().await, (4, hash.clone()));
    // Also when the head has moved on since, and with a stale expectedRevision.
    let later = release_input(LATER_ID, "CUL._T._T", "2025-S1", "450");
    assert_eq!(app.publish(later).await["revision"], 5);
    let again =
        data_of(app.gql_write(PUBLISH, json!({ "input": input, "expected": 3 })).await)["publishRelease"].clone();
    assert_eq!(
        (again["duplicate"].clone(), again["revision"].clone()),
        (json!(true), json!(4))
    );
    assert_eq!(app.head().await.0, 5);
}

/// `expectedRevision` equal to the head is accepted.
#[tokio::test]
async fn publish_with_matching_expected_revision() {
    let app = spawn_app().await;
    let input = release_input(NEW_ID, "_T._T._T", "2025-S1", "-4600");
    let r = data_of(app.gql_write(PUBLISH, json!({ "input": input, "expected": 3 })).await)["publishRelease"].clone();
    assert_eq!(r["revision"], 4);
    assert_eq!(r["duplicate"], false);
}

/// After later revisions land, as-of reads still give exactly what was public at each point.
#[tokio::test]
async fn as_of_reads_are_stable_after_later_revisions() {
    let app = spawn_app().await;
    let first = release_input(NEW_ID, "_T._T._T", "2025-S1", "-4620");
    app.publish(first).await;
    let mut second = release_input(LATER_ID, "_T._T._T", "2025-S1", "-4700.25");
    second["publishedAt"] = json!("2026-03-01T00:00:00Z");
    app.publish(second).await;
    assert_eq!(app.head().await.0, 5);

    let expect = [
        (json!({ "revision": 2 }), "-4530", 1),
        (json!({ "revision": 3 }), "-4610", 2),
        (json!({ "revision": 4 }), "-4620", 3),
        (json!({ "revision": 5 }), "-4700.25", 4),
        (json!({ "release": PRELIMINARY_ID }), "-4530", 1),
        (json!({ "release": REVISION_ID }), "-4610", 2),
        (json!({ "release": NEW_ID }), "-4620", 3),
        (json!({ "publishedAt": "2025-10-01T00:00:00Z" }), "-4530", 1),
        (json!({ "publishedAt": "2025-12-31T00:00:00Z" }), "-4610", 2),
        (json!({ "publishedAt": "2026-02-01T00:00:00Z" }), "-4620", 3),
        (Value::Null, "-4700.25", 4),
    ];
    for (as_of, value, versions) in expect {
        let o = total_as_of(&app, as_of.clone()).await;
        assert_eq!(o["value"], value, "asOf {as_of}");
        assert_eq!(o["versionCount"], versions, "asOf {as_of}");
    }
    // The breakdown as of revision 2 is unchanged by the later totals.
    let b = breakdown(&app, "INDUSTRY", json!({ "revision": 2 })).await;
    assert_eq!(b["residual"], "-1500");
    let b = breakdown(&app, "INDUSTRY", Value::Null).await;
    // -4700.25 - (1600 - 2470 - 2200) = -1630.25
    assert_eq!(b["residual"], "-1630.25");
}
