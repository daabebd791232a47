//! `tradeledger witness serve`: a witness speaking C2SP `tlog-witness`.
//!
//! - `POST /add-checkpoint`: `old <size>`, the consistency proof lines, an empty line, then
//!   the checkpoint. Cosigns (`cosignature/v1`) a checkpoint signed by a configured log and
//!   consistent with the last one cosigned for its origin; answers 400, 403, 404, 409 (with
//!   `text/x.tlog.size`) and 422 as the spec says.
//! - `GET /<lowercase hex SHA-256 of the origin>/checkpoint`: the latest checkpoint cosigned,
//!   with the log's signature and the cosignature.
//!
//! Each log's latest cosigned checkpoint is kept in `STATE_DIR/<origin hash>`, written aside,
//! synced and renamed before the cosignature is returned. Checking the old size and persisting
//! the new checkpoint happen under one lock per log, so the race the spec describes (a smaller
//! checkpoint's write landing after a larger one's) cannot happen in this process, and the
//! state directory is locked against a second process.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::cosign::Cosigner;
use super::merkle::empty_root;
use super::note::{split_note, Checkpoint, Verifier, MAX_NOTE_BYTES};
use super::{verify, Node};

/// The largest request body read: a checkpoint note and 63 proof lines.
const MAX_BODY_BYTES: usize = MAX_NOTE_BYTES + 8 * 1024;
/// The most consistency proof lines a client may send.
const MAX_PROOF_LINES: usize = 63;
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The flags of `witness serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct WitnessArgs {
    /// File holding the witness's Ed25519 cosigning key,
    /// `PRIVATE+KEY+<name>+<key ID>+<base64(0x04 || seed)>`.
    #[arg(long, env = "TRADELEDGER_WITNESS_KEY")]
    pub key: PathBuf,
    /// A log to witness, by its note verifier key (`<origin>+<key ID>+<key>`): its key name is
    /// its origin. Repeat the flag (or separate with commas) for several logs.
    #[arg(
        long = "log-vkey",
        env = "TRADELEDGER_WITNESS_LOGS",
        value_delimiter = ',',
        required = true
    )]
    pub logs: Vec<String>,
    /// Directory holding each log's latest cosigned checkpoint (created if missing).
    #[arg(long, env = "TRADELEDGER_WITNESS_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "TRADELEDGER_WITNESS_LISTEN", default_value = "127.0.0.1:8100")]
    pub listen: SocketAddr,
}

/// The latest checkpoint cosigned for a log.
#[derive(Debug, Clone)]
struct Latest {
    checkpoint: Checkpoint,
    /// The note as served: the text, the log's signature and the cosignature.
    note: String,
}

struct Log {
    verifier: Verifier,
    file: PathBuf,
    /// Held from the old-size check until the new checkpoint is on disk.
    latest: tokio::sync::Mutex<Option<Latest>>,
}

struct Witness {
    cosigner: Cosigner,
    /// By origin.
    logs: HashMap<String, Log>,
    /// By lowercase hex SHA-256 of the origin.
    by_hash: HashMap<String, String>,
}

fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// Writes `text` to `path` atomically: a temporary file beside it, synced, renamed, and the
/// directory synced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes a new cosigning key named `name` to `out` (created, owner-only); returns its
/// verifier key.
pub fn keygen(name: &str, out: &Path) -> anyhow::Result<String> {
    let cosigner = Cosigner::generate(name).context("--name")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("creating the witness key {}", out.display()))?;
    file.write_all(format!("{}\n", cosigner.to_private_text()).as_bytes())?;
    file.sync_all()?;
    Ok(cosigner.verifier_key())
}

/// Runs the witness until the process is stopped.
pub async fn serve(args: WitnessArgs) -> anyhow::Result<()> {
    let (app, lock, vkey) = open(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(vkey = %vkey, "witness listening on http://{addr}/");
    println!("listening on {addr}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    drop(lock);
    Ok(())
}

/// The witness's routes over its state directory, the lock held on that directory while
/// they serve, and the witness's verifier key.
fn open(args: &WitnessArgs) -> anyhow::Result<(Router, std::fs::File, String)> {
    let key_text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading the witness key {}", args.key.display()))?;
    let cosigner = Cosigner::parse(&key_text).with_context(|| format!("the witness key {}", args.key.display()))?;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating the state directory {}", args.state_dir.display()))?;
    let lock_path = args.state_dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "the state directory {} is in use by another witness process",
            args.state_dir.display()
        );
    }
    let mut logs = HashMap::new();
    let mut by_hash = HashMap::new();
    for vkey in &args.logs {
        let verifier = Verifier::parse(vkey).with_context(|| format!("--log-vkey {vkey}"))?;
        let origin = verifier.name().to_owned();
        let hash = origin_hash(&origin);
        let file = args.state_dir.join(&hash);
        let latest = match std::fs::read_to_string(&file) {
            Ok(note) => {
                let checkpoint = verifier
                    .open_checkpoint(&note)
                    .with_context(|| format!("the saved checkpoint {} of {origin}", file.display()))?;
                Some(Latest { checkpoint, note })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        if logs.contains_key(&origin) {
            bail!("--log-vkey: the origin {origin} is given twice");
        }
        by_hash.insert(hash, origin.clone());
        logs.insert(
            origin,
            Log {
                verifier,
                file,
                latest: tokio::sync::Mutex::new(latest),
            },
        );
    }
    let witness = Arc::new(Witness {
        cosigner,
        logs,
        by_hash,
    });
    let vkey = witness.cosigner.verifier_key();
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(latest_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(witness);
    Ok((app, lock, vkey))
}

fn answer(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A decimal with no leading zeroes (`0` itself allowed).
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// An `add-checkpoint` request body: old size, proof, checkpoint note.
struct Request<'a> {
    old: u64,
    proof: Vec<Node>,
    note: &'a str,
}

fn parse_request(body: &str) -> Result<Request<'_>, String> {
    let (head, note) = body
        .split_once("\n\n")
        .ok_or("no empty line between the consistency proof and the checkpoint")?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(decimal)
        .ok_or("the first line must be `old <size>` (a decimal without leading zeroes)")?;
    let mut proof = Vec::new();
    for (i, line) in lines.enumerate() {
        if i == MAX_PROOF_LINES {
            return Err(format!("more than {MAX_PROOF_LINES} consistency proof lines"));
        }
        let hash: Node = STANDARD
            .decode(line)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("consistency proof line {} is not a base64 SHA-256 hash", i + 1))?;
        proof.push(hash);
    }
    Ok(Request { old, proof, note })
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let Ok(body) = std::str::from_utf8(&body) else {
        return answer(StatusCode::BAD_REQUEST, "the request is not UTF-8\n");
    };
    let request = match parse_request(body) {
        Ok(r) => r,
        Err(why) => return answer(StatusCode::BAD_REQUEST, format!("{why}\n")),
    };
    let origin = request.note.split('\n').next().unwrap_or_default();
    let Some(log) = w.logs.get(origin) else {
        return answer(
            StatusCode::NOT_FOUND,
            format!("this witness does not know the log `{}`\n", origin.escape_debug()),
        );
    };
    let (text, lines) = match split_note(request.note) {
        Ok(split) => split,
        Err(e) => return answer(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if let Err(e) = log.verifier.open(request.note) {
        return answer(StatusCode::FORBIDDEN, format!("{e}\n"));
    }
    let checkpoint = match Checkpoint::parse(text) {
        Ok(c) => c,
        Err(e) => return answer(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if request.old > checkpoint.size {
        return answer(
            StatusCode::BAD_REQUEST,
            format!(
                "the old size {} is larger than the checkpoint's size {}\n",
                request.old, checkpoint.size
            ),
        );
    }
    let mut latest = log.latest.lock().await;
    let (known_size, known_root) = match &*latest {
        Some(l) => (l.checkpoint.size, l.checkpoint.root),
        None => (0, empty_root()),
    };
    if request.old != known_size {
        return (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            format!("{known_size}\n"),
        )
            .into_response();
    }
    let unprocessable = |why: String| answer(StatusCode::UNPROCESSABLE_ENTITY, format!("{why}\n"));
    if checkpoint.size == 0 && checkpoint.root != empty_root() {
        return unprocessable("a checkpoint of size 0 must have the root of the empty tree".into());
    }
    if request.old == 0 {
        if !request.proof.is_empty() {
            return unprocessable("the consistency proof from size 0 must be empty".into());
        }
    } else if request.old == checkpoint.size {
        if checkpoint.root != known_root || !request.proof.is_empty() {
            tracing::warn!(
                origin,
                size = checkpoint.size,
                "refused a checkpoint: another root at the same size"
            );
            return unprocessable(format!(
                "the checkpoint's root differs from the one cosigned at size {known_size}"
            ));
        }
    } else if !verify::consistency(
        request.old,
        checkpoint.size,
        &known_root,
        &checkpoint.root,
        &request.proof,
    ) {
        tracing::warn!(
            origin,
            old = request.old,
            size = checkpoint.size,
            "refused a checkpoint: the consistency proof does not verify"
        );
        return unprocessable(format!(
            "the consistency proof from size {} to {} does not verify against the checkpoint cosigned at size {known_size}",
            request.old, checkpoint.size
        ));
    }
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cosignature = w.cosigner.cosign(text, time);
    let mut note = format!("{text}\n");
    for line in lines.iter().filter(|l| log.verifier.matches(l)) {
        note.push_str(&line.line);
        note.push('\n');
    }
    note.push_str(&cosignature);
    note.push('\n');
    let file = log.file.clone();
    let saved = note.clone();
    match tokio::task::spawn_blocking(move || write_atomically(&file, &saved)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, origin, "cannot save the cosigned checkpoint");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "the witness cannot save its state\n");
        }
        Err(e) => {
            tracing::error!(error = %e, origin, "cannot save the cosigned checkpoint");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "the witness cannot save its state\n");
        }
    }
    tracing::info!(origin, size = checkpoint.size, "cosigned");
    *latest = Some(Latest { checkpoint, note });
    drop(latest);
    answer(StatusCode::OK, format!("{cosignature}\n"))
}

async fn latest_checkpoint(State(w): State<Arc<Witness>>, UrlPath(hash): UrlPath<String>) -> Response {
    let Some(log) = w.by_hash.get(&hash).and_then(|o| w.logs.get(o)) else {
        return answer(StatusCode::NOT_FOUND, "this witness does not know that log\n");
    };
    match &*log.latest.lock().await {
        Some(l) => answer(StatusCode::OK, l.note.clone()),
        None => answer(
            StatusCode::NOT_FOUND,
            "this witness has not cosigned a checkpoint of that log\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::cosign::CosignatureVerifier;
    use super::super::merkle::{leaf_hash, MerkleTree};
    use super::super::note::{parse_signature_line, Signer};
    use super::*;

    fn args(dir: &Path, logs: Vec<String>) -> WitnessArgs {
        WitnessArgs {
            key: dir.join("key"),
            logs,
            state_dir: dir.join("state"),
            listen: "127.0.0.1:0".parse().unwrap(),
        }
    }

    /// Serves the witness of `args` on a port of its own: its URL, the lock it holds, its vkey.
    async fn start(args: &WitnessArgs) -> (String, std::fs::File, String) {
        let (app, lock, vkey) = open(args).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, lock, vkey)
    }

    /// `POST /add-checkpoint`: the status, the content type and the body.
    async fn add(url: &str, body: String) -> (u16, String, String) {
        let r = reqwest::Client::new()
            .post(format!("{url}/add-checkpoint"))
            .body(body)
            .send()
            .await
            .unwrap();
        let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), kind.unwrap_or_default(), r.text().await.unwrap())
    }

    async fn latest(url: &str) -> (u16, String) {
        let hash = hex::encode(Sha256::digest(b"example.com/log"));
        let r = reqwest::get(format!("{url}/{hash}/checkpoint")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn request(old: &str, proof: &[Node], note: &str) -> String {
        let mut body = format!("old {old}\n");
        for h in proof {
            body += &STANDARD.encode(h);
            body.push('\n');
        }
        body + "\n" + note
    }

    fn tree(salt: u8) -> MerkleTree {
        MerkleTree::from_leaves((0..10u8).map(|i| leaf_hash(&[salt, i])).collect())
    }

    /// The witness cosigns a log's first checkpoint and each consistent one after it, answers
    /// each mistake with the spec's status, serves the latest cosigned note, and finds it again
    /// after a restart; its state directory is locked against a second process.
    #[tokio::test]
    async fn cosigns_consistent_checkpoints_and_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let log = Signer::new("example.com/log", [1; 32]).unwrap();
        let vkey = keygen("w.example", &dir.path().join("key")).unwrap();
        assert!(
            keygen("w.example", &dir.path().join("key")).is_err(),
            "a key is never overwritten"
        );
        let args = args(dir.path(), vec![log.verifier_key()]);
        let (url, lock, served) = start(&args).await;
        assert_eq!(served, vkey);
        let cosigner = CosignatureVerifier::parse(&vkey).unwrap();
        assert_eq!(latest(&url).await.0, 404);

        let t = tree(0);
        let note0 = log.checkpoint(0, &empty_root());
        let (status, _, body) = add(&url, request("0", &[], &note0)).await;
        assert_eq!(status, 200, "{body}");
        let note3 = log.checkpoint(3, &t.root(3).unwrap());
        for (body, says) in [
            (
                request("0", &[], &log.checkpoint(0, &[1; 32])),
                "size 0 must have the root of the empty tree",
            ),
            (
                request("0", &[[1; 32]], &note3),
                "the consistency proof from size 0 must be empty",
            ),
        ] {
            let (status, _, text) = add(&url, body).await;
            assert_eq!((status, text.contains(says)), (422, true), "{says}: {text}");
        }
        let (status, _, body) = add(&url, request("0", &[], &note3)).await;
        assert_eq!(status, 200, "{body}");
        let line = parse_signature_line(body.trim_end()).unwrap();
        assert!(cosigner.verify(split_note(&note3).unwrap().0, &line).is_ok());
        let note7 = log.checkpoint(7, &t.root(7).unwrap());
        let proof = t.consistency_proof(3, 7).unwrap();
        let (status, _, body) = add(&url, request("3", &proof, &note7)).await;
        assert_eq!(status, 200, "{body}");
        // The same checkpoint again is cosigned again; with a proof, it is not.
        let (status, _, body) = add(&url, request("7", &[], &note7)).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, text) = add(&url, request("7", &[[1; 32]], &note7)).await;
        assert_eq!(
            (status, text.contains("differs from the one cosigned")),
            (422, true),
            "{text}"
        );
        let (status, saved) = latest(&url).await;
        assert_eq!(status, 200);
        assert!(saved.starts_with(&note7) && saved.ends_with(&body), "{saved}");

        let other_root = log.checkpoint(7, &tree(1).root(7).unwrap());
        let stranger = Signer::new("example.com/other", [2; 32])
            .unwrap()
            .checkpoint(1, &[0; 32]);
        let forged = Signer::new("example.com/log", [3; 32])
            .unwrap()
            .checkpoint(9, &t.root(9).unwrap());
        let note9 = log.checkpoint(9, &t.root(9).unwrap());
        let bad_proof = t.consistency_proof(3, 9).unwrap();
        for (body, status, says) in [
            (request("3", &proof, &note7), 409, "7\n"),
            (request("0", &[], &note7), 409, "7\n"),
            (
                request("9", &[], &note7),
                400,
                "the old size 9 is larger than the checkpoint's size 7",
            ),
            (request("07", &[], &note9), 400, "the first line must be `old <size>`"),
            (
                request("7", &[], &stranger),
                404,
                "does not know the log `example.com/other`",
            ),
            (request("7", &[], &forged), 403, "no signature by example.com/log"),
            (
                request("7", &[], &other_root),
                422,
                "differs from the one cosigned at size 7",
            ),
            (
                request("7", &bad_proof, &note9),
                422,
                "from size 7 to 9 does not verify",
            ),
            // 72 KiB: a 64 KiB note and 63 proof lines.
            ("a".repeat(73_728), 400, "no empty line"),
            ("a".repeat(73_729), 413, ""),
        ] {
            let (got, kind, text) = add(&url, body).await;
            assert_eq!(got, status, "{says}: {text}");
            assert!(text.contains(says), "{says}: {text}");
            let size = if status == 409 { SIZE_CONTENT_TYPE } else { "text/plain" };
            assert!(status == 413 || kind.starts_with(size), "{says}: {kind}");
        }
        assert_eq!(latest(&url).await.1, saved, "nothing refused is kept");

        let e = open(&args).unwrap_err();
        assert!(format!("{e:#}").contains("in use by another witness process"), "{e:#}");
        drop(lock);
        let (again, _lock, _) = start(&args).await;
        assert_eq!(latest(&again).await, (200, saved));
    }

    /// A state file that cannot be read, a missing key or a log given twice stop the witness
    /// before it serves.
    #[tokio::test]
    async fn refuses_to_start_on_state_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = Signer::new("example.com/log", [1; 32]).unwrap();
        let e = serve(args(dir.path(), vec![log.verifier_key()])).await.unwrap_err();
        assert!(format!("{e:#}").contains("reading the witness key"), "{e:#}");
        keygen("w.example", &dir.path().join("key")).unwrap();
        let twice = args(dir.path(), vec![log.verifier_key(), log.verifier_key()]);
        let e = open(&twice).unwrap_err();
        assert!(format!("{e:#}").contains("is given twice"), "{e:#}");
        let args = args(dir.path(), vec![log.verifier_key()]);
        std::fs::create_dir_all(args.state_dir.join(origin_hash("example.com/log"))).unwrap();
        let e = open(&args).unwrap_err();
        assert!(format!("{e:#}").contains("reading"), "{e:#}");
    }
}
