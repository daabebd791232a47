//! Persisted queries: a request names its document by id instead of sending its text, so a
//! GET URL stays short and cacheable, and a public server can run only documents it knows.
//!
//! - **Automatic persisted queries** (Apollo's protocol): `extensions.persistedQuery` =
//!   `{"version": 1, "sha256Hash": "<hex>"}`. Without `query`, the document registered under
//!   the hash runs, or the answer is the error `PERSISTED_QUERY_NOT_FOUND` (never stored by a
//!   cache), and the client retries with `query` too: the server checks that the hash is the
//!   SHA-256 of the text, runs it and keeps it. Registration is anonymous input, so the store
//!   is bounded in documents and bytes (`--apq-max-entries`, `--apq-max-bytes`), the oldest
//!   going first, and only documents that parse and pass the limits are kept.
//! - **Trusted documents** (`--persisted-queries FILE`): a manifest written at build time,
//!   either Apollo's persisted query manifest (`{"format": "apollo-persisted-query-manifest",
//!   "operations": [{"id", "body", ...}]}`) or the JSON object of id to document that Relay's
//!   compiler and GraphQL Codegen's client preset write. Clients name a document by
//!   `extensions.persistedQuery.sha256Hash` or by `documentId` (GraphQL over HTTP's
//!   persisted documents, with or without a `sha256:` prefix). Ids are taken as the manifest
//!   gives them: Relay and Codegen may hash with MD5 or SHA-1.
//! - **`--only-persisted`**: a safelist. Only manifest documents run (by id, or by a text
//!   identical to one of them); automatic registration is off; anything else is refused
//!   with `PERSISTED_QUERY_NOT_IN_LIST` or `PERSISTED_QUERY_ID_REQUIRED`.
//!
//! A persisted document goes through exactly the limits a sent one does (text, cost,
//! response size): it becomes the request's `query` before anything else looks at it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bounded::BoundedMap;
use crate::graphql::{guard, Limits, BAD_USER_INPUT};

/// The code of the answer to an unknown hash, which tells Apollo clients to send the text.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
/// The code of the answer to a hash when automatic persisted queries are off
/// (`--apq-max-entries 0`): Apollo clients then stop sending hashes.
pub const PERSISTED_QUERY_NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";
/// The code of a request naming a document the safelist does not have.
pub const PERSISTED_QUERY_NOT_IN_LIST: &str = "PERSISTED_QUERY_NOT_IN_LIST";
/// The code of a request sending a document's text to a server that runs only known ones.
pub const PERSISTED_QUERY_ID_REQUIRED: &str = "PERSISTED_QUERY_ID_REQUIRED";
/// Largest manifest file read.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Most documents in a manifest.
const MAX_MANIFEST_ENTRIES: usize = 100_000;
/// Longest document id.
const MAX_ID: usize = 256;
/// What a registered document costs beyond its text (key, map and queue slots).
const APQ_ENTRY_OVERHEAD: usize = 128;

/// Why a persisted-query request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub code: &'static str,
}

impl Refusal {
    fn new(message: impl Into<String>, code: &'static str) -> Self {
        Refusal {
            message: message.into(),
            code,
        }
    }

    /// True for the step of Apollo's protocol that asks the client for the text.
    pub fn is_not_found(&self) -> bool {
        self.code == PERSISTED_QUERY_NOT_FOUND
    }
}

/// The trusted documents of `--persisted-queries`.
pub struct Manifest {
    by_id: HashMap<String, Arc<str>>,
    /// SHA-256 of every document's text, for `--only-persisted` requests that send a text.
    texts: HashSet<[u8; 32]>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Manifest({} documents)", self.by_id.len())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.+/=".contains(&b))
}

