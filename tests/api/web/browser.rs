//! GraphiQL and the web interface in a real browser:
//! `tests/browser/graphiql.mjs` and `tests/browser/pages.mjs` drive headless Chromium through
//! playwright-core against the server; each checks what its page shows, that nothing is
//! requested from another origin and that nothing is logged as an error on the console.
//! Screenshots go to `target/screenshots/`.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`) and `tests/browser/node_modules`: `bash
//! .ci/setup` installs both. Without them the test fails, unless
//! `TRADELEDGER_SKIP_BROWSER=1` says to skip it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::proc_support::{ChildGuard, Server};

const WRITE_SECRET: &str = "browser-test-secret";
const READ_SECRET: &str = "browser-read-secret";
/// The whole browser run: Chromium's start-up and GraphiQL's 1 MB of script on a loaded
/// debug-build machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The browser and the driver, or why the test cannot run.
fn browser_setup() -> Result<PathBuf, String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("no Chromium at {}", chromium.display()));
    }
    if !root()
        .join("tests/browser/node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("no tests/browser/node_modules/playwright-core".to_owned());
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("no `node` on PATH".to_owned());
    }
    if missing.is_empty() {
        Ok(chromium)
    } else {
        Err(missing.join("; "))
    }
}

/// Runs `tests/browser/<script>` against `server` with the arguments after the base URL;
/// panics with its output and the server's log unless it passes. Returns its stdout.
async fn run_script(script: &str, server: &Server, args: &[&str]) -> Option<String> {
    if std::env::var("TRADELEDGER_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("skipped: TRADELEDGER_SKIP_BROWSER=1");
        return None;
    }
    let chromium = match browser_setup() {
        Ok(c) => c,
        Err(why) => panic!(
            "the browser test cannot run: {why}. Run `bash .ci/setup` (installs chromium and \
             tests/browser/node_modules), or set TRADELEDGER_SKIP_BROWSER=1 to skip it"
        ),
    };
    let shots = root().join("target/screenshots");
    let mut child = Command::new("node")
        .arg(root().join("tests/browser").join(script))
        .arg(format!("http://{}", server.addr))
        .args(args)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node");
    // Read on threads, so that a chatty script never blocks on a full pipe.
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr")));
    let status = ChildGuard::new(child)
        .wait_timeout(BROWSER_TIMEOUT, "the browser test")
        .await;
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success(),
        "the browser test {script} failed ({status}):\n{stdout}\n{stderr}\nscreenshots in {}\nserver stderr:\n{}",
        shots.display(),
        server.stderr()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    Some(stdout)
}

/// GraphiQL renders from the binary alone, shows the schema and a fixture figure, and
/// receives a release over its subscription; no request leaves the server's origin.
#[tokio::test(flavor = "multi_thread")]
async fn graphiql_works_offline_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--write-tokens", &format!("browser:{WRITE_SECRET}")]).await;
    run_script("graphiql.mjs", &server, &[WRITE_SECRET]).await;
}

/// The web interface, every page in Chromium: the fixtures' figures, the chart,
/// the proof verified in the browser, live updates within 2 s, pinned asOf pages, phone
/// width, no other origin and no console error (`tests/browser/pages.mjs`). A second server
/// with `--read-tokens` checks that the pages ask for a token and keep it in sessionStorage.
#[tokio::test(flavor = "multi_thread")]
async fn the_web_interface_works_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--write-tokens", &format!("browser:{WRITE_SECRET}")]).await;
    let protected_dir = tempfile::tempdir().unwrap();
    let protected = Server::start(
        protected_dir.path(),
        &[
            "--write-tokens",
            &format!("browser:{WRITE_SECRET}"),
            "--read-tokens",
            &format!("reader:{READ_SECRET}"),
        ],
    )
    .await;
    let protected_url = format!("http://{}", protected.addr);
    if let Some(stdout) = run_script("pages.mjs", &server, &[WRITE_SECRET, &protected_url, READ_SECRET]).await {
        // The measurements, for the record (`cargo test ... -- --nocapture`).
        for line in stdout
            .lines()
            .filter(|l| l.starts_with("fcp_ms=") || l.starts_with("live:"))
        {
            eprintln!("{line}");
        }
    }
}

/// The dataset and figure pages link their SDMX-CSV, SDMX-ML and SDMX-JSON URLs under
/// `/sdmx/2.1/`, latest and as of the page's point; the CSV and SDMX-ML links answer with the
/// page's figures (`tests/browser/sdmx-links.mjs`).
#[tokio::test(flavor = "multi_thread")]
async fn the_pages_link_their_sdmx_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    run_script("sdmx-links.mjs", &server, &[]).await;
}
