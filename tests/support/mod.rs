//! Shared helpers for integration tests: a real server on port 0 over a temp sled store.
#![allow(dead_code)]

pub mod common;
pub mod fixtures;
pub mod nats;
pub mod proc_support;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tradeledger::app::App;
use tradeledger::auth::{Token, Tokens};
use tradeledger::http::ServerConfig;
use tradeledger::import::{load, Batch};
use tradeledger::ledger::{Ledger, OpenOptions};
use tradeledger::store::SledStore;

pub const WRITE_SECRET: &str = "test-write-secret";
pub const READ_SECRET: &str = "test-read-secret";
pub const ADMIN_SECRET: &str = "test-admin-secret";
#[allow(unused_imports)]
pub use fixtures::{fixtures_dir, DATASET, PRELIMINARY_ID, PUBLISH, REVISION_ID};

/// A running server and what tests need to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/graphql`
    pub url: String,
    /// `ws://127.0.0.1:PORT/graphql/ws`
    pub ws_url: String,
    pub ledger: Ledger,
    pub client: reqwest::Client,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    pub handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// A server with the fixtures loaded and the default configuration (plus a write token).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, true).await
}

/// A server with a configuration adjusted by `configure`, with or without the fixtures.
pub async fn spawn_app_with(configure: impl FnOnce(&mut ServerConfig), fixtures: bool) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), configure, fixtures).await
}

/// A server over the store already in `dir` (its `log`), with the default configuration.
pub async fn spawn_app_on(dir: TempDir) -> TestApp {
    spawn_app_in(dir, |_| {}, false).await
}

async fn spawn_app_in(dir: TempDir, configure: impl FnOnce(&mut ServerConfig), fixtures: bool) -> TestApp {
    let store = Arc::new(SledStore::open(&dir.path().join("log")).expect("open store"));
    let (ledger, _) = Ledger::open(store, OpenOptions::default()).expect("open ledger");
    if fixtures {
        let batch = Batch::read_dir(&fixtures_dir()).expect("read fixtures");
        load(&ledger, batch, "fixtures").await.expect("load fixtures");
    }
    let mut config = ServerConfig {
        tokens: Tokens {
            write: vec![Token::parse(&format!("tester:{WRITE_SECRET}")).unwrap()],
            read: vec![],
            admin: vec![Token::parse(&format!("operator:{ADMIN_SECRET}")).unwrap()],
        },
        // Tests open hundreds of connections from 127.0.0.1; the per-address cap has tests
        // of its own over the binary.
        max_connections_per_peer: 1 << 20,
        ..ServerConfig::default()
    };
    configure(&mut config);
    // The HTTP half of `serve`'s composition root. The store is opened here rather than by
    // `App::build` because tests install their own checkpoint signer.
    let app = App::with_ledger(ledger.clone(), config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("bind");
    let addr = app.local_addr().expect("bound");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        url: format!("http://{addr}/graphql"),
        ws_url: format!("ws://{addr}/graphql/ws"),
        ledger,
        client: reqwest::Client::new(),
        dir,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// POSTs a query without a token; returns the JSON body (any status).
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.post(query, variables, None).await.1
    }

    /// POSTs a query with the write token.
    pub async fn gql_write(&self, query: &str, variables: Value) -> Value {
        self.post(query, variables, Some(WRITE_SECRET)).await.1
    }

    /// POSTs a query with an optional bearer token; returns status and JSON body.
    pub async fn post(&self, query: &str, variables: Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.json().await.expect("JSON body");
        (status, body)
    }

    /// A query that must succeed (any status, no errors); returns its `data`.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        data_of(self.gql(query, variables).await)
    }

    /// `publishRelease` of `input` with the write token, which must succeed; returns the
    /// `publishRelease` object (`revision hash duplicate release { id status }`).
    pub async fn publish(&self, input: Value) -> Value {
        published(self.gql_write(PUBLISH, json!({ "input": input })).await)
    }

    /// POSTs `body` exactly as given (`content-type: application/json`) with `Accept: accept`.
    pub async fn post_raw(&self, accept: &str, body: impl std::fmt::Display) -> RawResponse {
        post_raw(&self.client, &self.url, accept, body).await
    }

    /// A `graphql-transport-ws` connection, initialised, with `query` subscribed as `id`.
    pub async fn subscribe(&self, id: &str, query: &str, variables: Value) -> ws::Subscriber {
        ws::Subscriber::open(&self.ws_url, id, query, variables).await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        proc_support::metrics_text(&self.client, self.addr).await
    }

    /// The ledger head (revision, hash) as the server reports it.
    pub async fn head(&self) -> (u64, String) {
        let v = self.gql("{ ledger { revision hash } }", json!({})).await;
        (
            v["data"]["ledger"]["revision"].as_u64().expect("revision"),
            v["data"]["ledger"]["hash"].as_str().expect("hash").to_owned(),
        )
    }

    /// Asks the server to shut down gracefully and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            // Only guards against a shutdown that never ends (the grace is 10 s by default).
            const STOP: std::time::Duration = std::time::Duration::from_secs(120);
            tokio::time::timeout(STOP, h)
                .await
                .unwrap_or_else(|_| panic!("the server did not shut down within {STOP:?} of being asked to"))
                .expect("server task")
                .expect("server result");
        }
    }
}

/// A release input for `publishRelease` with one observation.
pub fn release_input(id: &str, key: &str, period: &str, value: &str) -> Value {
    json!({
        "id": id,
        "dataset": DATASET,
        "status": "REVISED",
        "title": format!("SYNTHETIC test release {id}"),
        "publishedAt": "2026-01-15T00:00:00Z",
        "source": "tests",
        "observations": [{ "key": key, "period": period, "value": value }]
    })
}

/// `errors[0].extensions.code` of a response, or "" when there is none.
pub fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// The `data` of a response, which must carry no errors (panics with the whole response).
pub fn data_of(v: Value) -> Value {
    assert!(v.get("errors").is_none(), "unexpected errors: {v:#}");
    v["data"].clone()
}

/// The `publishRelease` object of a publish response, which must carry no errors.
fn published(v: Value) -> Value {
    let object = data_of(v.clone())["publishRelease"].clone();
    assert!(object.is_object(), "no publishRelease in {v}");
    object
}

/// What a raw POST got back: its status and the body's exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

impl RawResponse {
    /// The status and the body's exact text.
    pub fn parts(self) -> (u16, String) {
        (self.status, self.body)
    }

    /// The status and the body parsed as JSON (panics when the body is not JSON).
    pub fn json(&self) -> (u16, Value) {
        let v = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("a JSON body was expected ({e}), got {}: {:?}", self.status, self.body));
        (self.status, v)
    }
}

/// POSTs `body` as it is to `url` (`content-type: application/json`, `Accept: accept`).
pub async fn post_raw(client: &reqwest::Client, url: &str, accept: &str, body: impl std::fmt::Display) -> RawResponse {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} got no answer (did the server die?): {}", e.without_url()));
    let status = resp.status().as_u16();
    RawResponse {
        status,
        body: resp.text().await.expect("the body"),
    }
}
