//! The transparency log over real HTTP: proofs checked with a verifier written here
//! from RFC 9162's definitions (not the server's code), checkpoints checked with
//! `ed25519-dalek` against the published verifier key, the witness against honest growth and
//! a rewritten history, and the Python example.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tradeledger::tlog::Signer;

use crate::support::*;

type H = [u8; 32];

fn sha(parts: &[&[u8]]) -> H {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn leaf(data: &[u8]) -> H {
    sha(&[&[0], data])
}

/// The log entry of the event at `revision` with `canonical` text, as the transparency
/// docs define it: the canonical bytes for an event in format 1, else three lines stating
/// the revision and the event's SHA-256.
pub(crate) fn entry(revision: usize, canonical: &str) -> Vec<u8> {
    if canonical.starts_with(r#"{"format":1,"#) {
        return canonical.as_bytes().to_vec();
    }
    let hash = sha(&[canonical.as_bytes()]);
    format!("tradeledger/event/v1\n{revision}\n{}\n", hex::encode(hash)).into_bytes()
}

/// The leaf hash of the event at `revision` with `canonical` text.
fn event_leaf(revision: usize, canonical: &str) -> H {
    leaf(&entry(revision, canonical))
}

fn node(l: &H, r: &H) -> H {
    sha(&[&[1], l, r])
}

/// The largest power of two smaller than `n`.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) as RFC 9162 section 2.1.1 defines it.
fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => sha(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// The root an inclusion path leads to, following the recursive PATH definition (section
/// 2.1.3.1) backwards: the path's last hash is the sibling at the top split.
fn root_from_path(m: usize, n: usize, leaf: H, path: &[H]) -> Option<H> {
    if n == 1 {
        return path.is_empty().then_some(leaf);
    }
    let (last, rest) = path.split_last()?;
    let k = split(n);
    Some(if m < k {
        node(&root_from_path(m, k, leaf, rest)?, last)
    } else {
        node(last, &root_from_path(m - k, n - k, leaf, rest)?)
    })
}

/// The (old, new) roots a consistency proof implies, following SUBPROOF (section 2.1.4.1)
/// backwards; `old` is the known root of the first tree, used where the proof omits it.
fn roots_from_proof(m: usize, n: usize, whole: bool, proof: &[H], old: &H) -> Option<(H, H)> {
    if m == n {
        return match (whole, proof) {
            (true, []) => Some((*old, *old)),
            (false, [h]) => Some((*h, *h)),
            _ => None,
        };
    }
    let (last, rest) = proof.split_last()?;
    let k = split(n);
    if m <= k {
        let (o, nw) = roots_from_proof(m, k, whole, rest, old)?;
        Some((o, node(&nw, last)))
    } else {
        let (o, nw) = roots_from_proof(m - k, n - k, false, rest, old)?;
        Some((node(last, &o), node(last, &nw)))
    }
}

fn unhex(s: &Value) -> H {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.as_str().expect("a hex string"), &mut out).expect("32 bytes of hex");
    out
}

fn hashes(v: &Value) -> Vec<H> {
    v.as_array().expect("hashes").iter().map(unhex).collect()
}

/// A server over the fixtures (3 events) plus `extra` SYNTHETIC releases, signing with `signer`.
async fn app_with(signer: Arc<Signer>, extra: usize, tag: u32) -> TestApp {
    let app = spawn_app().await;
    assert!(app.ledger.set_signer(signer));
    publish_n(&app, extra, tag).await;
    app
}

/// Publishes `count` SYNTHETIC releases of `IPR._T._T`, their ids made of `tag` and the head.
async fn publish_n(app: &TestApp, count: usize, tag: u32) {
    publish_key(app, count, tag, "IPR._T._T").await
}

async fn publish_key(app: &TestApp, count: usize, tag: u32, key: &str) {
    for _ in 0..count {
        let (head, _) = app.head().await;
        let id = format!("6b1f0c2e-4d3a-4e51-9a57-{tag:04x}{head:08x}");
        let value = format!("{}", 100 + head);
        app.publish(release_input(&id, key, "2025-S1", &value)).await;
    }
}

fn test_signer(name: &str) -> Arc<Signer> {
    Arc::new(Signer::generate(name).unwrap())
}

/// The leaf hashes of every event, computed here from their canonical text.
async fn event_leaves(app: &TestApp) -> Vec<H> {
    let v = app
        .query(
            "{ events(first: 1000) { edges { node { revision canonical } } } }",
            json!({}),
        )
        .await;
    v["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e["node"]["revision"], i + 1);
            event_leaf(i + 1, e["node"]["canonical"].as_str().unwrap())
        })
        .collect()
}

