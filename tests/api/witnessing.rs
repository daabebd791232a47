//! Witness cosigning and offline evidence, over real HTTP and the real binary:
//! `c2sp.org/tlog-proof@v1` files checked by `tradeledger verify-proof` against a tlog-policy,
//! and `serve --witness-policy` pushing checkpoints to two `tradeledger witness serve`
//! processes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tradeledger::tlog::cosign::Cosigner;
use tradeledger::tlog::policy::Policy;
use tradeledger::tlog::Signer;

use crate::proc_support::{run_cli, ChildGuard, Server, BIN};
use crate::support::{release_input, spawn_app, WRITE_SECRET};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The checkpoint text (origin, size, root lines) of a proof's checkpoint.
fn checkpoint_text(proof: &str) -> String {
    let note = proof.split_once("\n\n").unwrap().1;
    note[..note.rfind("\n\n").unwrap() + 1].to_owned()
}

/// A genuine proof, cosigned by two witnesses of a quorum-2 policy, is accepted; a flipped
/// hash, a missing cosignature, another entry's proof, another event and a forged log
/// signature are each refused, naming what failed.
#[tokio::test]
async fn verify_proof_accepts_genuine_evidence_and_names_each_failure() {
    let app = spawn_app().await;
    let signer = Arc::new(Signer::generate("proof.test.example/log").unwrap());
    assert!(app.ledger.set_signer(signer.clone()));
    let (a, b) = (
        Cosigner::generate("a.witness.example").unwrap(),
        Cosigner::generate("b.witness.example").unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "log {}\nwitness A {}\nwitness B {}\ngroup both all A B\nquorum both\n",
        signer.verifier_key(),
        a.verifier_key(),
        b.verifier_key()
    );
    let policy_file = write(dir.path(), "policy", &policy);
    let get = |path: String| {
        let client = app.client.clone();
        let url = format!("http://{}{path}", app.addr);
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }
    };
    let proof = String::from_utf8(get("/tlog/proof/2".into()).await).unwrap();
    assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nindex 1\n"), "{proof}");
    // The witnesses' cosignatures, as they would return them, appended to the checkpoint.
    let body = checkpoint_text(&proof);
    let cosigned = format!(
        "{proof}{}\n{}\n",
        a.cosign(&body, 1_800_000_000),
        b.cosign(&body, 1_800_000_001)
    );
    let event = get("/tlog/event/2".into()).await;
    let other_event = get("/tlog/event/3".into()).await;
    let run = |proof: String, event: Vec<u8>| {
        let dir = dir.path().to_owned();
        let policy_file = policy_file.clone();
        async move {
            let p = write(&dir, "case.tlog-proof", &proof);
            let e = dir.join("case.event");
            std::fs::write(&e, event).unwrap();
            run_cli([
                "verify-proof".as_ref(),
                "--policy".as_ref(),
                policy_file.as_os_str(),
                p.as_os_str(),
                e.as_os_str(),
            ])
            .await
        }
    };
    let out = run(cosigned.clone(), event.clone()).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("ok: revision 2 is in proof.test.example/log at tree size 3, cosigned by A, B"),
        "{out:?}"
    );

    let hash_line = cosigned.lines().nth(2).unwrap().to_owned();
    let mut flipped = hash_line.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = cosigned.replacen(&hash_line, std::str::from_utf8(&flipped).unwrap(), 1);
    let missing = format!("{proof}{}\n", a.cosign(&body, 1_800_000_000));
    // The size line of the checkpoint itself: a base64 hash line of the proof above it may
    // start with the same digit.
    let forged_body = body.replacen(&format!("\n{}\n", body.lines().nth(1).unwrap()), "\n4\n", 1);
    let forged_log = cosigned.replacen(&body, &forged_body, 1);
    assert_ne!(forged_log, cosigned);
    let mut other_content = event.clone();
    let at = other_content.len() - 3;
    other_content[at] ^= 1;
    for (case, proof, event, says) in [
        (
            "flipped hash",
            flipped,
            event.clone(),
            "the inclusion proof does not lead",
        ),
        (
            "missing cosignature",
            missing,
            event.clone(),
            "the witness quorum is not met: cosigned by A",
        ),
        (
            "another entry",
            cosigned.clone(),
            other_event,
            "the proof is for another entry",
        ),
        (
            "another event",
            cosigned.clone(),
            other_content,
            "the inclusion proof does not lead",
        ),
        (
            "forged log signature",
            forged_log,
            event.clone(),
            "the checkpoint does not verify",
        ),
    ] {
        let out = run(proof, event).await;
        assert_eq!(out.code(), Some(1), "{case}: {out:?}");
        assert!(out.stdout.contains(says), "{case}: {out:?}");
    }
    // A policy file with a malformed line is refused naming it.
    let bad = write(
        dir.path(),
        "bad-policy",
        &policy.replace("group both all", "group both 3"),
    );
    let p = write(dir.path(), "p.tlog-proof", &cosigned);
    let e = dir.path().join("e.event");
    std::fs::write(&e, &event).unwrap();
    let out = run_cli([
        "verify-proof".as_ref(),
        "--policy".as_ref(),
        bad.as_os_str(),
        p.as_os_str(),
        e.as_os_str(),
    ])
    .await;
    assert_ne!(out.code(), Some(0));
    assert!(out.stderr.contains("line 4"), "{out:?}");
    // The API's Observation.proof offers the same text.
    let q = r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "IPR._T._T", period: "2025-S1", asOf: {revision: 3}) {
        revision proof { tlogProof } } }"#;
    let v = app.gql(q, json!({})).await;
    let o = &v["data"]["observation"];
    let r = o["revision"].as_u64().unwrap();
    let served = String::from_utf8(get(format!("/tlog/proof/{r}")).await).unwrap();
    assert_eq!(o["proof"]["tlogProof"].as_str().unwrap(), served, "{v}");
}