impl Manifest {
    /// Reads a manifest file; the error names the file and the entry at fault.
    pub fn load(path: &Path, limits: &Limits) -> anyhow::Result<Manifest> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("--persisted-queries {}", path.display()))?
            .len();
        if size > MAX_MANIFEST_BYTES {
            bail!(
                "--persisted-queries {}: the file has {size} bytes; the limit is {MAX_MANIFEST_BYTES}",
                path.display()
            );
        }
        let text = std::fs::read(path).with_context(|| format!("--persisted-queries {}", path.display()))?;
        Manifest::parse(&text, limits).with_context(|| format!("--persisted-queries {}", path.display()))
    }

    /// Parses Apollo's manifest format or a JSON object of id to document.
    pub fn parse(text: &[u8], limits: &Limits) -> anyhow::Result<Manifest> {
        let json: Value = serde_json::from_slice(text).context("not valid JSON")?;
        let Value::Object(map) = json else {
            bail!("a manifest is a JSON object (Apollo's manifest, or a map of id to document)");
        };
        let mut entries: Vec<(String, String)> = Vec::new();
        if let Some(format) = map.get("format") {
            if format != "apollo-persisted-query-manifest" {
                bail!("unknown manifest format {format}; the one known is \"apollo-persisted-query-manifest\"");
            }
            let Some(Value::Array(ops)) = map.get("operations") else {
                bail!("an Apollo manifest needs an `operations` array");
            };
            for (i, op) in ops.iter().enumerate() {
                let id = op.get("id").and_then(Value::as_str);
                let body = op.get("body").and_then(Value::as_str);
                match (id, body) {
                    (Some(id), Some(body)) => entries.push((id.to_owned(), body.to_owned())),
                    _ => bail!("operations[{i}] needs string `id` and `body`"),
                }
            }
        } else {
            for (id, body) in map {
                match body {
                    Value::String(body) => entries.push((id, body)),
                    _ => bail!("the document of id `{id}` is not a string"),
                }
            }
        }
        if entries.len() > MAX_MANIFEST_ENTRIES {
            bail!(
                "the manifest has {} documents; the limit is {MAX_MANIFEST_ENTRIES}",
                entries.len()
            );
        }
        let mut by_id = HashMap::with_capacity(entries.len());
        let mut texts = HashSet::with_capacity(entries.len());
        for (id, body) in entries {
            if !valid_id(&id) {
                bail!(
                    "document id `{}` is not 1 to {MAX_ID} letters, digits or `-_:.+/=`",
                    id.escape_default()
                );
            }
            guard::check_query(&body, limits).map_err(|e| anyhow::anyhow!("document `{id}`: {e}"))?;
            async_graphql::parser::parse_query(&body).map_err(|e| anyhow::anyhow!("document `{id}`: {e}"))?;
            texts.insert(Sha256::digest(body.as_bytes()).into());
            if by_id.insert(id.clone(), Arc::from(body)).is_some() {
                bail!("document id `{id}` appears twice");
            }
        }
        Ok(Manifest { by_id, texts })
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn get(&self, id: &str) -> Option<Arc<str>> {
        self.by_id
            .get(id)
            .or_else(|| id.strip_prefix("sha256:").and_then(|bare| self.by_id.get(bare)))
            .cloned()
    }
}

/// How a request's document was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The request carried its text and named no document.
    Text,
    /// Taken from the manifest or the automatic store by id.
    ById,
    /// Sent with its hash, checked and registered.
    Registered,
}

/// The persisted documents: the manifest and the automatic store.
pub struct Persisted {
    manifest: Option<Arc<Manifest>>,
    only: bool,
    apq: BoundedMap<[u8; 32], Arc<str>>,
}

impl Persisted {
    pub fn new(manifest: Option<Arc<Manifest>>, only: bool, apq_entries: usize, apq_bytes: usize) -> Self {
        let apq = if only {
            BoundedMap::new(0, 0)
        } else {
            BoundedMap::new(apq_entries, apq_bytes)
        };
        Persisted { manifest, only, apq }
    }