/// Every revision's inclusion proof at every tree size, including sizes that are not powers
/// of two, leads to the root computed here from all events, and to nothing else when moved.
#[tokio::test]
async fn inclusion_proofs_verify_for_every_revision_at_every_size() {
    let app = app_with(test_signer("test.example/incl"), 10, 1).await;
    let leaves = event_leaves(&app).await;
    assert_eq!(leaves.len(), 13);
    let q = "query($r: Int!, $n: Int) { inclusionProof(revision: $r, treeSize: $n) {
        revision treeSize leafIndex canonical entry hashes rootHash } }";
    for n in 1..=13usize {
        let root = mth(&leaves[..n]);
        for r in 1..=n {
            let p = app.query(q, json!({ "r": r, "n": n })).await["inclusionProof"].clone();
            assert_eq!(
                (p["revision"].as_u64(), p["treeSize"].as_u64()),
                (Some(r as u64), Some(n as u64))
            );
            assert_eq!(p["leafIndex"], r - 1);
            assert_eq!(unhex(&p["rootHash"]), root, "root of size {n}");
            let l = event_leaf(r, p["canonical"].as_str().unwrap());
            assert_eq!(l, leaves[r - 1]);
            assert_eq!(
                p["entry"].as_str().unwrap().as_bytes(),
                entry(r, p["canonical"].as_str().unwrap())
            );
            let path = hashes(&p["hashes"]);
            assert_eq!(
                root_from_path(r - 1, n, l, &path),
                Some(root),
                "revision {r} in size {n}"
            );
            if n > 1 {
                let other = if r == 1 { 1 } else { r - 2 };
                assert_ne!(root_from_path(other, n, l, &path), Some(root), "moved leaf {r} in {n}");
            }
        }
    }
    // The default tree size is the head, and hex is lowercase.
    let p = app
        .query("{ inclusionProof(revision: 2) { treeSize rootHash } }", json!({}))
        .await;
    assert_eq!(p["inclusionProof"]["treeSize"], 13);
    let root = p["inclusionProof"]["rootHash"].as_str().unwrap().to_owned();
    assert_eq!(root, root.to_lowercase());
    assert_eq!(unhex(&p["inclusionProof"]["rootHash"]), mth(&leaves));
}

/// Consistency proofs between every pair of sizes imply exactly the two roots computed here.
#[tokio::test]
async fn consistency_proofs_verify_between_every_pair_of_sizes() {
    let app = app_with(test_signer("test.example/cons"), 9, 2).await;
    let leaves = event_leaves(&app).await;
    let n = leaves.len();
    assert_eq!(n, 12);
    let q = "query($m: Int!, $n: Int) { consistencyProof(fromSize: $m, toSize: $n) {
        fromSize toSize hashes fromRoot toRoot } }";
    for to in 1..=n {
        for from in 1..=to {
            let p = app.query(q, json!({ "m": from, "n": to })).await["consistencyProof"].clone();
            assert_eq!(
                (p["fromSize"].as_u64(), p["toSize"].as_u64()),
                (Some(from as u64), Some(to as u64))
            );
            let (old, new) = (mth(&leaves[..from]), mth(&leaves[..to]));
            assert_eq!((unhex(&p["fromRoot"]), unhex(&p["toRoot"])), (old, new));
            let proof = hashes(&p["hashes"]);
            assert_eq!(
                roots_from_proof(from, to, true, &proof, &old),
                Some((old, new)),
                "{from} -> {to}"
            );
            if from < to {
                // A proof is bound to its sizes: another old tree does not pass with it.
                let wrong = mth(&leaves[..from - 1]);
                assert_ne!(roots_from_proof(from, to, true, &proof, &wrong), Some((wrong, new)));
            }
        }
    }
}

