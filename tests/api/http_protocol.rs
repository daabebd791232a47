//! The GraphQL-over-HTTP rules (content negotiation, status codes, media types, methods),
//! the request limits, health and metrics, and graceful shutdown, over real HTTP.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tradeledger::domain::{ObservationDraft, ReleaseDraft, ReleaseStatus};
use tradeledger::ledger::{Ledger, OpenOptions};
use tradeledger::store::{LogStore, SledStore};

mod health;
mod limits;
mod negotiation;
mod requests;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const LEDGER_QUERY: &str = "{ ledger { revision } }";

/// A mutation that would write revision 4 if it ran.
fn publish_body() -> Value {
    json!({
        "query": PUBLISH,
        "variables": { "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000bb01", "_T._T._T", "2025-S1", "1") },
    })
}

/// POSTs `body` as JSON with the given `Accept` (reqwest sends `*/*` when `None`).
async fn post_accept(app: &TestApp, accept: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .json(body);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.expect("request")
}

/// GETs the endpoint with query-string `params` and the given `Accept` (reqwest sends `*/*`
/// when `None`).
async fn get_accept(app: &TestApp, params: &[(&str, &str)], accept: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(&app.url).query(params);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.expect("request")
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The name of the query root type, as introspection reports it.
async fn query_type_name(app: &TestApp) -> String {
    let v = app.gql("{ __schema { queryType { name } } }", json!({})).await;
    v["data"]["__schema"]["queryType"]["name"]
        .as_str()
        .expect("query type name")
        .to_owned()
}

/// A response read off a raw socket.
#[derive(Debug)]
struct TcpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl TcpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one HTTP/1.1 response (headers, then a `content-length` body or up to EOF).
async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> TcpResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = reader.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap());
    match length {
        Some(len) => {
            while body.len() < len {
                let n = reader.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "connection closed in the body");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            reader.read_to_end(&mut body).await.expect("read body");
        }
    }
    TcpResponse { status, headers, body }
}

/// Sends raw bytes and reads the response: for requests reqwest will not make (no `Accept`).
async fn raw(addr: SocketAddr, request: &[u8]) -> TcpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    read_response(&mut stream).await
}

fn raw_post(addr: SocketAddr, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A `Transfer-Encoding: chunked` request head (no `Content-Length`).
fn chunked_head(addr: SocketAddr, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json\r\n{extra_headers}Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}
