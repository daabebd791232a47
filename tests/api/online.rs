//! The online operations of a running server, for admin tokens: `export --url` (the log and
//! its signed checkpoint, resumable), `import --url` (release files in checked batches, safe
//! to run again), and their refusals. Driven through the real binary, over real HTTP.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::proc_support::{run_cli, Output, Server};
use crate::support::*;

const ADMIN: &str = "ops:online-admin-secret";
const ADMIN_SECRET_BIN: &str = "online-admin-secret";
const WRITE: &str = "w:online-write-secret";

fn cli(args: &[&OsStr]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| a.to_os_string()).collect()
}

async fn export_url(addr: &str, token: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = cli(&[
        OsStr::new("export"),
        OsStr::new("--url"),
        OsStr::new(addr),
        OsStr::new("--token"),
        OsStr::new(token),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    args.extend(extra.iter().map(|a| a.into()));
    run_cli(args).await
}

async fn import_url(addr: &str, token: &str, files: &[PathBuf]) -> Output {
    let mut args = cli(&[
        OsStr::new("import"),
        OsStr::new("--url"),
        OsStr::new(addr),
        OsStr::new("--token"),
        OsStr::new(token),
    ]);
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run_cli(args).await
}

async fn publish_more(server: &Server, n: usize) {
    for i in 0..n {
        let id = format!("6b1f0c2e-4d3a-4e51-9a57-0000000e{i:04}");
        server
            .publish(release_input(&id, "ICT._T._T", "2025-S1", &format!("{}", 1961 + i)))
            .await;
    }
}

/// The online export of a served ledger is, byte for byte, the offline export of the same
/// store, and its checkpoint is one `import --event-log --checkpoint` accepts into a fresh
/// store, with the same root.
#[tokio::test]
async fn online_export_equals_the_offline_one_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--admin-tokens", ADMIN, "--write-tokens", WRITE]).await;
    publish_more(&server, 3).await;
    let base = format!("http://{}", server.addr);
    let online = dir.path().join("online.jsonl");
    let out = export_url(&base, ADMIN_SECRET_BIN, &online, &[]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("exported 6 events"), "{out:?}");
    server.stop().await;

    let offline = dir.path().join("offline.jsonl");
    let out = run_cli([
        OsStr::new("export"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
        OsStr::new("--out"),
        offline.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let offline_root = out.stderr.split("tree root ").nth(1).expect("root").trim().to_owned();
    assert_eq!(
        std::fs::read(&online).unwrap(),
        std::fs::read(&offline).unwrap(),
        "online and offline exports differ"
    );

    let checkpoint = dir.path().join("online.jsonl.checkpoint");
    let note = std::fs::read_to_string(&checkpoint).unwrap();
    assert_eq!(
        note.lines().nth(1),
        Some("6"),
        "the checkpoint covers the 6 events: {note}"
    );
    let restored = dir.path().join("restored");
    let out = run_cli([
        OsStr::new("import"),
        OsStr::new("--data-dir"),
        restored.as_os_str(),
        OsStr::new("--event-log"),
        online.as_os_str(),
        OsStr::new("--checkpoint"),
        checkpoint.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&format!("tree root {offline_root}")),
        "{out:?} vs {offline_root}"
    );
}

/// An interrupted export (a last line cut short) is continued where it stopped; `--after N`
/// keeps the first N events and fetches the rest; a later run appends what was published
/// since. Each ends with a file equal to a fresh export.
#[tokio::test]
async fn online_export_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--admin-tokens", ADMIN, "--write-tokens", WRITE]).await;
    publish_more(&server, 4).await;
    let base = format!("http://{}", server.addr);
    let full = dir.path().join("full.jsonl");
    let out = export_url(&base, ADMIN_SECRET_BIN, &full, &[]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let full_bytes = std::fs::read(&full).unwrap();

    // Cut in the middle of the fourth line, as a killed export leaves it.
    let cut = dir.path().join("cut.jsonl");
    let text = String::from_utf8(full_bytes.clone()).unwrap();
    let three: usize = text.split_inclusive('\n').take(3).map(str::len).sum();
    std::fs::write(&cut, &full_bytes[..three + 40]).unwrap();
    let out = export_url(&base, ADMIN_SECRET_BIN, &cut, &[]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("3 kept from before, 4 appended"), "{out:?}");
    assert_eq!(std::fs::read(&cut).unwrap(), full_bytes);

    // From a revision.
    let out = export_url(&base, ADMIN_SECRET_BIN, &cut, &["--after", "2"]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("2 kept from before, 5 appended"), "{out:?}");
    assert_eq!(std::fs::read(&cut).unwrap(), full_bytes);
    // Beyond what the file holds: refused, and the file is left as it was.
    let out = export_url(&base, ADMIN_SECRET_BIN, &cut, &["--after", "9"]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("holds only 7 complete events"), "{out:?}");
    assert_eq!(std::fs::read(&cut).unwrap(), full_bytes);

    // Later: only what is new is fetched.
    publish_more(&server, 6).await;
    let out = export_url(&base, ADMIN_SECRET_BIN, &cut, &[]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("7 kept from before, 2 appended"), "{out:?}");
    let fresh = dir.path().join("fresh.jsonl");
    let out = export_url(&base, ADMIN_SECRET_BIN, &fresh, &[]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(&cut).unwrap(), std::fs::read(&fresh).unwrap());
    server.stop().await;
}

fn generate(args: &[&str], out: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["generate".into()];
    v.extend(args.iter().map(|a| a.into()));
    v.push(out.as_os_str().to_owned());
    v
}

/// `serve ARGS` over `dir/data`, and in `dir` the files an online import sends: a dataset
/// file and a CSV file `csv_name` of `releases` generated releases of `per_release`
/// observations each. Returns the server, its base URL (`http://127.0.0.1:PORT`), and the
/// two files.
async fn served_with_files(
    dir: &Path,
    args: &[&str],
    csv_name: &str,
    releases: u32,
    per_release: u32,
) -> (Server, String, PathBuf, PathBuf) {
    let server = Server::start(&dir.join("data"), args).await;
    let base = format!("http://{}", server.addr);
    let dataset = dir.join("dataset.json");
    let csv = dir.join(csv_name);
    assert_eq!(run_cli(generate(&["--releases", "0"], &dataset)).await.code(), Some(0));
    let (releases, per_release) = (releases.to_string(), per_release.to_string());
    let g = run_cli(generate(
        &[
            "--releases",
            &releases,
            "--observations-per-release",
            &per_release,
            "--format",
            "csv",
        ],
        &csv,
    ))
    .await;
    assert_eq!(g.code(), Some(0), "{g:?}");
    (server, base, dataset, csv)
}

async fn head(server: &Server) -> u64 {
    let v = server.query("{ ledger { revision } }", json!({})).await;
    v["ledger"]["revision"].as_u64().expect("revision")
}

/// `import --url` records JSON and CSV release files into a running server; running it again
/// records nothing new and says the releases were already there.
#[tokio::test]
async fn online_import_records_files_and_a_second_run_gives_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, dataset, csv) = served_with_files(
        dir.path(),
        &["--no-fixtures", "--admin-tokens", ADMIN, "--write-tokens", WRITE],
        "releases.csv",
        700,
        3,
    )
    .await;
    let fixtures: Vec<PathBuf> = ["01_bok_2025_s1_preliminary.json", "02_synthetic_2025_s1_revision.json"]
        .iter()
        .map(|f| fixtures_dir().join(f))
        .collect();
    let mut files = vec![fixtures_dir().join("00_dataset.json")];
    files.extend(fixtures.clone());
    files.push(dataset.clone());
    files.push(csv.clone());

    let out = import_url(&base, ADMIN_SECRET_BIN, &files).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("recorded 2 datasets and 702 releases"), "{out:?}");
    assert!(out.stderr.contains("702/702 releases sent"), "progress: {out:?}");
    let after_first = head(&server).await;
    assert_eq!(after_first, 704);

    let out = import_url(&base, ADMIN_SECRET_BIN, &files).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("recorded 0 datasets and 0 releases"), "{out:?}");
    assert!(out.stdout.contains("already there: 704"), "{out:?}");
    assert_eq!(head(&server).await, after_first, "a second run added revisions");

    // The actor is the admin token's name.
    let v = server
        .query("{ events(after: 3, first: 1) { edges { node { actor } } } }", json!({}))
        .await;
    assert_eq!(v["events"]["edges"][0]["node"]["actor"], "ops", "{v}");
    server.stop().await;
}