/// Parses a verifier key as the signed-note spec describes it, independently of the server.
fn parse_vkey(vkey: &str) -> (String, [u8; 4], VerifyingKey) {
    let parts: Vec<&str> = vkey.splitn(3, '+').collect();
    assert_eq!(parts.len(), 3, "{vkey}");
    let data = STANDARD.decode(parts[2]).unwrap();
    assert_eq!(data[0], 1, "Ed25519");
    let public: [u8; 32] = data[1..].try_into().unwrap();
    let hash = sha(&[parts[0].as_bytes(), b"\n", &[1], &public]);
    assert_eq!(parts[1], hex::encode(&hash[..4]), "key hash of {vkey}");
    (
        parts[0].to_owned(),
        hash[..4].try_into().unwrap(),
        VerifyingKey::from_bytes(&public).unwrap(),
    )
}

/// Checks a signed checkpoint note with `ed25519-dalek`; returns (origin, size, root).
fn open_note(note: &str, vkey: &str) -> Result<(String, u64, H), String> {
    let (name, key_hash, key) = parse_vkey(vkey);
    let (text, sigs) = note.split_once("\n\n").ok_or("no blank line")?;
    let text = format!("{text}\n");
    let line = sigs.strip_suffix('\n').ok_or("no final newline")?;
    let rest = line.strip_prefix("\u{2014} ").ok_or("no em dash")?;
    let (signer, data) = rest.split_once(' ').ok_or("no space")?;
    if signer != name {
        return Err(format!("signed by {signer}"));
    }
    let data = STANDARD.decode(data).map_err(|e| e.to_string())?;
    if data.len() != 68 || data[..4] != key_hash {
        return Err("wrong key hash".into());
    }
    let sig = Signature::from_bytes(data[4..].try_into().unwrap());
    key.verify_strict(text.as_bytes(), &sig).map_err(|e| e.to_string())?;
    let lines: Vec<&str> = text.lines().collect();
    let root: H = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    Ok((lines[0].to_owned(), lines[1].parse().unwrap(), root))
}

