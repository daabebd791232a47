//! Importing into a stream a node serves, a restarted node fetching only what it lacks, and
//! the admin import and export on JetStream nodes.

use super::*;

/// `tradeledger import --store jetstream` fills a fresh stream through the write path of
/// `serve`; a node over the stream then serves the imported figures. A file with a bad
/// release changes nothing, and the sled-only commands refuse `--store jetstream`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_fills_a_stream_that_a_node_serves_and_a_bad_file_changes_nothing() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = cluster.urls();
    let file = dir.path().join("generated.json");
    let file_s = file.display().to_string();
    let out = run_cli([
        "generate",
        "--releases",
        "40",
        "--observations-per-release",
        "25",
        file_s.as_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let import_dir = dir.path().join("import");
    let import_s = import_dir.display().to_string();
    let import_into = |files: Vec<String>| {
        let mut args: Vec<String> = [
            "import",
            "--data-dir",
            import_s.as_str(),
            "--store",
            "jetstream",
            "--nats-url",
            urls.as_str(),
            "--nats-stream",
            "FILLED",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(files);
        run_cli(args)
    };
    let out = import_into(vec![file_s.clone()]).await;
    assert_eq!(out.code(), Some(0), "import into a fresh stream: {out:?}");
    assert!(out.stdout.contains("head revision 41"), "{out:?}");

    // A file whose second release names an unknown code: refused whole, the stream unchanged.
    let releases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mut good = releases[1].clone();
    good["id"] = json!(Uuid::new_v4().to_string());
    good["title"] = json!("SYNTHETIC release not to be recorded");
    let mut bad = good.clone();
    bad["id"] = json!(Uuid::new_v4().to_string());
    bad["observations"][0]["key"] = json!("NOPE._T._T");
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, serde_json::to_vec(&json!([good, bad])).unwrap()).unwrap();
    let out = import_into(vec![bad_file.display().to_string()]).await;
    assert_ne!(out.code(), Some(0), "a bad file was imported: {out:?}");
    assert!(out.stderr.contains("nothing was recorded"), "{out:?}");
    assert!(out.stderr.contains("NOPE"), "the error names the bad code: {out:?}");

    let node = Server::start(
        &dir.path().join("node"),
        &[
            "--store",
            "jetstream",
            "--nats-url",
            urls.as_str(),
            "--nats-stream",
            "FILLED",
            "--no-fixtures",
            "--log",
            "warn",
        ],
    )
    .await;
    let (head, logged) = checked_log(&node, "the imported stream").await;
    assert_eq!(head, 41, "the dataset and 40 releases, nothing of the bad file");
    assert_eq!(logged.len(), 40);
    for r in &releases[1..] {
        let id = r["id"].as_str().unwrap();
        assert!(logged.contains_key(id), "release {id} is not in the stream");
    }
    // The latest figures are those of the last release that set them.
    let last = releases.last().unwrap();
    for o in last["observations"].as_array().unwrap().iter().take(10) {
        let data = node
            .query(
                "query($k: String!, $p: Period!) { observation(dataset: \"SYNTHETIC_TRADE\", key: $k, period: $p) { value } }",
                json!({ "k": o["key"], "p": o["period"] }),
            )
            .await;
        assert_eq!(data["observation"]["value"], o["value"], "{o}");
    }

    // The sled-only commands refuse a JetStream store, from the flag or the environment.
    for command in ["verify", "rebuild", "export", "snapshot"] {
        let data = dir.path().join(format!("refused-{command}"));
        let out = std::process::Command::new(BIN)
            .args([command, "--data-dir"])
            .arg(&data)
            .env("TRADELEDGER_STORE", "jetstream")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("sled store only"), "{command}: {stderr}");
        assert!(!data.exists(), "{command} created its data directory");
    }
    let out = run_cli(["import", "--store", "jetstream", "--event-log", file_s.as_str()]).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("sled store only"), "{out:?}");
}

/// A node over stream `stream` with one replica (a one-server cluster), logging at info.
async fn start_logged(data: &Path, cluster: &NatsCluster, stream: &str, fixtures: bool, extra: &[&str]) -> Server {
    let args = [
        &["--nats-stream", stream, "--nats-replicas", "1", "--log", "info"],
        extra,
    ]
    .concat();
    start_node(data, cluster, fixtures, &args).await
}

