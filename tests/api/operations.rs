//! What an operations team reads: `/metrics` in both of its formats, checked by Prometheus's
//! own parsers (`promtool check metrics`, and the Python client's parsers through
//! `tests/tools/check_metrics.py`), the metrics address and token, and the request log read
//! from the real binary's standard error.
//!
//! `promtool` (Debian's `prometheus`) and the Python `prometheus-client` are installed by
//! `bash .ci/setup`; without them the metrics tests fail, naming the fix.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::proc_support::{release_input, Server, PUBLISH};
use crate::support::ws::{self, Ws};
use crate::support::*;
use tradeledger::auth::Token;

mod docs;
mod healthcheck;
mod metrics;
mod request_log;
mod sse;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_SCRAPE: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Runs `program args` with `input` on stdin; its exit status and output. Panics, naming the
/// setup step, when the program is missing.
fn run_tool(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("cannot run `{program}` ({e}): run `bash .ci/setup` (it installs promtool and prometheus-client)")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .expect("write the exposition");
    let out = child.wait_with_output().expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The Python client's parser for `format` over `text`: the families it read (`name type
/// samples` lines), or a panic with what it said.
fn python_parse(format: &str, text: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/check_metrics.py");
    let (ok, out) = run_tool("python3", &[script.to_str().unwrap(), format], text);
    assert!(
        !out.contains("No module named 'prometheus_client'"),
        "the Python prometheus-client is missing: run `bash .ci/setup`"
    );
    assert!(ok, "prometheus_client's {format} parser: {out}\n---\n{text}");
    out
}

async fn get_metrics(app: &TestApp, accept: Option<&str>, token: Option<&str>) -> (u16, String, String) {
    let mut req = app.client.get(format!("http://{}/metrics", app.addr));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}