/// The checkpoint is a C2SP signed note that verifies with ed25519-dalek against the
/// published verifier key, states the root computed here, and is served as text/plain.
#[tokio::test]
async fn checkpoints_are_signed_notes_of_the_tree() {
    let app = app_with(test_signer("test.example/ckpt"), 2, 3).await;
    let leaves = event_leaves(&app).await;
    let v = app.query(
            "{ verifierKey checkpoint { origin treeSize rootHash note } old: checkpoint(treeSize: 3) { treeSize rootHash note } }",
            json!({}),
        ).await;
    let vkey = v["verifierKey"].as_str().unwrap();
    let note = v["checkpoint"]["note"].as_str().unwrap();
    assert_eq!(v["checkpoint"]["origin"], "test.example/ckpt");
    assert_eq!(v["checkpoint"]["treeSize"], 5);
    assert_eq!(unhex(&v["checkpoint"]["rootHash"]), mth(&leaves));
    let (origin, size, root) = open_note(note, vkey).expect("the checkpoint verifies");
    assert_eq!((origin.as_str(), size, root), ("test.example/ckpt", 5, mth(&leaves)));
    assert!(note.starts_with(&format!("test.example/ckpt\n5\n{}\n\n", STANDARD.encode(mth(&leaves)))));
    let (_, size, root) = open_note(v["old"]["note"].as_str().unwrap(), vkey).unwrap();
    assert_eq!((size, root), (3, mth(&leaves[..3])));
    // Any change to the signed text breaks the signature.
    assert!(open_note(&note.replacen("\n5\n", "\n6\n", 1), vkey).is_err());
    // Another key's verifier key does not open it.
    let other = test_signer("test.example/ckpt");
    assert!(open_note(note, &other.verifier_key()).is_err());

    let resp = app
        .client
        .get(format!("http://{}/checkpoint", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert_eq!(resp.text().await.unwrap(), note);
}

/// `verifyLedger` gives the root of the tree it verified, which agrees with the checkpoint and with the events.
#[tokio::test]
async fn verify_ledger_and_checkpoint_agree() {
    let app = app_with(test_signer("test.example/agree"), 4, 4).await;
    let v = app
        .query(
            "{ verifyLedger { ok checked rootHash } checkpoint { treeSize rootHash } }",
            json!({}),
        )
        .await;
    assert_eq!(v["verifyLedger"]["ok"], true);
    assert_eq!(v["verifyLedger"]["checked"], v["checkpoint"]["treeSize"]);
    assert_eq!(v["verifyLedger"]["rootHash"], v["checkpoint"]["rootHash"]);
    assert_eq!(unhex(&v["verifyLedger"]["rootHash"]), mth(&event_leaves(&app).await));
}

/// Sizes and revisions of zero, beyond the head, or in the wrong order are BAD_USER_INPUT.
#[tokio::test]
async fn bad_sizes_are_bad_user_input() {
    let app = app_with(test_signer("test.example/bad"), 0, 5).await;
    for q in [
        "{ checkpoint(treeSize: 0) { treeSize } }",
        "{ checkpoint(treeSize: 4) { treeSize } }",
        "{ checkpoint(treeSize: -1) { treeSize } }",
        "{ inclusionProof(revision: 0) { treeSize } }",
        "{ inclusionProof(revision: 4) { treeSize } }",
        "{ inclusionProof(revision: 3, treeSize: 2) { treeSize } }",
        "{ inclusionProof(revision: 1, treeSize: 4) { treeSize } }",
        "{ consistencyProof(fromSize: 0) { toSize } }",
        "{ consistencyProof(fromSize: 3, toSize: 2) { toSize } }",
        "{ consistencyProof(fromSize: 4) { toSize } }",
        "{ consistencyProof(fromSize: 1, toSize: 9) { toSize } }",
    ] {
        let v = app.gql(q, json!({})).await;
        assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{q}: {v}");
    }
}

/// `Observation.proof` proves the release that set the value, in the tree the value was read at.
#[tokio::test]
async fn observation_proof_proves_the_release_that_set_the_value() {
    let app = app_with(test_signer("test.example/obs"), 3, 6).await;
    // Later releases that leave the figure alone: its proof reaches back into a larger tree.
    publish_key(&app, 4, 6, "ICT._T._T").await;
    let leaves = event_leaves(&app).await;
    let q = "query($r: Int!) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"IPR._T._T\", period: \"2025-S1\", asOf: { revision: $r }) {
        value revision release { id } proof { revision treeSize leafIndex canonical hashes rootHash } } }";
    for (as_of, set_at) in [(2usize, 2u64), (5, 5), (7, 6), (10, 6)] {
        let o = app.query(q, json!({ "r": as_of })).await["observation"].clone();
        let p = &o["proof"];
        assert_eq!(p["revision"], o["revision"]);
        assert_eq!(p["treeSize"], as_of);
        let canonical = p["canonical"].as_str().unwrap();
        assert!(canonical.contains(o["release"]["id"].as_str().unwrap()), "{canonical}");
        assert!(canonical.contains(o["value"].as_str().unwrap()), "{canonical}");
        assert_eq!(o["revision"], set_at, "as of {as_of}");
        let r = set_at as usize;
        assert_eq!(
            root_from_path(r - 1, as_of, event_leaf(r, canonical), &hashes(&p["hashes"])),
            Some(mth(&leaves[..as_of]))
        );
    }
}

