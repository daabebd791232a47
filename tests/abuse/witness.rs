//! `tradeledger witness` over the real binary: what an auditor runs from cron.
//! Honest growth exits 0 and moves the saved checkpoint; a history rewritten and re-signed
//! with the same key, a checkpoint that does not verify under the given key, and a server
//! that cannot be reached each exit 1 with a message naming the problem, and leave the
//! saved checkpoint as it was.

use std::path::Path;

use serde_json::json;
use tradeledger::tlog::Signer;

use crate::proc_support::*;

const ORIGIN: &str = "test.example/witness-cli";
const SECRET: &str = "witness-test-secret";

/// Writes a signing key file for `ORIGIN` and returns its path.
fn key_file(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let signer = Signer::generate(ORIGIN).expect("a signing key");
    std::fs::write(&path, signer.to_private_text()).expect("write the key file");
    path.to_str().expect("UTF-8 path").to_owned()
}

async fn start(data_dir: &Path, key: &str) -> Server {
    let tokens = format!("auditor:{SECRET}");
    Server::start(data_dir, &["--signing-key", key, "--write-tokens", &tokens]).await
}

/// Publishes `count` SYNTHETIC releases whose values depend on `tag`.
async fn publish_n(server: &Server, count: u32, tag: u32) {
    for i in 0..count {
        let id = format!("0b7e4f7e-0000-4000-8000-{tag:06}{i:06}");
        let value = format!("{}", 100 * tag + i);
        server.publish(release_input(&id, "CUL._T._T", "2025-S1", &value)).await;
    }
}

async fn witness(server_url: &str, vkey: &str, state: &Path) -> Output {
    run_cli([
        "witness",
        "--url",
        server_url,
        "--vkey",
        vkey,
        "--state",
        state.to_str().expect("UTF-8 path"),
    ])
    .await
}

fn base(server: &Server) -> String {
    format!("http://{}", server.addr)
}

/// The size line of a saved checkpoint note.
fn saved_size(state: &Path) -> u64 {
    let text = std::fs::read_to_string(state).expect("the state file");
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no size in {text:?}"))
}

/// Honest growth exits 0 and saves the new checkpoint; a server with the same signing key but
/// another history (the fixtures and releases recorded again) exits 1 naming the rewrite.
#[tokio::test]
async fn witness_exits_0_on_growth_and_1_on_a_rewritten_history() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "signing-key");
    let honest_dir = dir.path().join("honest");
    let honest = start(&honest_dir, &key).await;
    let vkey = honest.query("{ verifierKey }", json!({})).await["verifierKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = dir.path().join("witness-state");

    let out = witness(&base(&honest), &vkey, &state).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("first checkpoint"), "{out:?}");
    assert_eq!(saved_size(&state), 3);

    publish_n(&honest, 2, 1).await;
    let out = witness(&format!("{}/graphql", base(&honest)), &vkey, &state).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("grew from size 3 to 5"), "{out:?}");
    assert_eq!(saved_size(&state), 5);
    let saved = std::fs::read_to_string(&state).unwrap();

    // The same key file, another data directory: a rewritten history re-signed with the
    // key the witness trusts, grown past the size it saw.
    let forged = start(&dir.path().join("forged"), &key).await;
    publish_n(&forged, 3, 2).await;
    let out = witness(&base(&forged), &vkey, &state).await;
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("REJECTED") && out.stderr.contains("not an extension of the tree of size 5"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        saved,
        "a refused checkpoint is not saved"
    );

    // And the honest server still passes against the saved checkpoint.
    let out = witness(&base(&honest), &vkey, &state).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
}

/// A checkpoint signed by another key (same origin), or a verifier key that is not one, exits 1.
#[tokio::test]
async fn witness_exits_1_when_the_signature_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "signing-key");
    let server = start(&dir.path().join("data"), &key).await;
    let other = Signer::generate(ORIGIN).unwrap().verifier_key();
    let state = dir.path().join("witness-state");

    let out = witness(&base(&server), &other, &state).await;
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("checkpoint does not verify"), "{out:?}");
    assert!(!state.exists(), "nothing saved");

    let out = witness(&base(&server), "not-a-verifier-key", &state).await;
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("--vkey"), "{out:?}");
    assert!(!state.exists(), "nothing saved");
}

/// A server that cannot be reached exits non-zero with a message naming the URL.
#[tokio::test]
async fn witness_exits_1_when_the_server_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let vkey = Signer::generate(ORIGIN).unwrap().verifier_key();
    let state = dir.path().join("witness-state");
    let out = witness(&url, &vkey, &state).await;
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains(&format!("fetching {url}/checkpoint")), "{out:?}");
    assert!(!state.exists(), "nothing saved");
}
