//! `serve --tls-cert FILE --tls-key FILE`: HTTPS on the listener, with the test-only
//! certificates of `tests/data/tls/` (a CA and two server certificates, valid until 2126),
//! checked by a rustls client that trusts only that CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::proc_support::{start_server, Server};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls").join(name)
}

fn pem_cert(name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(data(name)).expect("a fixture certificate")
}

/// Sends `request` over TLS to `addr` as `localhost`, trusting only the test CA; the
/// certificate the server presented and everything it answered before closing.
async fn https(addr: std::net::SocketAddr, request: &str) -> Result<(CertificateDer<'static>, String), String> {
    let mut roots = RootCertStore::empty();
    roots.add(pem_cert("ca.pem")).expect("the test CA");
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0]
        .clone()
        .into_owned();
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Until the server closes (`Connection: close`); a close without close_notify ends it too.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok((presented, String::from_utf8_lossy(&answer).into_owned()))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn post_graphql(query: &str) -> String {
    let body = serde_json::json!({ "query": query }).to_string();
    format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Copies the fixture pair `n` to `cert` and `key`.
fn install_pair(n: u8, cert: &Path, key: &Path) {
    std::fs::copy(data(&format!("server{n}.pem")), cert).unwrap();
    std::fs::copy(data(&format!("server{n}.key")), key).unwrap();
}

/// GraphQL and the tile checkpoint answer over HTTPS with the given certificate; plain HTTP
/// on the same port gets no answer; SIGHUP serves a new pair to new connections, and a bad
/// pair on SIGHUP is logged naming the file while the previous one stays.
#[tokio::test(flavor = "multi_thread")]
async fn serve_speaks_https_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    install_pair(1, &cert, &key);
    let server = Server::start(
        &dir.path().join("data"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    )
    .await;

    let (presented, answer) = https(server.addr, &post_graphql("{ ledger { revision } }"))
        .await
        .unwrap();
    assert_eq!(presented, pem_cert("server1.pem"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"data":{"ledger":{"revision":3}}}"#), "{answer}");
    let (_, answer) = https(server.addr, &get("/tlog/checkpoint")).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let note = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        note.lines().nth(1) == Some("3") && note.contains("\n\n\u{2014} "),
        "{answer}"
    );

    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = server
        .client
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    let hangup = || {
        let status = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    install_pair(2, &cert, &key);
    hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (presented, answer) = https(server.addr, &get("/healthz")).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        if presented == pem_cert("server2.pem") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not load the new pair");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::write(&key, "not a key\n").unwrap();
    hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("were not reloaded") {
        assert!(Instant::now() < deadline, "no error logged: {}", server.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.stderr().contains(key.to_str().unwrap()), "{}", server.stderr());
    let (presented, answer) = https(server.addr, &get("/healthz")).await.unwrap();
    assert_eq!(presented, pem_cert("server2.pem"), "the previous pair stays");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A missing, garbled or mismatched certificate or key stops `serve` at start with an error
/// naming the file; either flag alone is refused.
#[tokio::test(flavor = "multi_thread")]
async fn bad_tls_files_are_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN NOTHING-----\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (cert1, key1, key2) = (data("server1.pem"), data("server1.key"), data("server2.key"));
    let cases: [(&Path, &Path, &Path); 4] = [
        (&missing, &key1, &missing),
        (&cert1, &garbage, &garbage),
        (&garbage, &key1, &garbage),
        (&cert1, &key2, &key2),
    ];
    for (i, (cert, key, named)) in cases.into_iter().enumerate() {
        let failure = start_server(
            &dir.path().join(format!("data{i}")),
            &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("serve started with --tls-cert {cert:?} --tls-key {key:?}"));
        assert!(!failure.status.success());
        assert!(
            failure.stderr.contains(named.to_str().unwrap()),
            "the error does not name {named:?}: {}",
            failure.stderr
        );
    }
    let failure = start_server(&dir.path().join("alone"), &["--tls-cert", cert1.to_str().unwrap()])
        .await
        .err()
        .expect("--tls-cert alone is refused");
    assert!(failure.stderr.contains("--tls-key"), "{}", failure.stderr);
}