/// The witness accepts honest growth and refuses a history rewritten and re-signed with the
/// same key (larger, same size, or smaller), leaving its saved checkpoint untouched.
#[tokio::test]
async fn witness_accepts_growth_and_rejects_a_rewritten_history() {
    use tradeledger::tlog::witness::run;
    let signer = test_signer("test.example/witness");
    let vkey = signer.verifier_key();
    let honest = app_with(signer.clone(), 1, 7).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let url = format!("http://{}", honest.addr);
    let first = run(&url, &vkey, &state, None).await.expect("first checkpoint");
    assert_eq!((first.previous, first.checkpoint.size), (None, 4));
    publish_n(&honest, 3, 7).await;
    let grown = run(&format!("{url}/graphql"), &vkey, &state, None)
        .await
        .expect("honest growth");
    assert_eq!((grown.previous, grown.checkpoint.size), (Some(4), 7));
    let same = run(&url, &vkey, &state, None).await.expect("no change");
    assert_eq!(same.previous, Some(7));
    let saved = std::fs::read_to_string(&state).unwrap();

    // Another data directory, the same key: the fixtures and releases recorded again.
    let forged = app_with(signer.clone(), 1, 8).await;
    let forged_url = format!("http://{}", forged.addr);
    let e = run(&forged_url, &vkey, &state, None).await.unwrap_err().to_string();
    assert!(e.contains("REJECTED") && e.contains("shrank"), "{e}");
    publish_n(&forged, 3, 8).await;
    let e = run(&forged_url, &vkey, &state, None).await.unwrap_err().to_string();
    assert!(e.contains("REJECTED") && e.contains("different roots"), "{e}");
    publish_n(&forged, 2, 8).await;
    let e = run(&forged_url, &vkey, &state, None).await.unwrap_err().to_string();
    assert!(e.contains("REJECTED") && e.contains("not an extension"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        saved,
        "a refused checkpoint is not saved"
    );

    // A checkpoint signed by another key is refused too.
    let e = run(&url, &test_signer("test.example/witness").verifier_key(), &state, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("signed by this key"), "{e}");
}

/// `examples/verify_inclusion.py` (hashlib only) accepts a proof from the server and refuses
/// a tampered one.
#[tokio::test]
async fn python_example_verifies_inclusion_proofs() {
    let Ok(python) = which_python() else {
        panic!("python3 is needed to run examples/verify_inclusion.py");
    };
    let app = app_with(test_signer("test.example/py"), 4, 9).await;
    let v = app.query(
            "{ inclusionProof(revision: 3, treeSize: 6) { revision treeSize leafIndex canonical hashes rootHash } checkpoint(treeSize: 6) { note } other: checkpoint(treeSize: 7) { note } }",
            json!({}),
        ).await;
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify_inclusion.py");
    let run = |proof: &Value, note: Option<&str>| {
        let path = dir.path().join("proof.json");
        std::fs::write(&path, proof.to_string()).unwrap();
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script).arg(&path);
        if let Some(n) = note {
            let np = dir.path().join("checkpoint.txt");
            std::fs::write(&np, n).unwrap();
            cmd.arg(np);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let proof = &v["inclusionProof"];
    let (code, out) = run(proof, v["checkpoint"]["note"].as_str());
    assert_eq!(code, Some(0), "{out}");
    let mut tampered = proof.clone();
    tampered["canonical"] = json!(format!("{} ", proof["canonical"].as_str().unwrap()));
    assert_eq!(run(&tampered, None).0, Some(1));
    let mut moved = proof.clone();
    moved["leafIndex"] = json!(3);
    assert_eq!(run(&moved, None).0, Some(1));
    assert_eq!(
        run(proof, v["other"]["note"].as_str()).0,
        Some(1),
        "another size's checkpoint"
    );
}

fn which_python() -> Result<String, ()> {
    let ok = std::process::Command::new("python3").arg("--version").output();
    if ok.is_ok_and(|o| o.status.success()) {
        Ok("python3".into())
    } else {
        Err(())
    }
}

/// The stored leaves are derived data: a damaged one is named by the tree check (which
/// `verifyLedgerFull` and `tradeledger verify` run) and refused as proof, `rebuild` repairs it,
/// and a store without leaves (written before the tree existed) gets them at open.
#[tokio::test]
async fn damaged_or_missing_leaves_are_found_and_rebuilt() {
    use tradeledger::store::check_tree;
    use tradeledger::store::{LogStore, SledStore};
    use tradeledger::testing::*;
    let mut app = app_with(test_signer("test.example/damage"), 3, 10).await;
    let leaves = event_leaves(&app).await;
    app.stop().await;
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let path = dir.path().join("log");
    let open = || async {
        for _ in 0..250 {
            if let Ok(s) = SledStore::open(&path) {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("cannot reopen the store")
    };
    drop(app);
    let store = open().await;
    assert_eq!(check_tree(&store, 6).unwrap().damage, None);
    assert_eq!(check_tree(&store, 6).unwrap().root, mth(&leaves));
    store.tlog_tree().insert(2u64.to_be_bytes(), vec![0u8; 32]).unwrap();
    store.flush_blocking().unwrap();
    drop(store);
    let store = open().await;
    let check = check_tree(&store, 6).unwrap();
    assert_eq!(check.damage.map(|d| d.revision), Some(2));
    assert_eq!(check.root, mth(&leaves), "the root is recomputed from the events");
    store.rebuild_derived(store.head().unwrap()).unwrap();
    assert_eq!(check_tree(&store, 6).unwrap().damage, None);

    store.tlog_tree().clear().unwrap();
    store.flush_blocking().unwrap();
    drop(store);
    let store = open().await;
    assert_eq!(store.tree().read().unwrap().root(6).unwrap(), mth(&leaves));
    assert_eq!(store.tlog_tree().len(), 6, "the computed leaves are stored");
}

/// `export` then `import --event-log` round-trips a generated store: same head hash, same
/// Merkle root, the checkpoint of the source accepted; a changed line is refused before
/// anything is written.
#[tokio::test]
async fn exported_log_restores_to_the_same_head_and_root() {
    use tradeledger::export::{export, restore};
    use tradeledger::store::{LogStore, SledStore};
    use tradeledger::testing::*;
    let app = app_with(test_signer("test.example/export"), 5, 11).await;
    let note = app.query("{ checkpoint { note } }", json!({})).await["checkpoint"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    let (head, hash) = app.head().await;
    let mut lines = Vec::new();
    let exported = export(app.ledger.store().as_ref(), head, &mut lines).unwrap();
    assert_eq!((exported.events, exported.head.to_hex()), (head, hash.clone()));
    let text = String::from_utf8(lines).unwrap();
    assert_eq!(text.lines().count() as u64, head);
    let leaves = event_leaves(&app).await;
    assert_eq!(exported.root, mth(&leaves));

    let reader = |t: String| {
        move || -> std::io::Result<Box<dyn std::io::BufRead>> {
            Ok(Box::new(std::io::Cursor::new(t.clone().into_bytes())))
        }
    };
    // One changed figure in the middle: refused, and nothing is written.
    let target = SledStore::temporary().unwrap();
    let forged = text.replacen("\\\"value\\\":\\\"-4530\\\"", "\\\"value\\\":\\\"-4529\\\"", 1);
    assert_ne!(forged, text, "the fixture's total is in the export");
    let e = restore(&target, reader(forged), None).unwrap_err().to_string();
    assert!(e.starts_with("line 2:") && e.contains("does not match its hash"), "{e}");
    assert_eq!(target.head().unwrap().revision, 0);
    // A checkpoint of another size is refused.
    let other = app.query("{ checkpoint(treeSize: 3) { note } }", json!({})).await["checkpoint"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(restore(&target, reader(text.clone()), Some(&other)).is_err());
    assert_eq!(target.head().unwrap().revision, 0);

    let restored = restore(&target, reader(text.clone()), Some(&note)).unwrap();
    assert_eq!(restored, exported);
    assert_eq!(target.head().unwrap().hash.to_hex(), hash);
    assert_eq!(target.tree().read().unwrap().root(head).unwrap(), mth(&leaves));
    // A second restore into the same store is refused.
    assert!(restore(&target, reader(text), None)
        .unwrap_err()
        .to_string()
        .contains("not empty"));
}