/// The `key=value` fields of the first line of `log` that contains `message`.
fn logged(log: &str, message: &str) -> HashMap<String, String> {
    let line = log
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no `{message}` line in the log:\n{log}"));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// Publishes `n` one-observation releases through `server`; returns their ids.
async fn publish_n(server: &Server, n: usize, period: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::new_v4().to_string();
        let value = format!("{}.5", i + 1);
        let (status, body) = server
            .try_publish(&release_input(&id, "_T._T._T", period, &value))
            .await
            .unwrap();
        assert!(ack_of(status, &body).is_some(), "{body}");
        ids.push(id);
    }
    ids
}

async fn release_revision(server: &Server, id: &str) -> Option<u64> {
    let data = server
        .query("query($id: ID!) { release(id: $id) { revision } }", json!({ "id": id }))
        .await;
    data["release"]["revision"].as_u64()
}

/// A node keeps its copy of the stream in `DATA_DIR/jetstream`. Restarted, it folds the copy
/// from its disk (continuing its snapshot) and fetches from the stream only what the stream
/// gained meanwhile. Pointed at another stream (a stream replaced under the name it knows
/// shows the same), it empties the copy and reads the new stream whole: nothing of the old
/// log survives, and the new one verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_fetches_only_what_its_copy_lacks() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));

    let a = start_logged(&a_dir, &cluster, "COPIED", true, &[]).await;
    let first = publish_n(&a, 2, "2031-S1").await;
    let head = head_of(&a).await;
    let log = a.stop().await;
    let read = logged(&log, "read the JetStream stream");
    assert_eq!((read["local"].as_str(), read["fetched"].as_str()), ("0", "0"), "{log}");
    assert!(
        a_dir.join("jetstream").is_dir(),
        "no copy of the stream in the data directory"
    );

    // Node B joins fresh and writes while A is down.
    let b = start_logged(&b_dir, &cluster, "COPIED", false, &[]).await;
    assert_eq!(head_of(&b).await, head);
    let later = publish_n(&b, 3, "2031-S2").await;
    let b_head = head_of(&b).await;
    let read = logged(&b.stderr(), "read the JetStream stream");
    assert_eq!(read["local"], "0");
    assert_eq!(read["fetched"], head.to_string(), "node B reads the whole stream");

    let a = start_logged(&a_dir, &cluster, "COPIED", false, &[]).await;
    let log = a.stderr();
    let read = logged(&log, "read the JetStream stream");
    assert_eq!(read["local"], head.to_string(), "node A reads its copy: {log}");
    assert_eq!(
        read["fetched"],
        (b_head - head).to_string(),
        "and fetches only the tail: {log}"
    );
    assert_eq!(
        logged(&log, "ledger opened")["snapshot"],
        head.to_string(),
        "the snapshot is continued over the copy: {log}"
    );
    for id in first.iter().chain(&later) {
        assert!(
            release_revision(&a, id).await.is_some(),
            "release {id} is missing on node A"
        );
    }
    let (a_head, _) = checked_log(&a, "node A after its restart").await;
    assert_eq!(a_head, b_head);
    // Writes through the restarted node continue the log both nodes see.
    let more = publish_n(&a, 1, "2032-S1").await;
    wait_head(&b, b_head + 1, "node B sees node A's write").await;
    assert_eq!(release_revision(&b, &more[0]).await, Some(b_head + 1));
    drop(b);
    a.stop().await;

    // A damaged copy (a flipped byte in revision 2) is fetched again, not served as a
    // damaged log. Without the snapshot, the whole copy is read.
    let head = b_head + 1;
    {
        let copy = SledStore::open(&a_dir.join("jetstream")).expect("open the stopped node's copy");
        assert_eq!(copy.head().unwrap().revision, head);
        let mut bytes = copy.get(2).unwrap().expect("revision 2 is in the copy");
        let at = bytes.len() - 2;
        bytes[at] ^= 1;
        copy.events_tree().insert(2u64.to_be_bytes(), bytes).unwrap();
        copy.flush_blocking().unwrap();
    }
    let a = start_logged(&a_dir, &cluster, "COPIED", false, &["--no-snapshot"]).await;
    let log = a.stderr();
    assert!(
        log.contains("emptying this node's copy of the JetStream stream") && log.contains("damaged at revision 2"),
        "the damaged copy is not emptied: {log}"
    );
    let read = logged(&log, "read the JetStream stream");
    assert_eq!(read["local"], "0", "{log}");
    assert_eq!(read["fetched"], head.to_string(), "{log}");
    let (a_head, _) = checked_log(&a, "node A after its copy was damaged").await;
    assert_eq!(a_head, head);
    a.stop().await;

    // Another stream, longer than A's copy, whose record at the copy's head differs.
    let c = start_logged(&dir.path().join("c"), &cluster, "OTHER", true, &[]).await;
    let other = publish_n(&c, 8, "2033-S1").await;
    let other_head = head_of(&c).await;
    assert!(other_head > b_head + 1);
    drop(c);
    let a = start_logged(&a_dir, &cluster, "OTHER", false, &[]).await;
    let log = a.stderr();
    assert!(
        log.contains("emptying this node's copy of the JetStream stream"),
        "the copy of the old stream is not emptied: {log}"
    );
    let read = logged(&log, "read the JetStream stream");
    assert_eq!(read["local"], "0", "{log}");
    assert_eq!(read["fetched"], other_head.to_string(), "{log}");
    let (a_head, releases) = checked_log(&a, "node A on the other stream").await;
    assert_eq!(a_head, other_head);
    assert!(other.iter().all(|id| releases.contains_key(id)), "{releases:?}");
    assert!(
        !first.iter().chain(&later).any(|id| releases.contains_key(id)),
        "releases of the old stream survived on node A"
    );
}

