//! `tradeledger witness`: what an auditor runs from cron against a server.
//!
//! 1. Fetch `GET /checkpoint` and verify its signature with the verifier key given.
//! 2. If the state file holds an earlier checkpoint (verified with the same key), fetch a
//!    consistency proof from its size to the new size and check it against the two signed
//!    roots: the new tree must extend the old one. A smaller tree, or the same size with
//!    another root, is refused without asking the server anything.
//! 3. Save the new checkpoint in the state file (written aside, then renamed).
//!
//! The server's word is never taken for a root: both roots come from signed checkpoints, and
//! the proof is checked with [`super::verify`]. A history rewritten and re-signed with the
//! same key therefore fails step 2.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::note::{Checkpoint, Verifier, MAX_NOTE_BYTES};
use super::verify;
use super::Node;

/// Largest GraphQL response the witness reads (a consistency proof is some 64 hashes).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// What the witness found, for its one line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub previous: Option<u64>,
    pub checkpoint: Checkpoint,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.checkpoint;
        let root = base64::engine::general_purpose::STANDARD.encode(c.root);
        match self.previous {
            None => write!(
                f,
                "ok: first checkpoint of {} saved: size {}, root {root}",
                c.origin, c.size
            ),
            Some(p) if p == c.size => write!(f, "ok: {} unchanged at size {}, root {root}", c.origin, c.size),
            Some(p) => write!(
                f,
                "ok: {} grew from size {p} to {} consistently; root {root}",
                c.origin, c.size
            ),
        }
    }
}

/// Why the witness refuses; the message says what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal(message.into())
}

/// The server's base URL from what the user gave (a trailing `/graphql` or `/checkpoint` is
/// accepted too).
fn base_url(url: &str) -> Result<String, Refusal> {
    let url = url.trim().trim_end_matches('/');
    let url = url
        .strip_suffix("/graphql")
        .or_else(|| url.strip_suffix("/checkpoint"))
        .unwrap_or(url);
    if url.starts_with("https://") {
        return Err(refuse(
            "https URLs are not supported by this build's HTTP client; use http:// (the checkpoint \
             is signed and every proof is checked, so the transport need not be trusted)",
        ));
    }
    if !url.starts_with("http://") {
        return Err(refuse(format!("--url must be an http:// URL (got `{url}`)")));
    }
    Ok(url.to_owned())
}

