//! Helpers for tests that drive the real `tradeledger` binary as a child process: running a
//! command with a deadline, starting `serve` on port 0, and killing whatever was started when
//! the guard drops, so that a failing test never leaves a server behind.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_tradeledger");
#[allow(unused_imports)]
pub use super::fixtures::{fixtures_dir, DATASET, PUBLISH};

/// How long `serve` may take to print its `listening on` line (open the store, verify the
/// log, load the fixtures, connect to NATS): seconds on an idle machine; the bound only
/// guards against a server that never starts, so it is generous for a loaded one.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a one-shot command (`generate`, `import`, `verify`, `rebuild`) may take: a few
/// seconds for the stores the tests make, idle; the bound only guards against a hang.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one HTTP request of a test to `serve` may take; only guards against a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `serve` may take to exit after SIGTERM when its clients have all finished (its
/// shutdown grace is 10 s by default); only guards against a hang.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// A child process that is killed (SIGKILL) and reaped when dropped, unless it already exited.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// The exit status if the process has exited (it is then reaped and forgotten).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a running child");
        let _ = child.kill();
        child.wait().expect("wait for the killed child")
    }

    /// Waits for the process to exit by itself, killing it and panicking after `timeout`.
    pub async fn wait_timeout(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        match self.wait_within(timeout).await {
            Some(status) => status,
            None => panic!("{what} did not finish within {timeout:?} (it was killed)"),
        }
    }

    /// Waits for the process to exit by itself; after `timeout`, kills it and returns `None`.
    pub async fn wait_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a pipe to its end on a thread, into a shared buffer.