    /// Bytes charged to the documents registered automatically.
    pub fn registered_bytes(&self) -> usize {
        self.apq.bytes()
    }

    /// Puts the document a request names into its `query` (GraphQL-over-HTTP parameters), or
    /// refuses it. `acceptable` says whether a sent text may be registered (it parses and
    /// passes the limits).
    pub fn resolve(
        &self,
        params: &mut serde_json::Map<String, Value>,
        acceptable: impl FnOnce(&str) -> bool,
    ) -> Result<Found, Refusal> {
        let document_id = match params.get("documentId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(Refusal::new("`documentId` must be a string", BAD_USER_INPUT)),
        };
        let hash = match params.get("extensions").and_then(|e| e.get("persistedQuery")) {
            None | Some(Value::Null) => None,
            Some(pq) => Some(apq_hash(pq)?),
        };
        let text = match params.get("query") {
            None | Some(Value::Null) => None,
            Some(Value::String(q)) => Some(q.clone()),
            // request_from_params names this error.
            Some(_) => return Ok(Found::Text),
        };
        let from_manifest = |id: &str| self.manifest.as_ref().and_then(|m| m.get(id));
        if let Some(id) = document_id {
            if text.is_some() || hash.is_some() {
                return Err(Refusal::new(
                    "send either `documentId` or `query` (and `extensions.persistedQuery`), not both",
                    BAD_USER_INPUT,
                ));
            }
            let Some(doc) = from_manifest(&id) else {
                return Err(Refusal::new(
                    format!("no persisted document has id `{}`", shorten(&id)),
                    PERSISTED_QUERY_NOT_IN_LIST,
                ));
            };
            params.insert("query".into(), Value::String(doc.to_string()));
            return Ok(Found::ById);
        }
        match (hash, text) {
            (None, None) => Ok(Found::Text),
            (None, Some(text)) => {
                if self.only && !self.in_manifest(&text) {
                    return Err(Refusal::new(
                        "this server runs only its persisted documents: send a document's id \
                         (`extensions.persistedQuery.sha256Hash` or `documentId`) instead of a query text",
                        PERSISTED_QUERY_ID_REQUIRED,
                    ));
                }
                Ok(Found::Text)
            }
            (Some(hash), None) => {
                let hex_hash = hex::encode(hash);
                let doc = from_manifest(&hex_hash).or_else(|| self.apq.get(&hash));
                match doc {
                    Some(doc) => {
                        params.insert("query".into(), Value::String(doc.to_string()));
                        Ok(Found::ById)
                    }
                    None if self.only => Err(Refusal::new(
                        format!("no persisted document has id `{hex_hash}`"),
                        PERSISTED_QUERY_NOT_IN_LIST,
                    )),
                    None if self.apq.keeps_nothing() => Err(Refusal::new(
                        "PersistedQueryNotSupported",
                        PERSISTED_QUERY_NOT_SUPPORTED,
                    )),
                    None => Err(Refusal::new("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)),
                }
            }
            (Some(hash), Some(text)) => {
                let actual: [u8; 32] = Sha256::digest(text.as_bytes()).into();
                if actual != hash {
                    return Err(Refusal::new(
                        format!(
                            "extensions.persistedQuery.sha256Hash is {} but the SHA-256 of `query` is {}",
                            hex::encode(hash),
                            hex::encode(actual)
                        ),
                        BAD_USER_INPUT,
                    ));
                }
                if self.only {
                    if !self.in_manifest(&text) {
                        return Err(Refusal::new(
                            format!("no persisted document has id `{}`", hex::encode(hash)),
                            PERSISTED_QUERY_NOT_IN_LIST,
                        ));
                    }
                    return Ok(Found::Text);
                }
                if !self.apq.keeps_nothing() && self.apq.get(&hash).is_none() && acceptable(&text) {
                    let charge = text.len() + APQ_ENTRY_OVERHEAD;
                    self.apq.insert(hash, Arc::from(text.as_str()), charge);
                    return Ok(Found::Registered);
                }
                Ok(Found::Text)
            }
        }
    }

    fn in_manifest(&self, text: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        self.manifest.as_ref().is_some_and(|m| m.texts.contains(&digest))
    }
}

/// The hash of `extensions.persistedQuery`, checked.
fn apq_hash(pq: &Value) -> Result<[u8; 32], Refusal> {
    let bad = |m: &str| Refusal::new(m, BAD_USER_INPUT);
    let Value::Object(pq) = pq else {
        return Err(bad("extensions.persistedQuery must be an object"));
    };
    match pq.get("version") {
        Some(v) if v.as_u64() == Some(1) => {}
        Some(_) => {
            return Err(bad(
                "extensions.persistedQuery.version: the only version supported is 1",
            ))
        }
        None => return Err(bad("extensions.persistedQuery.version is missing (it is 1)")),
    }
    let Some(hash) = pq.get("sha256Hash").and_then(Value::as_str) else {
        return Err(bad("extensions.persistedQuery.sha256Hash must be a string"));
    };
    let mut out = [0u8; 32];
    match hex::decode_to_slice(hash, &mut out) {
        Ok(()) => Ok(out),
        Err(_) => Err(bad(
            "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits (a SHA-256)",
        )),
    }
}

/// An id as it may be quoted in an error: at most 80 characters, escaped.
fn shorten(id: &str) -> String {
    let escaped: String = id.escape_default().collect();
    match escaped.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &escaped[..at]),
        None => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const Q: &str = "{ ledger { revision } }";

    fn params(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn reads_apollo_and_map_manifests() {
        let limits = Limits::from(&crate::settings::LimitArgs::default());
        let apollo = json!({"format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{"id": "abc", "name": "Head", "type": "query", "body": Q}]});
        let m = Manifest::parse(apollo.to_string().as_bytes(), &limits).unwrap();
        assert_eq!(m.get("abc").as_deref(), Some(Q));
        let map = json!({ "sha256:def": Q, "0123": "{ datasets { id } }" });
        let m = Manifest::parse(map.to_string().as_bytes(), &limits).unwrap();
        assert_eq!(m.len(), 2);
        for (bad, why) in [
            (json!([]), "JSON object"),
            (json!({"a b": Q}), "is not 1 to"),
            (json!({"x": 1}), "not a string"),
            (json!({"x": "{ ledger"}), "document `x`"),
            (json!({"format": "other"}), "unknown manifest format"),
        ] {
            let e = format!(
                "{:#}",
                Manifest::parse(bad.to_string().as_bytes(), &limits).unwrap_err()
            );
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn automatic_round_trip_and_hash_check() {
        let p = Persisted::new(None, false, 10, 1 << 20);
        let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha(Q)}});
        let e = p
            .resolve(&mut params(json!({"extensions": ext})), |_| true)
            .unwrap_err();
        assert!(e.is_not_found());
        let found = p.resolve(&mut params(json!({"query": Q, "extensions": ext})), |_| true);
        assert_eq!(found, Ok(Found::Registered));
        let mut again = params(json!({"extensions": ext}));
        assert_eq!(p.resolve(&mut again, |_| true), Ok(Found::ById));
        assert_eq!(again["query"], Q);
        let wrong = json!({"persistedQuery": {"version": 1, "sha256Hash": sha("{ x }")}});
        let e = p.resolve(&mut params(json!({"query": Q, "extensions": wrong})), |_| true);
        assert_eq!(e.unwrap_err().code, BAD_USER_INPUT);
        // A text the limits refuse is not kept.
        let other = "{ datasets { id } }";
        let ext2 = json!({"persistedQuery": {"version": 1, "sha256Hash": sha(other)}});
        assert_eq!(
            p.resolve(&mut params(json!({"query": other, "extensions": ext2})), |_| false),
            Ok(Found::Text)
        );
        assert!(p.resolve(&mut params(json!({"extensions": ext2})), |_| true).is_err());
    }

    #[test]
    fn automatic_persisted_queries_can_be_turned_off() {
        let p = Persisted::new(None, false, 0, 1 << 20);
        let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha(Q)}});
        let e = p
            .resolve(&mut params(json!({"extensions": ext})), |_| true)
            .unwrap_err();
        assert_eq!(e.code, PERSISTED_QUERY_NOT_SUPPORTED);
        // The text with its hash still runs; nothing is kept.
        let found = p.resolve(&mut params(json!({"query": Q, "extensions": ext})), |_| true);
        assert_eq!(found, Ok(Found::Text));
    }