async fn read_body(mut response: reqwest::Response, limit: usize, what: &str) -> Result<String, Refusal> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| refuse(format!("reading {what}: {e}")))?
    {
        if body.len() + chunk.len() > limit {
            return Err(refuse(format!("{what} is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| refuse(format!("{what} is not UTF-8")))?;
    if !status.is_success() {
        return Err(refuse(format!("{what}: HTTP {status}: {}", text.trim())));
    }
    Ok(text)
}

fn hash_list(value: &Value) -> Option<Vec<Node>> {
    value
        .as_array()?
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.as_str()?, &mut out).ok()?;
            Some(out)
        })
        .collect()
}

/// Runs the witness once. `token` is sent as a bearer token when the server protects reads.
pub async fn run(url: &str, vkey: &str, state: &Path, token: Option<&str>) -> Result<Outcome, Refusal> {
    let verifier = Verifier::parse(vkey).map_err(|e| refuse(format!("--vkey: {e}")))?;
    let base = base_url(url)?;
    let previous = match std::fs::read_to_string(state) {
        Ok(text) => Some(verifier.open_checkpoint(&text).map_err(|e| {
            refuse(format!(
                "the state file {} does not hold a checkpoint signed by this key: {e}",
                state.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(refuse(format!("reading {}: {e}", state.display()))),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .map_err(|e| refuse(format!("HTTP client: {e}")))?;
    let auth = |req: reqwest::RequestBuilder| match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };

    let response = auth(client.get(format!("{base}/checkpoint")))
        .send()
        .await
        .map_err(|e| refuse(format!("fetching {base}/checkpoint: {e}")))?;
    let note = read_body(response, MAX_NOTE_BYTES, "the checkpoint").await?;
    let current = verifier
        .open_checkpoint(&note)
        .map_err(|e| refuse(format!("the server's checkpoint does not verify: {e}")))?;

    if let Some(old) = &previous {
        if current.size < old.size {
            return Err(refuse(format!(
                "REJECTED: the log shrank from size {} to {}: history was rolled back",
                old.size, current.size
            )));
        }
        if current.size == old.size && current.root != old.root {
            return Err(refuse(format!(
                "REJECTED: two different roots signed for size {}: the history was rewritten",
                old.size
            )));
        }
        if current.size > old.size && old.size > 0 {
            let query = "query($from: Int!, $to: Int) { consistencyProof(fromSize: $from, toSize: $to) { hashes } }";
            let response = auth(client.post(format!("{base}/graphql")))
                .header("content-type", "application/json")
                .json(&json!({ "query": query, "variables": { "from": old.size, "to": current.size } }))
                .send()
                .await
                .map_err(|e| refuse(format!("fetching the consistency proof: {e}")))?;
            let body = read_body(response, MAX_RESPONSE_BYTES, "the consistency proof").await?;
            let value: Value =
                serde_json::from_str(&body).map_err(|e| refuse(format!("the consistency proof is not JSON: {e}")))?;
            let hashes = hash_list(&value["data"]["consistencyProof"]["hashes"]).ok_or_else(|| {
                refuse(format!(
                    "no consistency proof from size {} to {}: {}",
                    old.size, current.size, value["errors"]
                ))
            })?;
            if !verify::consistency(old.size, current.size, &old.root, &current.root, &hashes) {
                return Err(refuse(format!(
                    "REJECTED: the tree of size {} is not an extension of the tree of size {} this \
                     witness saw before: the history was rewritten",
                    current.size, old.size
                )));
            }
        }
    }

    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, &note)
        .and_then(|()| std::fs::rename(&tmp, state))
        .map_err(|e| refuse(format!("saving {}: {e}", state.display())))?;
    Ok(Outcome {
        previous: previous.map(|p| p.size),
        checkpoint: current,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::{Json, Router};

    use super::super::merkle::{leaf_hash, MerkleTree};
    use super::super::note::Signer;
    use super::*;

    /// A log that signs the tree it is told to serve and answers consistency proofs from it,
    /// or answers what a test overrides.
    struct Log {
        signer: Signer,
        tree: MerkleTree,
        size: u64,
        checkpoint: Option<(StatusCode, Vec<u8>)>,
        proof: Option<String>,
    }

    type Shared = Arc<Mutex<Log>>;

    fn tree(salt: u8) -> MerkleTree {
        MerkleTree::from_leaves((0..10u8).map(|i| leaf_hash(&[salt, i])).collect())
    }

    async fn checkpoint(State(log): State<Shared>) -> (StatusCode, Vec<u8>) {
        let log = log.lock().unwrap();
        log.checkpoint.clone().unwrap_or_else(|| {
            let root = log.tree.root(log.size).unwrap();
            (StatusCode::OK, log.signer.checkpoint(log.size, &root).into_bytes())
        })
    }

    /// The proof between the sizes the witness asks for, padded past 2 KiB with spaces.
    async fn graphql(State(log): State<Shared>, Json(request): Json<Value>) -> String {
        let log = log.lock().unwrap();
        if let Some(body) = &log.proof {
            return body.clone();
        }
        let size = |name: &str| request["variables"][name].as_u64().unwrap();
        let hashes: Vec<String> = log
            .tree
            .consistency_proof(size("from"), size("to"))
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect();
        format!(
            "{}{}",
            json!({ "data": { "consistencyProof": { "hashes": hashes } } }),
            " ".repeat(2048)
        )
    }

    /// Serves a log whose tree of 10 leaves is at `size`: its URL, its state and its vkey.
    async fn serve(size: u64) -> (String, Shared, String) {
        let signer = Signer::new("example.com/log", [5; 32]).unwrap();
        let vkey = signer.verifier_key();
        let log = Arc::new(Mutex::new(Log {
            signer,
            tree: tree(0),
            size,
            checkpoint: None,
            proof: None,
        }));
        let app = Router::new()
            .route("/checkpoint", get(checkpoint))
            .route("/graphql", post(graphql))
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, log, vkey)
    }

    /// The witness saves the first checkpoint, accepts the same one and a consistent larger
    /// one, and refuses (keeping its state) a smaller tree, another root for its size, and a
    /// larger tree that does not extend its own.
    #[tokio::test]
    async fn follows_a_log_and_refuses_every_rewrite() {
        let (url, log, vkey) = serve(0).await;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let set = |size: u64, salt: u8| {
            let mut log = log.lock().unwrap();
            (log.size, log.tree) = (size, tree(salt));
        };
        let root = |size: u64| base64::engine::general_purpose::STANDARD.encode(tree(0).root(size).unwrap());
        let ok = run(&url, &vkey, &state, None).await.unwrap();
        assert_eq!(
            ok.to_string(),
            format!(
                "ok: first checkpoint of example.com/log saved: size 0, root {}",
                root(0)
            )
        );
        // From size 0 there is nothing to prove: no proof is asked for.
        set(3, 0);
        let ok = run(&format!("{url}/graphql/"), &vkey, &state, None).await.unwrap();
        assert_eq!(ok.previous, Some(0));
        let ok = run(&format!("{url}/checkpoint"), &vkey, &state, None).await.unwrap();
        assert_eq!(
            ok.to_string(),
            format!("ok: example.com/log unchanged at size 3, root {}", root(3))
        );
        set(7, 0);
        let ok = run(&url, &vkey, &state, None).await.unwrap();
        let grew = format!(
            "ok: example.com/log grew from size 3 to 7 consistently; root {}",
            root(7)
        );
        assert_eq!(ok.to_string(), grew);
        let saved = std::fs::read_to_string(&state).unwrap();
        for (size, salt, says) in [
            (5, 0, "REJECTED: the log shrank from size 7 to 5"),
            (7, 1, "REJECTED: two different roots signed for size 7"),
            (
                9,
                1,
                "REJECTED: the tree of size 9 is not an extension of the tree of size 7",
            ),
        ] {
            set(size, salt);
            let e = run(&url, &vkey, &state, None).await.unwrap_err();
            assert!(e.0.starts_with(says), "{says}: {e}");
            assert_eq!(std::fs::read_to_string(&state).unwrap(), saved);
        }
        // A server that answers no proof is refused, with its errors; at an unchanged size no
        // proof is asked for.
        log.lock().unwrap().proof = Some(r#"{"data":null,"errors":[{"message":"no"}]}"#.into());
        set(7, 0);
        assert_eq!(run(&url, &vkey, &state, None).await.unwrap().previous, Some(7));
        set(9, 1);
        let e = run(&url, &vkey, &state, None).await.unwrap_err();
        assert!(e.0.starts_with("no consistency proof from size 7 to 9: [{"), "{e}");
        let pad = " ".repeat(MAX_RESPONSE_BYTES);
        log.lock().unwrap().proof = Some(format!(r#"{{"data":null}}{pad}"#));
        let e = run(&url, &vkey, &state, None).await.unwrap_err();
        assert_eq!(e.0, "the consistency proof is larger than 1048576 bytes");
    }

    /// What the server sends is bounded and must be a checkpoint, and the state file must be
    /// one this key signed, or readable at all.
    #[tokio::test]
    async fn refuses_what_is_not_a_checkpoint_of_the_key() {
        let (url, log, vkey) = serve(2).await;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        for (status, body, says) in [
            (
                500,
                b"boom\n".to_vec(),
                "the checkpoint: HTTP 500 Internal Server Error: boom",
            ),
            (200, vec![0xff, 0xfe], "the checkpoint is not UTF-8"),
            (
                200,
                vec![b'a'; MAX_NOTE_BYTES],
                "the server's checkpoint does not verify",
            ),
            (
                200,
                vec![b'a'; MAX_NOTE_BYTES + 1],
                "the checkpoint is larger than 65536 bytes",
            ),
        ] {
            log.lock().unwrap().checkpoint = Some((StatusCode::from_u16(status).unwrap(), body));
            let e = run(&url, &vkey, &state, None).await.unwrap_err();
            assert!(e.0.starts_with(says), "{says}: {e}");
        }
        assert!(!state.exists());
        log.lock().unwrap().checkpoint = None;
        let other = Signer::new("example.com/log", [6; 32]).unwrap();
        std::fs::write(&state, other.checkpoint(0, &tree(0).root(0).unwrap())).unwrap();
        let e = run(&url, &vkey, &state, None).await.unwrap_err();
        assert!(e.0.contains("does not hold a checkpoint signed by this key"), "{e}");
        let e = run(&url, &vkey, dir.path(), None).await.unwrap_err();
        assert!(e.0.starts_with(&format!("reading {}", dir.path().display())), "{e}");
        for (bad, says) in [
            ("https://log.example", "https URLs are not supported"),
            (
                "ftp://log.example",
                "--url must be an http:// URL (got `ftp://log.example`)",
            ),
        ] {
            let e = run(bad, &vkey, &dir.path().join("new"), None).await.unwrap_err();
            assert!(e.0.starts_with(says), "{e}");
        }
    }
}