/// A file with a bad line is refused whole, naming the file and line, and nothing is
/// recorded, neither from it nor from the files and batches before it: a syntax error is found
/// before anything is sent, an unknown code by the server's check of every batch.
#[tokio::test]
async fn online_import_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, dataset, csv) = served_with_files(
        dir.path(),
        &["--admin-tokens", ADMIN, "--write-tokens", WRITE],
        "releases.csv",
        600,
        1,
    )
    .await;
    let before = head(&server).await;
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // An unknown code on line 590: in the second batch of releases.
    let bad_code = dir.path().join("bad-code.csv");
    let mut changed = lines.clone();
    let fields: Vec<&str> = changed[589].split(',').collect();
    let key_at = fields
        .iter()
        .position(|f| f.contains('.') && f.split('.').count() == 3)
        .expect("a key");
    let mut fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    fields[key_at] = "NOPE._T._T".into();
    let replaced = fields.join(",");
    changed[589] = &replaced;
    std::fs::write(&bad_code, changed.join("\n") + "\n").unwrap();
    let out = import_url(&base, ADMIN_SECRET_BIN, &[dataset.clone(), bad_code.clone()]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("bad-code.csv: line 590"), "{out:?}");
    assert!(out.stderr.contains("nothing was recorded"), "{out:?}");
    assert_eq!(head(&server).await, before, "something was recorded");

    // A value that is not a number on line 300: refused before anything is sent.
    let bad_value = dir.path().join("bad-value.csv");
    let mut changed = lines.clone();
    let row = changed[299].rsplit_once(',').unwrap().0.to_owned() + ",12x";
    changed[299] = &row;
    std::fs::write(&bad_value, changed.join("\n") + "\n").unwrap();
    let out = import_url(&base, ADMIN_SECRET_BIN, &[dataset.clone(), bad_value]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.contains("bad-value.csv") && out.stderr.contains("line 300"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("checked"),
        "sent before the files were read: {out:?}"
    );
    assert_eq!(head(&server).await, before, "something was recorded");
    server.stop().await;
}

