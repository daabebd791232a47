//! A nats-server for the unit tests: one per test process, with JetStream in a temporary
//! directory, on a free port of 127.0.0.1; it stops when the test process ends.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The nats-server binary: `$TRADELEDGER_NATS_SERVER`, or `nats-server` on the PATH.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("TRADELEDGER_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => path,
        other => panic!(
            "nats-server ({}) is needed by the JetStream tests and does not run ({other:?}): \
             run .ci/setup (it installs nats-server 2.15.1), or set TRADELEDGER_NATS_SERVER",
            path.display()
        ),
    }
}

struct Server {
    url: String,
    /// Holds the server's storage and the stores' copies of their streams.
    dir: PathBuf,
    // Kept open for the life of the process: the wrapper shell stops the server when its
    // standard input closes, that is when this process ends however it ends.
    _stdin: std::process::ChildStdin,
    _child: Child,
    _dir: tempfile::TempDir,
}

fn server() -> std::sync::MutexGuard<'static, Server> {
    static SERVER: OnceLock<std::sync::Mutex<Server>> = OnceLock::new();
    let server = SERVER.get_or_init(|| std::sync::Mutex::new(start()));
    server.lock().unwrap_or_else(|e| e.into_inner())
}

/// The URL of the shared test server, started on first use.
pub fn url() -> String {
    server().url.clone()
}

/// A fresh directory for a store's copy of its stream, removed with the server's.
pub fn copy_dir() -> PathBuf {
    server()
        .dir
        .join("copies")
        .join(uuid::Uuid::new_v4().simple().to_string())
}

fn start() -> Server {
    let binary = binary();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" & pid=$!; cat >/dev/null; kill $pid; wait $pid"#)
        .arg(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.flush().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nats-server did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        url: format!("nats://127.0.0.1:{port}"),
        dir: dir.path().to_owned(),
        _stdin: stdin,
        _child: child,
        _dir: dir,
    }
}

/// A store over the stream `config` names (created if missing), keeping its copy at
/// `copy` (`None`: in memory), once the copy holds the whole stream.
pub async fn open(
    config: &super::JetStreamConfig,
    copy: Option<&std::path::Path>,
) -> Result<super::JetStreamStore, super::StoreError> {
    let connection = super::JetStreamStore::connect(config, copy).await?;
    let last = connection.last;
    let (store, _) = connection.follow(false).await?;
    store.wait_for_progress(last).await?;
    Ok(store)
}

/// A fresh stream on the shared server.
pub async fn store() -> super::JetStreamStore {
    let name = format!("T{}", uuid::Uuid::new_v4().simple());
    open(&super::JetStreamConfig::new(&url(), &name), None).await.unwrap()
}

/// A store over stream `name` keeping its copy at `copy`.
pub async fn store_over(name: &str, copy: &std::path::Path) -> super::JetStreamStore {
    open(&super::JetStreamConfig::new(&url(), name), Some(copy))
        .await
        .unwrap()
}

/// A fresh stream on the shared server, copied on disk.
pub async fn store_with_copy() -> super::JetStreamStore {
    store_over(&format!("T{}", uuid::Uuid::new_v4().simple()), &copy_dir()).await
}