/// A `tradeledger witness serve` child process.
struct WitnessProcess {
    child: ChildGuard,
    addr: SocketAddr,
}

fn start_witness(key: &Path, log_vkey: &str, state: &Path, listen: &str) -> WitnessProcess {
    let mut child = Command::new(BIN)
        .args(["witness", "serve", "--key"])
        .arg(key)
        .args(["--log-vkey", log_vkey, "--state-dir"])
        .arg(state)
        .args(["--listen", listen])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning tradeledger witness serve");
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard::new(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the witness prints its listening line");
    WitnessProcess { child: guard, addr }
}

/// Polls the server's GraphQL `checkpoint` until `done` holds (bounded), returning it.
async fn checkpoint_until(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let q =
        "{ ledger { revision } checkpoint { treeSize note cosigners quorum witnesses { name cosignedSize alarm } } }";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = server.query(q, json!({})).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v:#}\nstderr:\n{}", server.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn publish_n(server: &Server, n: u32, tag: &str) {
    for i in 0..n {
        let id = format!("7c2d1e3f-5a4b-4c6d-8e9f-{tag}{i:08x}");
        server
            .publish(release_input(&id, "ICT._T._T", "2025-S1", &format!("{}", 1900 + i)))
            .await;
    }
}

fn cosigners(v: &Value) -> Vec<String> {
    v["checkpoint"]["cosigners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// The log pushes its checkpoints to two witnesses (quorum 2); the served checkpoint carries
/// both cosignatures. One witness killed: writes go on and the quorum is reported lost;
/// restarted, it catches up through a consistency proof. A forged history under the same
/// log key is refused by both with 422, and the forging server reports it.
#[tokio::test]
async fn two_witnesses_cosign_lose_quorum_catch_up_and_refuse_a_forged_history() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate("witnessed.test.example/log").unwrap();
    let key_file = write(dir.path(), "log-key", &signer.to_private_text());
    let log_vkey = signer.verifier_key();
    let witness_keys: Vec<Cosigner> = ["a.witness.test", "b.witness.test"]
        .iter()
        .map(|n| Cosigner::generate(n).unwrap())
        .collect();
    let mut witnesses = Vec::new();
    for (i, k) in witness_keys.iter().enumerate() {
        let key = write(dir.path(), &format!("witness-{i}"), &k.to_private_text());
        let state = dir.path().join(format!("state-{i}"));
        witnesses.push((
            key.clone(),
            state.clone(),
            start_witness(&key, &log_vkey, &state, "127.0.0.1:0"),
        ));
    }
    let policy = format!(
        "log {log_vkey}\nwitness A {} http://{}\nwitness B {} http://{}\ngroup AB 2 A B\nquorum AB\n",
        witness_keys[0].verifier_key(),
        witnesses[0].2.addr,
        witness_keys[1].verifier_key(),
        witnesses[1].2.addr
    );
    let policy_file = write(dir.path(), "policy", &policy);
    let args = [
        "--signing-key",
        key_file.to_str().unwrap(),
        "--witness-policy",
        policy_file.to_str().unwrap(),
        "--write-tokens",
        &format!("tester:{WRITE_SECRET}"),
    ];
    let honest = Server::start(&dir.path().join("honest"), &args).await;
    publish_n(&honest, 3, "0001").await;
    let head = |v: &Value| v["ledger"]["revision"].as_u64().unwrap();
    let v = checkpoint_until(&honest, "both witnesses cosign the head", |v| {
        v["checkpoint"]["treeSize"] == v["ledger"]["revision"] && cosigners(v).len() == 2
    })
    .await;
    assert_eq!(v["checkpoint"]["quorum"], true);
    // The served checkpoint carries both cosignatures, and they verify under the policy.
    let note = honest
        .client
        .get(format!("http://{}/tlog/checkpoint", honest.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let policy = Policy::parse(&policy).unwrap();
    let checked = policy.check(&note).unwrap();
    assert_eq!(checked.checkpoint.size, head(&v));
    assert_eq!(checked.cosigners, vec!["A", "B"]);
    assert!(checked.quorum);

    // Witness B killed: writes go on, the quorum is reported lost at the new head.
    witnesses[1].2.child.kill();
    publish_n(&honest, 2, "0002").await;
    let v = checkpoint_until(&honest, "A alone cosigns the new head", |v| {
        v["checkpoint"]["treeSize"] == v["ledger"]["revision"] && cosigners(v) == ["A"]
    })
    .await;
    assert_eq!(v["checkpoint"]["quorum"], false, "{v:#}");
    let lost_at = head(&v);

    // Restarted on its address with its state: it catches up from its last size.
    let (key, state) = (witnesses[1].0.clone(), witnesses[1].1.clone());
    let listen = witnesses[1].2.addr.to_string();
    let restarted = start_witness(&key, &log_vkey, &state, &listen);
    witnesses[1].2 = restarted;
    let v = checkpoint_until(&honest, "B catches up", |v| {
        v["checkpoint"]["treeSize"] == v["ledger"]["revision"] && cosigners(v).len() == 2
    })
    .await;
    assert_eq!(v["checkpoint"]["quorum"], true);
    assert!(head(&v) >= lost_at);

    // The server restarted knows no witness's size: each answers 409 with its size, and the
    // server resubmits from it (here the same size: cosigned again).
    honest.stop().await;
    let honest = Server::start(&dir.path().join("honest"), &args).await;
    let v = checkpoint_until(&honest, "both cosign again after a restart", |v| {
        v["checkpoint"]["treeSize"] == v["ledger"]["revision"] && cosigners(v).len() == 2
    })
    .await;
    assert_eq!(v["checkpoint"]["quorum"], true);

    // A forged history under the same key, longer than the one the witnesses cosigned.
    let forged = Server::start(&dir.path().join("forged"), &args).await;
    publish_n(&forged, 12, "0f0f").await;
    let v = checkpoint_until(&forged, "both witnesses refuse the forged history", |v| {
        v["checkpoint"]["witnesses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["alarm"].as_str().is_some_and(|a| a.starts_with("422")))
    })
    .await;
    assert!(cosigners(&v).is_empty(), "{v:#}");
    assert_eq!(v["checkpoint"]["quorum"], false);
    let metrics = forged.metrics().await;
    for w in ["A", "B"] {
        assert!(
            metrics.contains(&format!(
                "tradeledger_witness_alarms_total{{witness=\"{w}\",reason=\"422\"}}"
            )),
            "{metrics}"
        );
    }
    assert!(forged.stderr().contains("witness alarm"), "{}", forged.stderr());
    let ready = forged
        .client
        .get(format!("http://{}/readyz", forged.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "an alarm does not make the server unready");
    // The witnesses kept the honest log's checkpoint.
    let origin_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"witnessed.test.example/log"));
    for (_, _, w) in &witnesses {
        let kept = reqwest::get(format!("http://{}/{origin_hash}/checkpoint", w.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let c = policy.check(&kept).unwrap();
        let honest_root = honest
            .query(
                "query($n: Int) { checkpoint(treeSize: $n) { rootHash } }",
                json!({ "n": c.checkpoint.size }),
            )
            .await;
        assert_eq!(honest_root["checkpoint"]["rootHash"], hex::encode(c.checkpoint.root));
    }
}

/// The witness answers each case of the tlog-witness protocol with the spec's status: 404
/// for an unknown log, 403 for a bad or missing log signature, 400 for an old size beyond
/// the checkpoint or a malformed body, 409 with `text/x.tlog.size` for a stale old size, 422
/// for a proof that does not verify, another root at the same size, or a non-empty proof
/// from 0; and 200 with a verifying cosignature, kept across a restart.
#[tokio::test]
async fn the_witness_answers_the_protocol_with_the_spec_status_codes() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use tradeledger::tlog::cosign::CosignatureVerifier;
    use tradeledger::tlog::note::parse_signature_line;
    use tradeledger::tlog::MerkleTree;

    let dir = tempfile::tempdir().unwrap();
    let log = Signer::generate("protocol.test.example/log").unwrap();
    let stranger = Signer::generate("protocol.test.example/other").unwrap();
    let impostor = Signer::generate("protocol.test.example/log").unwrap();
    let cosigner = Cosigner::generate("w.protocol.test").unwrap();
    let key = write(dir.path(), "witness-key", &cosigner.to_private_text());
    let state = dir.path().join("state");
    let mut w = start_witness(&key, &log.verifier_key(), &state, "127.0.0.1:0");
    let leaves: Vec<[u8; 32]> = (0u32..20)
        .map(|i| tradeledger::tlog::leaf_hash(&i.to_be_bytes()))
        .collect();
    let tree = MerkleTree::from_leaves(leaves.clone());
    let other = MerkleTree::from_leaves(leaves.iter().rev().copied().collect());
    let body = |old: u64, proof: &[[u8; 32]], note: &str| {
        let mut b = format!("old {old}\n");
        for h in proof {
            b.push_str(&STANDARD.encode(h));
            b.push('\n');
        }
        format!("{b}\n{note}")
    };
    // A client per request: the witness is restarted on the same address below.
    let post = |addr: SocketAddr, b: String| {
        let client = reqwest::Client::new();
        async move {
            let r = client
                .post(format!("http://{addr}/add-checkpoint"))
                .body(b)
                .send()
                .await
                .unwrap();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let at = |t: &MerkleTree, n: u64| log.checkpoint(n, &t.root(n).unwrap());
    let proof = |from: u64, to: u64| tree.consistency_proof(from, to).unwrap();
    for (case, b, status) in [
        (
            "unknown log",
            body(0, &[], &stranger.checkpoint(5, &tree.root(5).unwrap())),
            404,
        ),
        (
            "impostor key",
            body(0, &[], &impostor.checkpoint(5, &tree.root(5).unwrap())),
            403,
        ),
        (
            "bad signature",
            body(0, &[], &at(&tree, 5).replacen("\n5\n", "\n6\n", 1)),
            403,
        ),
        ("old beyond size", body(6, &[], &at(&tree, 5)), 400),
        ("no old line", format!("\n{}", at(&tree, 5)), 400),
        (
            "old with a leading zero",
            body(0, &[], &at(&tree, 5)).replacen("old 0", "old 00", 1),
            400,
        ),
        ("proof from 0", body(0, &proof(3, 5), &at(&tree, 5)), 422),
        (
            "empty tree with a root",
            body(0, &[], &log.checkpoint(0, &[7; 32])),
            422,
        ),
    ] {
        let (got, _, text) = post(w.addr, b).await;
        assert_eq!(got, status, "{case}: {text}");
    }
    // First contact: cosigned, and the cosignature verifies.
    let (got, _, text) = post(w.addr, body(0, &[], &at(&tree, 5))).await;
    assert_eq!(got, 200, "{text}");
    let verifier = CosignatureVerifier::parse(&cosigner.verifier_key()).unwrap();
    let note = at(&tree, 5);
    let signed_text = &note[..note.rfind("\n\n").unwrap() + 1];
    let line = parse_signature_line(text.trim_end()).unwrap();
    assert!(verifier.verify(signed_text, &line).is_ok());
    // A stale old size: 409 with the witness's size, as text/x.tlog.size.
    let (got, ct, text) = post(w.addr, body(0, &[], &at(&tree, 9))).await;
    assert_eq!((got, ct.as_str(), text.as_str()), (409, "text/x.tlog.size", "5\n"));
    // Another history: a bad proof, and another root at the same size.
    let (got, _, _) = post(w.addr, body(5, &other.consistency_proof(5, 9).unwrap(), &at(&other, 9))).await;
    assert_eq!(got, 422);
    let (got, _, _) = post(w.addr, body(5, &[], &at(&other, 5))).await;
    assert_eq!(got, 422);
    // Honest growth, kept across a restart.
    let (got, _, text) = post(w.addr, body(5, &proof(5, 12), &at(&tree, 12))).await;
    assert_eq!(got, 200, "{text}");
    let listen = w.addr.to_string();
    w.child.kill();
    let w = start_witness(&key, &log.verifier_key(), &state, &listen);
    let (got, _, text) = post(w.addr, body(5, &proof(5, 20), &at(&tree, 20))).await;
    assert_eq!((got, text.as_str()), (409, "12\n"));
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"protocol.test.example/log"));
    let kept = reqwest::get(format!("http://{}/{hash}/checkpoint", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(kept.starts_with("protocol.test.example/log\n12\n"), "{kept}");
    let unknown = reqwest::get(format!("http://{}/{}/checkpoint", w.addr, "0".repeat(64)))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// `serve --witness-policy` checks the policy at start: a malformed line is an error naming
/// it, and a policy without this server's log key is refused.
#[tokio::test]
async fn serve_refuses_a_malformed_witness_policy_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate("policy.test.example/log").unwrap();
    let key_file = write(dir.path(), "log-key", &signer.to_private_text());
    let witness = Cosigner::generate("w.policy.test").unwrap();
    for (name, policy, says) in [
        (
            "bad-line",
            format!(
                "log {}\nwitness A {} http://127.0.0.1:9\nquorum B\n",
                signer.verifier_key(),
                witness.verifier_key()
            ),
            "line 3",
        ),
        (
            "other-log",
            format!(
                "log {}\nquorum none\n",
                Signer::generate("policy.test.example/log").unwrap().verifier_key()
            ),
            "has no `log` line with this server's key",
        ),
    ] {
        let policy_file = write(dir.path(), name, &policy);
        let failure = crate::proc_support::start_server(
            &dir.path().join(format!("data-{name}")),
            &[
                "--signing-key",
                key_file.to_str().unwrap(),
                "--witness-policy",
                policy_file.to_str().unwrap(),
            ],
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{name}: serve started with a bad policy"));
        assert_ne!(failure.status.code(), Some(0), "{name}");
        assert!(failure.stderr.contains(says), "{name}: {}", failure.stderr);
    }
}