    #[test]
    fn the_automatic_store_stays_bounded() {
        let p = Persisted::new(None, false, 3, 1 << 20);
        for i in 0..10 {
            let q = format!("{{ a{i}: ledger {{ revision }} }}");
            let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha(&q)}});
            p.resolve(&mut params(json!({"query": q, "extensions": ext})), |_| true)
                .unwrap();
        }
        assert_eq!(p.apq.len(), 3);
        let small = Persisted::new(None, false, 100, 3 * (30 + APQ_ENTRY_OVERHEAD));
        for i in 0..10 {
            let q = format!("{{ a{i}: ledger {{ revision }} }}");
            let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha(&q)}});
            small
                .resolve(&mut params(json!({"query": q, "extensions": ext})), |_| true)
                .unwrap();
        }
        assert!(small.registered_bytes() <= 3 * (30 + APQ_ENTRY_OVERHEAD));
    }

    #[test]
    fn refuses_malformed_extensions() {
        let p = Persisted::new(None, false, 10, 1 << 20);
        for (ext, why) in [
            (json!({"persistedQuery": 1}), "must be an object"),
            (json!({"persistedQuery": {"sha256Hash": sha(Q)}}), "version is missing"),
            (
                json!({"persistedQuery": {"version": 2, "sha256Hash": sha(Q)}}),
                "only version",
            ),
            (
                json!({"persistedQuery": {"version": 1, "sha256Hash": "zz"}}),
                "64 hexadecimal",
            ),
        ] {
            let e = p
                .resolve(&mut params(json!({"extensions": ext})), |_| true)
                .unwrap_err();
            assert!(e.message.contains(why), "{}", e.message);
        }
    }

    #[test]
    fn only_persisted_runs_manifest_documents_only() {
        let limits = Limits::from(&crate::settings::LimitArgs::default());
        let m = Manifest::parse(json!({ "q1": Q }).to_string().as_bytes(), &limits).unwrap();
        let p = Persisted::new(Some(Arc::new(m)), true, 10, 1 << 20);
        let mut by_id = params(json!({"documentId": "q1"}));
        assert_eq!(p.resolve(&mut by_id, |_| true), Ok(Found::ById));
        assert_eq!(by_id["query"], Q);
        assert_eq!(p.resolve(&mut params(json!({"query": Q})), |_| true), Ok(Found::Text));
        let e = p.resolve(&mut params(json!({"query": "{ datasets { id } }"})), |_| true);
        assert_eq!(e.unwrap_err().code, PERSISTED_QUERY_ID_REQUIRED);
        let e = p.resolve(&mut params(json!({"documentId": "nope"})), |_| true);
        assert_eq!(e.unwrap_err().code, PERSISTED_QUERY_NOT_IN_LIST);
        // No automatic registration under a safelist.
        let other = "{ datasets { id } }";
        let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha(other)}});
        let e = p.resolve(&mut params(json!({"query": other, "extensions": ext})), |_| true);
        assert_eq!(e.unwrap_err().code, PERSISTED_QUERY_NOT_IN_LIST);
        assert_eq!(p.apq.len(), 0);
    }
}
