//! Two nodes over one JetStream stream: a release read and heard on the other node, a
//! scheduled release revealed once, concurrent writers keeping one dense log.

use super::*;

/// A release published through node A is readable on node B, at the same revision and hash,
/// and a subscriber on B hears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_published_on_one_node_is_read_and_heard_on_the_other() {
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    let fixtures_head = head_of(&a).await;
    assert!(fixtures_head > 0, "node A loaded the fixtures");
    wait_head(&b, fixtures_head, "node B reads the fixtures node A wrote").await;

    let mut ws = b
        .subscribe(
            "1",
            "subscription { releasePublished { revision release { id } } }",
            json!({}),
        )
        .await;
    // The subscription is set up once node B counts it.
    let started = Instant::now();
    loop {
        let metrics = b.client.get(format!("http://{}/metrics", b.addr)).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        if text.lines().any(|l| l == "tradeledger_subscribers 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the subscription on node B was not set up within 60 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let id = Uuid::new_v4().to_string();
    let (status, body) = a
        .try_publish(&release_input(&id, "_T._T._T", "2031-S1", "1.5"))
        .await
        .unwrap();
    let (revision, hash, duplicate) = ack_of(status, &body).unwrap_or_else(|| panic!("publish on A: {body}"));
    assert!(!duplicate);
    assert_eq!(revision, fixtures_head + 1);

    let heard = ws.next_data().await;
    assert_eq!(
        heard["releasePublished"]["revision"].as_u64(),
        Some(revision),
        "{heard}"
    );
    assert_eq!(
        heard["releasePublished"]["release"]["id"].as_str(),
        Some(id.as_str()),
        "{heard}"
    );

    let data = b
        .query(
            "query($id: ID!) { release(id: $id) { revision hash } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["release"]["revision"].as_u64(), Some(revision), "{data}");
    assert_eq!(data["release"]["hash"].as_str(), Some(hash.as_str()), "{data}");

    // The same release re-sent through node B is a duplicate with the original revision.
    let (status, body) = b
        .try_publish(&release_input(&id, "_T._T._T", "2031-S1", "1.5"))
        .await
        .unwrap();
    assert_eq!(ack_of(status, &body), Some((revision, hash, true)), "{body}");
}

/// A release scheduled through node A is revealed exactly once although both nodes run the
/// reveal at its time: the log (the same on both) holds one reveal, after the time, and both
/// nodes serve its figure. Node B never had the sealed content in memory: it is in the
/// stream's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_to_reveal_a_scheduled_release_reveal_it_once() {
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    wait_head(&b, head_of(&a).await, "node B reads the fixtures").await;

    let id = Uuid::new_v4().to_string();
    let mut input = release_input(&id, "_T._T._T", "2031-S1", "4.25");
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    input["publishedAt"] = json!(due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (status, body) = a
        .post(
            "mutation($input: ReleaseInput!) { scheduleRelease(input: $input) { revision commitment } }",
            json!({ "input": input }),
            Some(TOKEN),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    let figure = format!(r#"{{ release(id: "{id}") {{ revision }} }}"#);
    let started = Instant::now();
    let revision = loop {
        let data = b.query(&figure, json!({})).await;
        if let Some(r) = data["release"]["revision"].as_u64() {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not revealed on node B within 120 s: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Both nodes had every chance to reveal; then the logs are compared.
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_head(&a, head_of(&b).await, "node A catches up").await;
    for (server, name) in [(&a, "A"), (&b, "B")] {
        let (_, releases) = checked_log(server, name).await;
        assert_eq!(releases.get(&id).map(|r| r.0), Some(revision), "node {name}");
        let data = server
            .query("{ events(first: 1000) { nodes { kind recordedAt } } }", json!({}))
            .await;
        let reveals: Vec<&Value> = data["events"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "RELEASE_REVEALED")
            .collect();
        assert_eq!(reveals.len(), 1, "node {name}: {data}");
        let at: chrono::DateTime<chrono::Utc> = reveals[0]["recordedAt"].as_str().unwrap().parse().unwrap();
        assert!(at >= due, "node {name}: revealed at {at}, before {due}");
    }
}

/// Four writers through two nodes, two of them re-sending the same release ids through the
/// other node: the log is dense and chained, the same on both nodes, each release is in it
/// once at the revision its acknowledgement named, and a re-send is a duplicate of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_through_two_nodes_keep_one_dense_log() {
    const PER_WRITER: usize = 25;
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    let start = head_of(&a).await;

    // Writers 0 and 1 send their own releases; writers 2 and 3 send writer 0's and 1's again,
    // through the other node, in another order.
    let inputs: Vec<Vec<(String, Value)>> = (0..2)
        .map(|w| {
            (0..PER_WRITER)
                .map(|i| {
                    let id = Uuid::new_v4().to_string();
                    let period = format!("{}-S{}", 2040 + w * 18 + i / 2, i % 2 + 1);
                    let input = release_input(&id, "_T._T._T", &period, &format!("{w}{i}.5"));
                    (id, input)
                })
                .collect()
        })
        .collect();
    let servers = [&a, &b];
    let runs = (0..4).map(|w| {
        let mut mine = inputs[w % 2].clone();
        if w >= 2 {
            mine.reverse();
        }
        // Writer w goes through node w % 2 for its own ids, the other node for re-sends.
        let server = servers[(w + w / 2) % 2];
        async move {
            let mut acks = Vec::new();
            for (id, input) in mine {
                let (status, body) = server.try_publish(&input).await.expect("publish");
                let ack = ack_of(status, &body).unwrap_or_else(|| panic!("writer {w}: {body}"));
                acks.push((id, ack));
            }
            acks
        }
    });
    let results = futures_util::future::join_all(runs).await;

    // Writes recorded through one node reach the other's copy a moment later: both catch up
    // with the newest head before their logs are read.
    let (head_a, log_a) = same_log_on_both(&a, &b).await;
    assert_eq!(head_a, start + 2 * PER_WRITER as u64, "each release recorded once");

    let mut fresh = 0;
    for (id, (revision, hash, duplicate)) in results.into_iter().flatten() {
        assert_eq!(
            log_a.get(&id),
            Some(&(revision, hash.clone())),
            "release {id} acknowledged at {revision}"
        );
        if !duplicate {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 2 * PER_WRITER, "each release acknowledged as new exactly once");
}
