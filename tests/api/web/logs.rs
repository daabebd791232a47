//! Issue 14, item 10: logs through a pipe carry no ANSI colour codes, and `--log-format json`
//! writes one JSON object per line, the one-time notices (generated token and signing key)
//! included.

use std::ffi::OsStr;

use serde_json::{json, Value};

use crate::proc_support::Server;

/// Everything `serve` wrote on stderr, after one request, once it is killed.
async fn stderr_after_kill(server: Server) -> String {
    // A request, so that the log has more than the start-up lines.
    server.query("{ ledger { revision } }", json!({})).await;
    server.kill_and_read_stderr()
}

/// Text logs written to a pipe (not a terminal) have no escape codes.
#[tokio::test(flavor = "multi_thread")]
async fn text_logs_through_a_pipe_have_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--log-format", "text"]).await;
    let log = stderr_after_kill(server).await;
    assert!(log.contains("ledger opened"), "the log has its start-up lines: {log}");
    assert!(!log.contains('\u{1b}'), "ESC in logs written to a pipe:\n{log:?}");
}

/// With `--log-format json` every line of stderr is a JSON object with a level and a message,
/// from the first run's generated write token and signing key to the shutdown.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--log-format", "json"]).await;
    let log = stderr_after_kill(server).await;
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nwhole log:\n{log}"))
        })
        .collect();
    assert!(lines.len() >= 3, "a few lines at least: {log}");
    for line in &lines {
        assert!(line["level"].is_string(), "no level: {line}");
        assert!(line["timestamp"].is_string(), "no timestamp: {line}");
    }
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    assert!(
        messages.iter().any(|m| m.starts_with("Generated a write token")),
        "the generated token's notice is a JSON line too: {messages:?}"
    );
    assert!(messages.contains(&"ledger opened"), "{messages:?}");
}

/// An unknown format is refused by name before anything starts.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_log_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::proc_support::run_cli([
        OsStr::new("verify"),
        OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        OsStr::new("--log-format"),
        OsStr::new("xml"),
    ])
    .await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("--log-format") && out.stderr.contains("json"),
        "{}",
        out.stderr
    );
}