/// Reads `pipe` to its end on a thread, appending each whole line to `into` as it comes
/// (so that a running server's log can be read).
fn drain(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `tradeledger ARGS...` to completion, bounded by [`CLI_TIMEOUT`].
pub async fn run_cli<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let what = format!(
        "tradeledger {}",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let mut child = Command::new(BIN)
        .args(&args)
        .env_remove("TRADELEDGER_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    let t_out = drain(child.stdout.take().expect("stdout"), out.clone());
    let t_err = drain(child.stderr.take().expect("stderr"), err.clone());
    let mut guard = ChildGuard::new(child);
    let status = guard.wait_within(CLI_TIMEOUT).await;
    let _ = t_out.join();
    let _ = t_err.join();
    let stdout = std::mem::take(&mut *out.lock().unwrap());
    let stderr = std::mem::take(&mut *err.lock().unwrap());
    let Some(status) = status else {
        panic!("{what} did not finish within {CLI_TIMEOUT:?} (it was killed); stdout:\n{stdout}\nstderr:\n{stderr}");
    };
    Output { status, stdout, stderr }
}

/// `tradeledger verify --data-dir DIR`.
pub async fn verify(data_dir: &Path) -> Output {
    run_cli([OsStr::new("verify"), OsStr::new("--data-dir"), data_dir.as_os_str()]).await
}

/// `tradeledger rebuild --data-dir DIR`.
pub async fn rebuild(data_dir: &Path) -> Output {
    run_cli([OsStr::new("rebuild"), OsStr::new("--data-dir"), data_dir.as_os_str()]).await
}

/// `tradeledger import --data-dir DIR FILES...`, which must succeed.
pub async fn import(data_dir: &Path, files: &[PathBuf]) -> Output {
    let mut args: Vec<OsString> = vec!["import".into(), "--data-dir".into(), data_dir.into()];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    let out = run_cli(args).await;
    assert_eq!(out.code(), Some(0), "import failed: {out:?}");
    out
}

/// `tradeledger generate` of `releases` SYNTHETIC releases of `per_release` observations,
/// imported into `dir/data`, which is returned.
pub async fn generated_store(dir: &Path, releases: u32, per_release: u32) -> PathBuf {
    let data = dir.join("data");
    generate_into(dir, &data, releases, per_release).await;
    data
}

/// Writes a SYNTHETIC release file of `releases` x `per_release` observations into `dir`
/// and imports it into the data directory `data` (which must be new).
pub async fn generate_into(dir: &Path, data: &Path, releases: u32, per_release: u32) {
    let file = dir.join(format!("generated-{releases}x{per_release}.json"));
    let out = run_cli([
        OsStr::new("generate"),
        OsStr::new("--releases"),
        OsStr::new(&releases.to_string()),
        OsStr::new("--observations-per-release"),
        OsStr::new(&per_release.to_string()),
        file.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "generate: {out:?}");
    import(data, &[file]).await;
}

/// A `tradeledger serve` child process listening on a port of its own.
pub struct Server {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/graphql`
    pub url: String,
    pub client: reqwest::Client,
    /// The secret of the first `--write-tokens` token the server was started with.
    write_secret: Option<String>,
    stderr: Arc<Mutex<String>>,
    /// What the server wrote on stdout so far.
    stdout: Arc<Mutex<String>>,
    /// The thread reading stderr: done once the process has exited and all is read.
    stderr_read: Option<JoinHandle<()>>,
}

/// How a `serve` that never started listening ended.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Starts `tradeledger serve --data-dir DIR --listen 127.0.0.1:0 ARGS...` and waits (bounded)
/// for its `listening on` line. `Err` if the process exited before listening.
pub async fn start_server(data_dir: &Path, args: &[&str]) -> Result<Server, StartFailure> {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--fixtures"])
        .arg(fixtures_dir())
        .args(args)
        .env_remove("TRADELEDGER_DATA_DIR")
        .env_remove("TRADELEDGER_READ_ONLY")
        .env_remove("TRADELEDGER_NO_FIXTURES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning tradeledger serve");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = Arc::new(Mutex::new(String::new()));
    let t_err = drain(child.stderr.take().expect("stderr"), stderr.clone());
    let mut guard = ChildGuard::new(child);

    // Stdout is read line by line on a thread: the listening line goes to the channel, the
    // rest is kept so that the pipe never fills up.
    let stdout_text = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<SocketAddr>();
    let t_out = {
        let stdout_text = stdout_text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Ok(addr) = addr.trim().parse() {
                        let _ = tx.send(addr);
                    }
                }
                let mut s = stdout_text.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(addr) = rx.try_recv() {
            return Ok(Server {
                child: guard,
                addr,
                url: format!("http://{addr}/graphql"),
                client: reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build()
                    .expect("HTTP client"),
                write_secret: write_secret(args),
                stderr,
                stdout: stdout_text,
                stderr_read: Some(t_err),
            });
        }
        if let Some(status) = guard.try_wait() {
            let _ = t_out.join();
            let _ = t_err.join();
            let stdout = std::mem::take(&mut *stdout_text.lock().unwrap());
            let stderr = std::mem::take(&mut *stderr.lock().unwrap());
            return Err(StartFailure { status, stdout, stderr });
        }
        if Instant::now() >= deadline {
            drop(guard);
            panic!(
                "tradeledger serve did not print its listening line within {START_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                stdout_text.lock().unwrap(),
                stderr.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The secret of the first token of `--write-tokens NAME:SECRET[,...]` in `args`.
fn write_secret(args: &[&str]) -> Option<String> {
    let tokens = args.iter().skip_while(|a| **a != "--write-tokens").nth(1)?;
    let first = tokens.split(',').next()?;
    Some(first.split_once(':')?.1.to_owned())
}

impl Server {
    /// Starts the server and panics if it does not come up.
    pub async fn start(data_dir: &Path, args: &[&str]) -> Server {
        match start_server(data_dir, args).await {
            Ok(s) => s,
            Err(f) => panic!("tradeledger serve exited before listening: {f:?}"),
        }
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What the server wrote on stdout so far (its `listening on` line, and before it a
    /// `metrics on` line with `--metrics-listen`).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// POSTs a GraphQL request with an optional bearer token; returns status and JSON body.
    pub async fn post(&self, query: &str, variables: Value, token: Option<&str>) -> Result<(u16, Value), String> {
        post_graphql(&self.client, &self.url, query, variables, token).await
    }

    /// `publishRelease` of `input` with the write token the server was started with
    /// (`--write-tokens NAME:SECRET`), which must succeed with HTTP 200; returns the
    /// `publishRelease` object.
    pub async fn publish(&self, input: Value) -> Value {
        let (status, body) = self.try_publish(&input).await.expect("publish request");
        assert_eq!(status, 200, "{body}");
        super::published(body)
    }

    /// `publishRelease` of `input` with the server's write token, whatever the outcome:
    /// status and body, or why no answer came.
    pub async fn try_publish(&self, input: &Value) -> Result<(u16, Value), String> {
        let token = self
            .write_secret
            .as_deref()
            .expect("the server was started without --write-tokens");
        self.post(PUBLISH, json!({ "input": input }), Some(token)).await
    }

    /// POSTs `body` exactly as given (`content-type: application/json`) with `Accept: accept`.
    pub async fn post_raw(&self, accept: &str, body: impl std::fmt::Display) -> super::RawResponse {
        super::post_raw(&self.client, &self.url, accept, body).await
    }

    /// A `graphql-transport-ws` connection, initialised, with `query` subscribed as `id`.
    pub async fn subscribe(&self, id: &str, query: &str, variables: Value) -> super::ws::Subscriber {
        super::ws::Subscriber::open(&format!("ws://{}/graphql/ws", self.addr), id, query, variables).await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        metrics_text(&self.client, self.addr).await
    }

    /// Requests answered by the fast path so far, from `/metrics`.
    pub async fn fast_path_answers(&self) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix("tradeledger_graphql_fast_path_answers_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no fast path counter in {text}"))
    }

    /// A read query that must succeed with HTTP 200 and no errors; returns `data`.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(query, variables, None).await.expect("query request");
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "query failed: {body}");
        body["data"].clone()
    }

    /// Stops the server with SIGTERM and waits (bounded) for it to exit successfully;
    /// returns what it logged.
    pub async fn stop(mut self) -> String {
        // A request served shows the server is past installing its signal handler.
        self.query("{ ledger { revision } }", json!({})).await;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self
            .child
            .wait_timeout(STOP_TIMEOUT, "serve after SIGTERM (its clients all finished)")
            .await;
        if let Some(reading) = self.stderr_read.take() {
            let _ = reading.join();
        }
        assert!(exit.success(), "{exit:?}: {}", self.stderr());
        self.stderr()
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill()
    }

    /// Kills the server with SIGKILL and returns all it wrote on stderr: the reader is
    /// waited for, and it ends once the pipe closes with the process.
    pub fn kill_and_read_stderr(mut self) -> String {
        self.kill();
        if let Some(reading) = self.stderr_read.take() {
            let _ = reading.join();
        }
        self.stderr()
    }
}

/// POSTs a GraphQL request to `url` (`Accept: application/json`) with an optional bearer
/// token; returns status and JSON body, or why no answer came. For tests that hold no
/// [`Server`] (a client in a task of its own, a server set up by hand).
pub async fn post_graphql(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.json().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Resident and peak memory of a process, in kB, from `/proc/PID/status`.
pub fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The text of `GET /metrics` from the server at `addr`.
pub async fn metrics_text(client: &reqwest::Client, addr: SocketAddr) -> String {
    client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("its text")
}

/// A SYNTHETIC release input with one observation.
pub fn release_input(id: &str, key: &str, period: &str, value: &str) -> Value {
    json!({
        "id": id,
        "dataset": DATASET,
        "status": "PRELIMINARY",
        "title": format!("SYNTHETIC process test release {id}"),
        "publishedAt": "2026-01-15T00:00:00Z",
        "source": "SYNTHETIC: tests through the binary",
        "observations": [{ "key": key, "period": period, "value": value }]
    })
}

/// One event of the audit log, as `events` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub revision: u64,
    pub hash: String,
    pub prev_hash: String,
    pub release: Option<String>,
}

/// Walks the whole audit log page by page.
pub async fn walk_events(server: &Server) -> Vec<LogEntry> {
    const PAGE: &str = "query($after: Int) { events(after: $after, first: 500) {
        pageInfo { hasNextPage } edges { node { revision hash prevHash release { id } } } } }";
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let data = server.query(PAGE, json!({ "after": after })).await;
        let edges = data["events"]["edges"].as_array().expect("edges").clone();
        for e in &edges {
            let n = &e["node"];
            out.push(LogEntry {
                revision: n["revision"].as_u64().expect("revision"),
                hash: n["hash"].as_str().expect("hash").to_owned(),
                prev_hash: n["prevHash"].as_str().expect("prevHash").to_owned(),
                release: n["release"]["id"].as_str().map(str::to_owned),
            });
        }
        if let Some(last) = out.last() {
            after = last.revision;
        }
        if !data["events"]["pageInfo"]["hasNextPage"]
            .as_bool()
            .expect("hasNextPage")
            || edges.is_empty()
        {
            return out;
        }
    }
}

/// Copies a data directory (the `lock` file left out: the server that opens the copy makes
/// its own).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
