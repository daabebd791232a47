//! The log as C2SP `tlog-tiles` serves it, read by a client written here from the spec
//! alone: tile paths, the checkpoint's root rebuilt from the level-0 tiles, every tile above
//! checked against the tiles below, and every entry of the bundles against its leaf.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::json;
use sha2::{Digest, Sha256};
use tradeledger::domain::{Event, ReleaseDraft};
use tradeledger::store::{encode, Envelope, Hash, Head, Record, SledStore, FORMAT_VERSION};
use tradeledger::tlog::Signer;
use uuid::Uuid;

use crate::support::common::dataset;
use crate::support::{release_input, spawn_app_on, TestApp};

type H = [u8; 32];

fn leaf_hash(data: &[u8]) -> H {
    let mut h = Sha256::new();
    h.update([0]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(l: &H, r: &H) -> H {
    let mut h = Sha256::new();
    h.update([1]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// MTH over hashes already at one level (RFC 6962 section 2.1).
fn mth(hashes: &[H]) -> H {
    match hashes.len() {
        0 => Sha256::digest([]).into(),
        1 => hashes[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&mth(&hashes[..k]), &mth(&hashes[k..]))
        }
    }
}

/// `<N>` as the spec writes it: 3-digit elements, all but the last prefixed with `x`.
fn tile_index(n: u64) -> String {
    let mut elements = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        elements.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    elements.reverse();
    elements.join("/")
}

fn tile_suffix(n: u64, width: u64) -> String {
    if width == 256 {
        tile_index(n)
    } else {
        format!("{}.p/{width}", tile_index(n))
    }
}

struct Fetched {
    status: u16,
    content_type: String,
    cache: String,
    body: Vec<u8>,
}

async fn get(app: &TestApp, path: &str) -> Fetched {
    // reqwest here is built without gzip: bundles come as they are.
    let r = app
        .client
        .get(format!("http://{}{path}", app.addr))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    Fetched {
        status: r.status().as_u16(),
        content_type,
        cache,
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// A tile that must exist: 200, octet-stream, cached as the spec says for its kind.
async fn tile(app: &TestApp, path: &str, width: u64) -> Vec<u8> {
    let f = get(app, path).await;
    assert_eq!(f.status, 200, "{path}: {}", String::from_utf8_lossy(&f.body));
    assert_eq!(f.content_type, "application/octet-stream", "{path}");
    if width == 256 {
        assert!(
            f.cache.contains("immutable") && f.cache.contains("max-age=31536000"),
            "{path}: {}",
            f.cache
        );
    } else {
        let age: u64 = f
            .cache
            .split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{path}: {}", f.cache));
        assert!(age <= 300 && !f.cache.contains("immutable"), "{path}: {}", f.cache);
    }
    f.body
}

/// Opens a checkpoint note with the log's verifier key, as signed-note and tlog-checkpoint
/// define them; returns (size, root).
fn open_checkpoint(note: &str, vkey: &str) -> (u64, H) {
    let mut parts = vkey.splitn(3, '+');
    let (name, id, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let key = STANDARD.decode(key).unwrap();
    assert_eq!(key[0], 1, "an Ed25519 vkey");
    let key = VerifyingKey::from_bytes(key[1..].try_into().unwrap()).unwrap();
    let split = note.rfind("\n\n").expect("a blank line before the signatures");
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    let mut verified = false;
    for line in signatures.lines() {
        let rest = line.strip_prefix("\u{2014} ").expect("a signature line");
        let (signer, sig) = rest.split_once(' ').unwrap();
        let sig = STANDARD.decode(sig).unwrap();
        if signer == name && hex::encode(&sig[..4]) == id {
            let sig = Signature::from_bytes(sig[4..].try_into().unwrap());
            key.verify_strict(text.as_bytes(), &sig)
                .expect("the log's signature verifies");
            verified = true;
        }
    }
    assert!(verified, "no signature by the log in {note}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], name, "the origin is the key's name");
    let root: H = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    (lines[1].parse().unwrap(), root)
}

/// Everything a client can check of the tree of `size` from the tiles: returns the leaves.
async fn check_tiles(app: &TestApp, size: u64, root: &H) -> Vec<H> {
    // Level 0: full tiles, then the partial one, if any.
    let mut leaves: Vec<H> = Vec::new();
    let mut level_below: Vec<Vec<H>> = Vec::new();
    let mut level = 0u32;
    loop {
        let span = 256u64.pow(level);
        let count = size / span;
        if count == 0 {
            break;
        }
        let (full, partial) = (count / 256, count % 256);
        let mut tiles: Vec<Vec<H>> = Vec::new();
        for n in 0..full + u64::from(partial > 0) {
            let width = if n < full { 256 } else { partial };
            let body = tile(app, &format!("/tlog/tile/{level}/{}", tile_suffix(n, width)), width).await;
            assert_eq!(body.len() as u64, 32 * width, "tile {level}/{n} width {width}");
            tiles.push(body.chunks(32).map(|c| c.try_into().unwrap()).collect());
        }
        if level == 0 {
            leaves = tiles.iter().flatten().copied().collect();
            assert_eq!(leaves.len() as u64, size);
            assert_eq!(&mth(&leaves), root, "the root rebuilt from the level-0 tiles");
        } else {
            // Each hash is the MTH of the full tile below at its position, and of its leaves.
            for (n, t) in tiles.iter().enumerate() {
                for (i, h) in t.iter().enumerate() {
                    let below = &level_below[n * 256 + i];
                    assert_eq!(below.len(), 256, "only full tiles are hashed into the level above");
                    assert_eq!(h, &mth(below), "tile {level}/{n} hash {i}");
                    let at = (n * 256 + i) * span as usize;
                    assert_eq!(h, &mth(&leaves[at..at + span as usize]));
                }
            }
        }
        // Empty and beyond-the-tree tiles are not served.
        let beyond = if partial > 0 && partial < 255 {
            tile_suffix(full, partial + 1)
        } else {
            tile_suffix(full, 256)
        };
        let beyond = format!("/tlog/tile/{level}/{beyond}");
        assert_eq!(get(app, &beyond).await.status, 404, "{beyond} at size {size}");
        level_below = tiles;
        level += 1;
    }
    assert_eq!(level, (0u32..).find(|l| size < 256u64.pow(*l)).unwrap());
    leaves
}

/// Parses an entry bundle: big-endian u16 lengths, each followed by that many bytes.
fn bundle_entries(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 2, "a truncated length");
        let len = u16::from_be_bytes([body[0], body[1]]) as usize;
        assert!(body.len() >= 2 + len, "a truncated entry");
        out.push(body[2..2 + len].to_vec());
        body = &body[2 + len..];
    }
    out
}

/// Every entry of every bundle hashes to its leaf; the entries of `sampled` revisions commit
/// to the events served at `/tlog/event/<revision>`.
async fn check_bundles(app: &TestApp, size: u64, leaves: &[H], sampled: &[u64]) {
    let mut entries = Vec::new();
    for n in 0..size.div_ceil(256) {
        let width = (size - n * 256).min(256);
        let body = tile(app, &format!("/tlog/tile/entries/{}", tile_suffix(n, width)), width).await;
        let these = bundle_entries(&body);
        assert_eq!(these.len() as u64, width, "bundle {n}");
        entries.extend(these);
    }
    assert_eq!(entries.len(), leaves.len());
    for (i, (e, l)) in entries.iter().zip(leaves).enumerate() {
        assert_eq!(&leaf_hash(e), l, "entry {i}");
    }
    for &revision in sampled {
        let event = get(app, &format!("/tlog/event/{revision}")).await;
        assert_eq!(event.status, 200);
        assert_eq!(event.content_type, "application/json");
        let expected = format!(
            "tradeledger/event/v1\n{revision}\n{}\n",
            hex::encode(Sha256::digest(&event.body))
        );
        assert_eq!(
            String::from_utf8_lossy(&entries[revision as usize - 1]),
            expected,
            "the entry of revision {revision} commits to its event"
        );
    }
}

/// A store of `size` events written straight through the store API: the dataset, then
/// one-figure SYNTHETIC releases. Far faster than that many writes through the API.
fn store_of(size: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("log")).unwrap();
    let dataset = dataset();
    let mut head = Head::default();
    let mut prev = Hash::GENESIS;
    let mut batch = Vec::new();
    for revision in 1..=size {
        let event = if revision == 1 {
            Event::DatasetDefined {
                dataset: dataset.clone(),
            }
        } else {
            let id = Uuid::from_u128(0x6b1f_0c2e_0000_4e51_9a57_0000_0000_0000 | revision as u128);
            let input = release_input(&id.to_string(), "IPR._T._T", "2025-S1", &revision.to_string());
            let draft: ReleaseDraft = serde_json::from_value(input).unwrap();
            Event::ReleasePublished {
                release: draft.validate(&dataset).unwrap(),
            }
        };
        let envelope = Envelope {
            format: FORMAT_VERSION,
            revision,
            event_id: Uuid::new_v4(),
            recorded_at: Utc::now(),
            actor: "tiles".into(),
            prev_hash: prev.to_hex(),
            event,
        };
        let (hash, bytes) = encode(&envelope);
        prev = hash;
        batch.push(Record { revision, hash, bytes });
        if batch.len() == 5000 || revision == size {
            head = store.append_blocking(&batch, head).unwrap();
            batch.clear();
        }
    }
    drop(store);
    dir
}

async fn app_of(size: u64) -> (TestApp, String) {
    let app = spawn_app_on(store_of(size)).await;
    let signer = Arc::new(Signer::generate("tiles.test.example/log").unwrap());
    let vkey = signer.verifier_key();
    assert!(app.ledger.set_signer(signer));
    (app, vkey)
}

async fn checkpoint_note(app: &TestApp) -> String {
    let f = get(app, "/tlog/checkpoint").await;
    assert_eq!(f.status, 200);
    assert_eq!(f.content_type, "text/plain; charset=utf-8");
    let age: u64 = f
        .cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{}", f.cache));
    assert!(age <= 5, "{}", f.cache);
    let note = String::from_utf8(f.body).unwrap();
    let alias = get(app, "/checkpoint").await;
    assert_eq!(String::from_utf8(alias.body).unwrap(), note, "/checkpoint is an alias");
    note
}

/// At the tree sizes where tiles change shape (1, 255, 256, 257), the client rebuilds the
/// signed root from the level-0 tiles, checks level 1 against level 0, and every entry.
#[tokio::test]
async fn a_tile_client_checks_the_log_at_the_sizes_where_tiles_change_shape() {
    for size in [1u64, 255, 256, 257] {
        let (app, vkey) = app_of(size).await;
        let (signed, root) = open_checkpoint(&checkpoint_note(&app).await, &vkey);
        assert_eq!(signed, size);
        let leaves = check_tiles(&app, size, &root).await;
        let sampled: Vec<u64> = (1..=size).collect();
        check_bundles(&app, size, &leaves, &sampled).await;
    }
}

/// The spec's example size, 70,000: 273 full level-0 tiles, a partial one of width 112, one
/// full level-1 tile and a partial one of width 17, and a level-2 tile of width 1; and 65,536,
/// the smallest size with a level-2 tile, through the signed checkpoint of that size.
#[tokio::test]
async fn a_tile_client_checks_the_log_at_70000_entries_up_to_level_2() {
    let (app, vkey) = app_of(70_000).await;
    let (size, root) = open_checkpoint(&checkpoint_note(&app).await, &vkey);
    assert_eq!(size, 70_000);
    for (path, width) in [
        ("/tlog/tile/0/272", 256),
        ("/tlog/tile/0/273.p/112", 112),
        ("/tlog/tile/1/000", 256),
        ("/tlog/tile/1/001.p/17", 17),
        ("/tlog/tile/2/000.p/1", 1),
    ] {
        tile(&app, path, width).await;
    }
    let leaves = check_tiles(&app, size, &root).await;
    check_bundles(&app, size, &leaves, &[2, 256, 257, 65_536, 70_000]).await;
    let q = "{ checkpoint(treeSize: 65536) { note } }";
    let note = app.gql(q, json!({})).await["data"]["checkpoint"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    let (small, small_root) = open_checkpoint(&note, &vkey);
    assert_eq!(small, 65_536);
    assert_eq!(mth(&leaves[..65_536]), small_root);
    let level2 = tile(&app, "/tlog/tile/2/000.p/1", 1).await;
    assert_eq!(level2, small_root, "the level-2 hash is the root of the first 65,536");
}

/// Hostile paths: bad encodings and out-of-range numbers are 400 naming the problem, tiles
/// the tree does not have are 404; nothing panics, whatever the index.
#[tokio::test]
async fn bad_tile_paths_are_refused_naming_the_problem() {
    let (app, _) = app_of(3).await;
    for (path, status, says) in [
        ("/tlog/tile/0/x000/000.p/3", 400, "canonical form `0/000.p/3`"),
        ("/tlog/tile/0/5", 400, "not three digits"),
        ("/tlog/tile/00/000.p/3", 400, "the level `00`"),
        ("/tlog/tile/64/000", 400, "the level `64`"),
        ("/tlog/tile/0/000.p/0", 400, "from 1 to 255"),
        ("/tlog/tile/0/000.p/256", 400, "the partial width `256`"),
        ("/tlog/tile/0/000.p/03", 400, "the partial width `03`"),
        ("/tlog/tile/0/001/000", 400, "must start with `x`"),
        ("/tlog/tile/0/x999/x999/x999/x999/x999/x999/x999/999", 400, "too large"),
        ("/tlog/tile/entries/000.p/x", 400, "the partial width `x`"),
        ("/tlog/tile/entries", 400, "expected"),
        ("/tlog/tile/0/000.p/4", 404, "no tile 0/000.p/4"),
        ("/tlog/tile/0/000", 404, "no tile 0/000"),
        ("/tlog/tile/1/000.p/1", 404, "no tile 1/000.p/1"),
        ("/tlog/tile/63/x018/x446/x744/x073/x709/x551/615", 404, "no tile"),
        (
            "/tlog/tile/entries/x018/x446/x744/x073/x709/x551/615.p/9",
            404,
            "no entry bundle",
        ),
        ("/tlog/tile/entries/000.p/4", 404, "no entry bundle"),
        ("/tlog/event/0", 400, "the revision `0`"),
        ("/tlog/event/01", 400, "the revision `01`"),
        ("/tlog/event/99999999999999999999999", 400, "is not a decimal"),
        ("/tlog/event/4", 404, "no revision 4"),
    ] {
        let f = get(&app, path).await;
        let body = String::from_utf8_lossy(&f.body);
        assert_eq!(f.status, status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let long = format!("/tlog/tile/0/{}", "x123/".repeat(40));
    assert_eq!(get(&app, &long).await.status, 400);
    // What is there is served.
    assert_eq!(tile(&app, "/tlog/tile/0/000.p/3", 3).await.len(), 96);
}

/// Entry bundles are gzipped for a client that accepts it, and say so.
#[tokio::test]
async fn entry_bundles_are_compressed_for_clients_that_accept_gzip() {
    use std::io::Read;
    let (app, _) = app_of(40).await;
    let plain = tile(&app, "/tlog/tile/entries/000.p/40", 40).await;
    let r = app
        .client
        .get(format!("http://{}/tlog/tile/entries/000.p/40", app.addr))
        .header("accept-encoding", "gzip, identity")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["vary"], "Accept-Encoding");
    let zipped = r.bytes().await.unwrap();
    assert!(zipped.len() < plain.len(), "{} >= {}", zipped.len(), plain.len());
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, plain);
    let r = app
        .client
        .get(format!("http://{}/tlog/tile/entries/000.p/40", app.addr))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
}

/// A store written before entries were statements (record format 1) keeps its tree: the
/// leaves of its events are still their canonical bytes, so the checkpoints signed over it
/// stay valid, and the log's growth under the new rule is an extension of it.
#[tokio::test]
async fn a_store_of_format_1_events_keeps_its_tree_and_grows_by_statements() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-time-axes");
    let dir = tempfile::tempdir().unwrap();
    crate::proc_support::copy_dir(&source.join("log"), &dir.path().join("log"));
    let key = std::fs::read_to_string(source.join("signing-key")).unwrap();
    let signer = Arc::new(Signer::parse(&key).unwrap());
    let vkey = signer.verifier_key();
    let app = spawn_app_on(dir).await;
    assert!(app.ledger.set_signer(signer));
    let v = app
        .gql("{ events(first: 100) { edges { node { canonical } } } }", json!({}))
        .await;
    let old: Vec<H> = v["data"]["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let canonical = e["node"]["canonical"].as_str().unwrap();
            assert!(canonical.starts_with(r#"{"format":1,"#), "{canonical}");
            leaf_hash(canonical.as_bytes())
        })
        .collect();
    let (old_size, old_root) = open_checkpoint(&checkpoint_note(&app).await, &vkey);
    assert_eq!(old_size, old.len() as u64);
    assert_eq!(
        old_root,
        mth(&old),
        "the tree the older binary signed, leaf = canonical bytes"
    );
    let input = release_input(&Uuid::new_v4().to_string(), "IPR._T._T", "2025-S1", "-2400");
    let v = app.gql_write(crate::support::PUBLISH, json!({ "input": input })).await;
    assert!(v.get("errors").is_none(), "{v}");
    let (size, root) = open_checkpoint(&checkpoint_note(&app).await, &vkey);
    assert_eq!(size, old_size + 1);
    let leaves = check_tiles(&app, size, &root).await;
    assert_eq!(&leaves[..old.len()], &old[..], "the old leaves are kept");
    assert_eq!(mth(&leaves[..old.len()]), old_root, "the old checkpoint is a prefix");
    check_bundles(&app, size, &leaves, &[size]).await;
}