/// The admin endpoints refuse callers without an admin token (401 without a valid token, 403
/// with a read or write one), and bound what they take: `after`, the batch's count.
#[tokio::test]
async fn admin_endpoints_need_an_admin_token_and_bound_their_input() {
    let app = spawn_app().await;
    let signer = tradeledger::tlog::Signer::generate("test.local/online").unwrap();
    app.ledger.set_signer(std::sync::Arc::new(signer));
    let base = format!("http://{}", app.addr);
    let events = format!("{base}/admin/events");
    let releases = format!("{base}/admin/releases");
    for (token, status) in [
        (None, 401),
        (Some("not-a-token-at-all"), 401),
        (Some(WRITE_SECRET), 403),
    ] {
        let mut get = app.client.get(&events);
        let mut post = app.client.post(&releases).body("{}");
        if let Some(t) = token {
            get = get.bearer_auth(t);
            post = post.bearer_auth(t);
        }
        for req in [get, post] {
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), status, "{token:?}");
            let body: Value = r.json().await.unwrap();
            let why = body["errors"][0].as_str().unwrap();
            assert!(
                why.contains("admin token") || why.contains("not valid"),
                "{token:?}: {body}"
            );
        }
    }
    let get = |q: &'static str| app.client.get(format!("{events}{q}")).bearer_auth(ADMIN_SECRET).send();
    let r = get("?after=99").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("beyond the ledger head (revision 3)"));
    let r = get("?after=-1").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = get("?before=1").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = get("?after=2").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["revision"], 3);
    assert!(lines[1]["checkpoint"].as_str().unwrap().contains("\n3\n"), "{text}");

    let post = |body: String| {
        app.client
            .post(&releases)
            .bearer_auth(ADMIN_SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let release = |i: usize| {
        json!({ "release": {
            "id": format!("6b1f0c2e-4d3a-4e51-9a57-00000000{i:04}"),
            "dataset": DATASET, "status": "REVISED", "title": "t", "publishedAt": "2025-10-01T00:00:00Z",
            "observations": [{ "key": "ICT._T._T", "period": "2025-S1", "value": "1" }]
        }})
    };
    let many: Vec<Value> = (0..1001).map(release).collect();
    let r = post(json!({ "releases": many }).to_string()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("1001 releases in one batch; at most 1000"));
    let r = post("[not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post("x".repeat(33 * 1024 * 1024)).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(app.head().await.0, 3, "a refused batch recorded something");
    // A good one is recorded, and a second time is a duplicate.
    for (recorded, duplicates) in [(1, 0), (0, 1)] {
        let r = post(json!({ "releases": [release(1)] }).to_string()).await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["releasesRecorded"].as_u64(), v["duplicates"].as_u64()),
            (Some(recorded), Some(duplicates)),
            "{v}"
        );
        assert_eq!(v["headRevision"], 4);
    }
}