/// The admin endpoints on a JetStream node: a batch posted to node A (`POST
/// /admin/releases`) is recorded once in the stream, a retry through node B answers it as
/// duplicates, and `GET /admin/events` gives the same log, byte for byte, from either node,
/// ending with a checkpoint of all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_import_and_export_on_jetstream_nodes() {
    const ADMIN: &str = "cluster-admin-secret";
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--nats-replicas", "1", "--admin-tokens", "ops:cluster-admin-secret"];
    let a = start_node(&dir.path().join("a"), &cluster, true, &extra).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &extra).await;
    let fixtures_head = head_of(&a).await;
    let releases: Vec<Value> = (0..3)
        .map(|i| json!({ "release": release_input(&Uuid::new_v4().to_string(), "_T._T._T", &format!("203{i}-S1"), "7") }))
        .collect();
    let batch = json!({ "releases": releases }).to_string();
    let post = |server: &Server| {
        server
            .client
            .post(format!("http://{}/admin/releases", server.addr))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(batch.clone())
            .send()
    };
    let r: Value = post(&a).await.unwrap().json().await.unwrap();
    assert_eq!(r["releasesRecorded"], 3, "{r}");
    assert_eq!(r["headRevision"].as_u64(), Some(fixtures_head + 3), "{r}");
    wait_head(&b, fixtures_head + 3, "node B reads the batch node A recorded").await;
    let r: Value = post(&b).await.unwrap().json().await.unwrap();
    assert_eq!(
        (r["releasesRecorded"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{r}"
    );
    assert_eq!(head_of(&a).await, fixtures_head + 3, "the retry added revisions");

    let events = |server: &Server| {
        let url = format!("http://{}/admin/events", server.addr);
        let client = server.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let (from_a, from_b) = (events(&a).await, events(&b).await);
    let lines: Vec<&str> = from_b.lines().collect();
    assert_eq!(lines.len() as u64, fixtures_head + 4, "{from_b}");
    let (events_a, events_b) = (
        from_a.rsplit_once("{\"checkpoint\"").unwrap().0,
        from_b.rsplit_once("{\"checkpoint\"").unwrap().0,
    );
    assert_eq!(events_a, events_b, "the nodes export different logs");
    let last: Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    let note = last["checkpoint"].as_str().unwrap();
    assert_eq!(
        note.lines().nth(1),
        Some((fixtures_head + 3).to_string().as_str()),
        "{note}"
    );
    let (_, log) = checked_log(&b, "node B").await;
    assert_eq!(log.len(), 5, "the fixtures' 2 releases and the batch's 3, once each");
}
