//! `tradeledger healthcheck`, the image's HEALTHCHECK, run as Docker runs it: the binary, with
//! the container's environment, against a real server. Docker reads status 0 as healthy and 1
//! as unhealthy, and reserves 2.

use std::net::TcpListener;
use std::process::Command;

use crate::proc_support::BIN;

use super::*;

/// Runs `tradeledger healthcheck ARGS` with only the `TRADELEDGER_` variables in `env`: its
/// exit status, standard output and standard error.
fn healthcheck(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    command.arg("healthcheck").args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRADELEDGER_") {
            command.env_remove(key);
        }
    }
    let out = command
        .envs(env.iter().copied())
        .output()
        .expect("tradeledger healthcheck runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The image's own check: `TRADELEDGER_LISTEN=0.0.0.0:PORT` is asked on loopback, and a 200
/// from `/healthz` or `/readyz` is status 0 with the answer on standard output.
#[tokio::test]
async fn a_serving_node_is_healthy_and_ready_on_the_address_it_listens_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let port = server.addr.port().to_string();
    let listen = format!("0.0.0.0:{port}");
    let (status, out, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &[]);
    assert_eq!(status, Some(0), "{out}{err}");
    let body: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(body["status"], json!("ok"), "{body}");
    assert!(body["revision"].as_u64().unwrap() > 0, "{body}");
    let listen = format!("127.0.0.1:{port}");
    let (status, out, err) = healthcheck(&[], &["--listen", &listen, "--probe", "readyz"]);
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(out.contains(r#""ready":true"#), "{out}");
}

/// The Dockerfile's HEALTHCHECK is this command, in exec form (no shell in the way), under
/// the image's `TRADELEDGER_LISTEN` of `0.0.0.0`; the runtime stage installs no curl.
#[tokio::test]
async fn the_images_health_check_is_this_command() {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let (_, runtime) = dockerfile.split_once("FROM debian:").expect("a runtime stage");
    assert!(!runtime.contains("curl"), "{runtime}");
    assert!(runtime.contains("TRADELEDGER_LISTEN=0.0.0.0:8000"), "{runtime}");
    let (_, check) = runtime.split_once("HEALTHCHECK").expect("a HEALTHCHECK");
    let cmd = check
        .lines()
        .find_map(|l| l.trim().strip_prefix("CMD "))
        .expect("its CMD");
    let argv: Vec<String> = serde_json::from_str(cmd).unwrap_or_else(|e| panic!("not exec form ({e}): {cmd}"));
    // A HEALTHCHECK's CMD runs as it is, without the ENTRYPOINT.
    assert_eq!(
        argv.get(..2),
        Some(&["tradeledger".to_owned(), "healthcheck".to_owned()][..]),
        "{argv:?}"
    );
    let args: Vec<&str> = argv[2..].iter().map(String::as_str).collect();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let listen = format!("0.0.0.0:{}", server.addr.port());
    let (status, out, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &args);
    assert_eq!(status, Some(0), "{args:?}: {out}{err}");
    drop(server);
    let (status, _, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &args);
    assert_eq!(status, Some(1), "{args:?} after the server stopped: {err}");
}

/// A read-only node is alive but not ready: `/readyz` answers 503, and the check exits 1
/// with the status and the node's reason.
#[tokio::test]
async fn a_read_only_node_is_alive_but_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    Server::start(dir.path(), &[]).await.stop().await;
    let server = Server::start(dir.path(), &["--read-only"]).await;
    let listen = server.addr.to_string();
    let (status, out, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &[]);
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(out.contains(r#""readOnly":true"#), "{out}");
    let (status, out, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &["--probe", "readyz"]);
    assert_eq!(status, Some(1), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    let url = format!("GET http://{listen}/readyz");
    assert!(err.contains(&url) && err.contains("503"), "{err}");
    assert!(err.contains("read-only"), "{err}");
}

/// Nothing listening, or a server that never answers, is unhealthy (status 1), and the
/// error names the URL and the cause; with TLS on the port, the check refuses to guess.
#[tokio::test]
async fn no_answer_is_unhealthy_and_says_why() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (status, _, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &[]);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains(&format!("GET http://{listen}/healthz")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");

    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = silent.local_addr().unwrap().to_string();
    let (status, _, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &["--timeout", "1"]);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    drop(silent);

    let env = [
        ("TRADELEDGER_LISTEN", "0.0.0.0:8000"),
        ("TRADELEDGER_TLS_CERT", "/etc/tls/cert.pem"),
    ];
    let (status, _, err) = healthcheck(&env, &[]);
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("TRADELEDGER_TLS_CERT") && err.contains("plain HTTP"),
        "{err}"
    );

    // A bad flag is a usage error (clap's status 2), not a verdict on the server.
    let (status, _, err) = healthcheck(&[], &["--timeout", "0"]);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("--timeout"), "{err}");
}

/// Whatever answers on the port, the check reads at most 4 KiB of its body.
#[tokio::test]
async fn the_check_reads_a_bounded_body() {
    use std::io::{Read as _, Write as _};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = listener.local_addr().unwrap().to_string();
    let answer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let body = "x".repeat(1 << 20);
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body.as_bytes());
    });
    let (status, out, err) = healthcheck(&[("TRADELEDGER_LISTEN", &listen)], &[]);
    answer.join().unwrap();
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(out.trim_end().len(), 4096, "{err}");
}