/// `startLedgerVerification` returns at once with a job; `ledgerVerification` gives its
/// progress and, once done, the result `verifyLedgerFull` gives. Both need a write token.
#[tokio::test]
async fn background_verification_reports_progress_and_result() {
    let app = spawn_app().await;
    const START: &str = "mutation { startLedgerVerification { id phase total } }";
    const READ: &str = "query($id: ID) { ledgerVerification(id: $id) { id phase checked total finishedAt error
        result { ok checked firstBadRevision rootHash } } }";
    let (_, refused) = app.post(START, json!({}), None).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    let (_, refused) = app.post(READ, json!({}), None).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    assert_eq!(
        app.gql_write(READ, json!({})).await["data"]["ledgerVerification"],
        Value::Null
    );

    let full = app
        .gql_write(
            "{ verifyLedgerFull { ok checked firstBadRevision rootHash } }",
            json!({}),
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let started = app.gql_write(START, json!({})).await;
        let job = &started["data"]["startLedgerVerification"];
        assert_eq!(job["total"], 3, "{started}");
        let id = job["id"].as_str().expect("an id").to_owned();
        let mut done = Value::Null;
        for _ in 0..600 {
            let v = app.gql_write(READ, json!({ "id": id })).await;
            let job = v["data"]["ledgerVerification"].clone();
            assert_eq!(job["id"], id.as_str(), "{v}");
            assert!(job["checked"].as_u64().unwrap() <= 3, "{v}");
            if job["phase"] == "DONE" {
                done = job;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(done["checked"], 3, "{done}");
        assert!(done["finishedAt"].is_string() && done["error"].is_null(), "{done}");
        assert_eq!(done["result"], full["data"]["verifyLedgerFull"], "{done} vs {full}");
        assert_eq!(done["result"]["ok"], true);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "a finished job is not given again");
    // An id that is not the last job's: null.
    let v = app.gql_write(READ, json!({ "id": ids[0] })).await;
    assert_eq!(v["data"]["ledgerVerification"], Value::Null, "{v}");
}

/// `verifyLedgerFull` runs as the background job: one that cannot finish before the request
/// timeout hands the request back (`LIMIT_EXCEEDED` naming the job) instead of holding it,
/// the job goes on, and `ledgerVerification` gives its result once it can finish.
#[tokio::test]
async fn a_full_verification_longer_than_the_request_timeout_goes_on_as_a_job() {
    use tradeledger::testing::LedgerTesting;
    let app = spawn_app_with(|c| c.request_timeout = std::time::Duration::from_millis(1500), true).await;
    const FULL: &str = "{ verifyLedgerFull { ok checked firstBadRevision } }";
    const READ: &str = "query($id: ID) { ledgerVerification(id: $id) { id phase checked result { ok checked } } }";
    let turn = app.ledger.hold_verification().expect("no verification runs");
    let started = std::time::Instant::now();
    let (status, v) = app.post(FULL, json!({}), Some(WRITE_SECRET)).await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{v}");
    let id = v["errors"][0]["extensions"]["verificationJob"]
        .as_str()
        .unwrap_or_else(|| panic!("the job is named: {v}"))
        .to_owned();
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ledgerVerification"),
        "{v}"
    );
    assert!(waited < std::time::Duration::from_millis(1500), "held {waited:?}");
    let job = app.gql_write(READ, json!({ "id": id })).await;
    assert_eq!(job["data"]["ledgerVerification"]["phase"], "CHAIN", "{job}");
    drop(turn);
    let mut done = Value::Null;
    for _ in 0..500 {
        let job = app.gql_write(READ, json!({ "id": id })).await["data"]["ledgerVerification"].clone();
        if job["phase"] == "DONE" {
            done = job;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(done["result"], json!({ "ok": true, "checked": 3 }), "{done}");
    // With nothing in its way, it answers in the request.
    let v = app.gql_write(FULL, json!({})).await;
    assert_eq!(
        v["data"]["verifyLedgerFull"],
        json!({ "ok": true, "checked": 3, "firstBadRevision": null }),
        "{v}"
    );
}

/// `export --url --vkey` checks the checkpoint's signature: the server's own key passes, a
/// key of the same name that did not sign it fails clearly and writes no checkpoint.
#[tokio::test]
async fn online_export_checks_the_checkpoint_signature_with_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--admin-tokens", ADMIN]).await;
    let base = format!("http://{}", server.addr);
    let vkey = server.query("{ verifierKey }", json!({})).await["verifierKey"]
        .as_str()
        .expect("a verifier key")
        .to_owned();
    let good = dir.path().join("good.jsonl");
    let out = export_url(&base, ADMIN_SECRET_BIN, &good, &["--vkey", &vkey]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(dir.path().join("good.jsonl.checkpoint").exists());

    let name = vkey.split('+').next().unwrap();
    let other = tradeledger::tlog::note::Signer::generate(name).unwrap().verifier_key();
    let bad = dir.path().join("bad.jsonl");
    let out = export_url(&base, ADMIN_SECRET_BIN, &bad, &["--vkey", &other]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("does not verify with --vkey"), "{out:?}");
    assert!(
        !dir.path().join("bad.jsonl.checkpoint").exists(),
        "a checkpoint was written"
    );
    let out = export_url(&base, ADMIN_SECRET_BIN, &bad, &["--vkey", "not a key"]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("--vkey"), "{out:?}");
    server.stop().await;
}

/// `import --url` streams a CSV file in batches the server acknowledges one by one: a batch
/// refused when recorded (here a release whose id the first file recorded with other
/// figures) stops the import naming its file and line, the batches acknowledged before it
/// stay recorded, and running it again with the file fixed records only the rest.
#[tokio::test]
async fn online_import_keeps_acknowledged_batches_and_a_retry_records_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, dataset, csv) = served_with_files(
        dir.path(),
        &["--no-fixtures", "--admin-tokens", ADMIN],
        "a.csv",
        1000,
        1,
    )
    .await;
    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    let last = text.lines().last().unwrap();
    let value_of = |row: &str| row.rsplit_once(',').unwrap().0.to_owned();
    // The last release again, with another figure: checked alone it is fine; recorded after
    // a.csv it is a conflict.
    let b = dir.path().join("b.csv");
    std::fs::write(&b, format!("{header}\n{},123456\n", value_of(last))).unwrap();
    let out = import_url(&base, ADMIN_SECRET_BIN, &[dataset.clone(), csv.clone(), b.clone()]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("b.csv: line 2"), "{out:?}");
    assert!(out.stderr.contains("1000 releases before it were"), "{out:?}");
    assert_eq!(head(&server).await, 1001, "the acknowledged batches were not kept");

    // Fixed: another release id.
    let id = last.split(',').nth(1).unwrap();
    let fixed = value_of(last).replacen(id, "0b7e4f7e-0000-4000-8000-00000000beef", 1);
    std::fs::write(&b, format!("{header}\n{fixed},123456\n")).unwrap();
    let out = import_url(&base, ADMIN_SECRET_BIN, &[dataset, csv, b]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("recorded 0 datasets and 1 releases"), "{out:?}");
    assert!(out.stdout.contains("already there: 1001"), "{out:?}");
    assert_eq!(head(&server).await, 1002);
    server.stop().await;
}
