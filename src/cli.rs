//! The command line: `serve`, `import`, `export-schema`, `verify`, `rebuild`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::auth::{generated_token, Token, Tokens};
use crate::graphql::Limits;
use crate::import::{import_files, load, Batch};
use crate::ledger::{fold_log_after, Ledger, OpenOptions, Prefold};
use crate::server::{run, ServerConfig};
use crate::store::{ColdScan, LogStore, SledStore, COLD_SCAN_CHUNK};

#[derive(Parser, Debug)]
#[command(
    name = "tradeledger",
    version,
    about = "GraphQL server over an event-sourced ledger of trade-statistics releases"
)]
pub struct Cli {
    /// Directory of the sled store and the generated write token.
    #[arg(long, env = "TRADELEDGER_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Log filter, e.g. `info` or `tradeledger=debug`.
    #[arg(long, env = "TRADELEDGER_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

// `Serve` carries every flag of the server; the enum is built once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve GraphQL over HTTP and WebSocket.
    Serve(ServeArgs),
    /// Record release files (JSON or CSV) in the ledger: every release is checked before any
    /// is recorded, and files are read one item at a time, so they may be large.
    Import {
        /// Files to import, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Actor name recorded with the events.
        #[arg(long, default_value = "import")]
        actor: String,
    },
    /// Print the GraphQL schema (SDL).
    ExportSchema {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check the hash chain and re-fold every event; exits 1 and names the first bad
    /// revision if the log was altered.
    Verify,
    /// Re-fold the log and rewrite the derived indexes (release index, head record).
    Rebuild,
    /// Write a SYNTHETIC release file (dataset and releases) for benchmarks and load tests:
    /// each release publishes one new period and revises the two before it.
    Generate {
        #[arg(long, default_value_t = 2000)]
        releases: usize,
        #[arg(long, default_value_t = 500)]
        observations_per_release: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The JSON file to write.
        out: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TRADELEDGER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Write tokens, comma-separated, each `name:secret` or `secret`. Without any, a token is
    /// generated on first start, kept in the data directory and printed once.
    #[arg(long, env = "TRADELEDGER_WRITE_TOKENS", hide_env_values = true)]
    pub write_tokens: Option<String>,
    /// Read tokens; when set, reads need a read or write token.
    #[arg(long, env = "TRADELEDGER_READ_TOKENS", hide_env_values = true)]
    pub read_tokens: Option<String>,
    /// Release files loaded into an empty store.
    #[arg(long, env = "TRADELEDGER_FIXTURES", default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// Start with an empty store.
    #[arg(long, env = "TRADELEDGER_NO_FIXTURES")]
    pub no_fixtures: bool,
    /// Refuse writes; also lets a damaged log be served up to its last good revision.
    #[arg(long, env = "TRADELEDGER_READ_ONLY")]
    pub read_only: bool,
    #[arg(long, env = "TRADELEDGER_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Most fields one query may select (fragments expanded, `__typename` included).
    #[arg(long, env = "TRADELEDGER_MAX_COMPLEXITY", default_value_t = 1000)]
    pub max_complexity: usize,
    #[arg(long, env = "TRADELEDGER_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    #[arg(long, env = "TRADELEDGER_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    #[arg(long, env = "TRADELEDGER_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: usize,
    /// Largest request body (and WebSocket message), in bytes.
    #[arg(long, env = "TRADELEDGER_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    #[arg(long, env = "TRADELEDGER_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    #[arg(long, env = "TRADELEDGER_MAX_WS_CONNECTIONS", default_value_t = 20_000)]
    pub max_ws_connections: usize,
    #[arg(long, env = "TRADELEDGER_WS_INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_init_timeout_ms: u64,
    #[arg(long, env = "TRADELEDGER_WS_KEEPALIVE_MS", default_value_t = 30_000)]
    pub ws_keepalive_ms: u64,
    /// Turn off schema introspection (for production).
    #[arg(long, env = "TRADELEDGER_NO_INTROSPECTION")]
    pub no_introspection: bool,
    /// Do not serve GraphiQL on `GET /graphql`.
    #[arg(long, env = "TRADELEDGER_NO_GRAPHIQL")]
    pub no_graphiql: bool,
    /// Responses to read-only queries kept per ledger revision (0 turns the cache off).
    #[arg(long, env = "TRADELEDGER_RESPONSE_CACHE_ENTRIES", default_value_t = 1024)]
    pub response_cache_entries: usize,
    /// Origins allowed by CORS (comma-separated); CORS is off without any.
    #[arg(long, env = "TRADELEDGER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Threads that execute GraphQL operations, apart from the threads serving connections
    /// (0: one per core).
    #[arg(long, env = "TRADELEDGER_QUERY_THREADS", default_value_t = 0)]
    pub query_threads: usize,
    /// GraphQL operations executing at once (HTTP and WebSocket queries and mutations).
    #[arg(long, env = "TRADELEDGER_MAX_CONCURRENT_QUERIES", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_queries: u32,
    /// Operations waiting for an execution slot; beyond, 503 with Retry-After.
    #[arg(long, env = "TRADELEDGER_MAX_QUEUED_QUERIES", default_value_t = 256)]
    pub max_queued_queries: usize,
    /// Operations (subscriptions included) open at once on one WebSocket; beyond, an `error`
    /// message with code LIMIT_EXCEEDED for the new one.
    #[arg(long, env = "TRADELEDGER_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 100)]
    pub max_subscriptions_per_connection: usize,
    /// Time a client has to send a request's headers (also the longest a keep-alive
    /// connection may wait for its next request); 0 turns it off.
    #[arg(long, env = "TRADELEDGER_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moves either way for this long is closed (keep it
    /// above the request timeout); 0 turns it off.
    #[arg(long, env = "TRADELEDGER_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Open connections (WebSockets included); beyond, a 503 with Retry-After and the
    /// connection is closed. Keep it below the open-files limit (`ulimit -n`).
    #[arg(long, env = "TRADELEDGER_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// On SIGTERM or Ctrl-C: how long in-flight requests and WebSockets get to finish
    /// before every connection is closed and the process exits.
    #[arg(long, env = "TRADELEDGER_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

/// Creates the data directory, readable by its owner only.
fn prepare_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Holds an exclusive lock on `DIR/lock` for the rest of the process. sled locks its own
/// files, but start-up reads the log through short-lived sled handles ([`ColdScan`]), and
/// between them sled's lock is free: without this one, a second process could take the store
/// in the middle of a long start-up and make it fail.
fn lock_data_dir(dir: &Path) -> Result<()> {
    static HELD: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            // Held until the process ends; each command opens its data directory once.
            let _ = HELD.set(file);
            Ok(())
        }
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "could not acquire lock on {}: another tradeledger process is using {}",
            path.display(),
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Folds the log with bounded memory (through [`ColdScan`]), then opens the store, whose
/// handle has read nothing yet, for everything after.
fn open_store(data_dir: &Path) -> Result<(Arc<SledStore>, Prefold)> {
    prepare_data_dir(data_dir)?;
    lock_data_dir(data_dir)?;
    let path = data_dir.join("log");
    let context = || format!("opening the store at {}", path.display());
    let prefold = Prefold::from_records(Box::new(ColdScan::new(&path, 1, COLD_SCAN_CHUNK))).with_context(context)?;
    Ok((Arc::new(SledStore::open(&path).with_context(context)?), prefold))
}

fn open_ledger(data_dir: &Path, read_only: bool) -> Result<Ledger> {
    let started = Instant::now();
    let (store, prefold) = open_store(data_dir)?;
    let (ledger, verification) = Ledger::open_after(store, OpenOptions { read_only }, Some(prefold))?;
    let p = ledger.read();
    tracing::info!(
        revision = p.head().revision,
        versions = p.version_count(),
        millis = started.elapsed().as_millis() as u64,
        "ledger opened"
    );
    if let Some(d) = &verification.damage {
        tracing::error!(damage = %d, "serving a damaged log read-only");
    }
    drop(p);
    Ok(ledger)
}

/// Runs a parsed command line.
pub async fn run_cli(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.data_dir, args).await,
        Command::Import { files, actor } => {
            let ledger = open_ledger(&cli.data_dir, false)?;
            let started = Instant::now();
            match import_files(&ledger, &files, &actor).await {
                Ok(r) => {
                    let secs = started.elapsed().as_secs_f64();
                    println!(
                        "recorded {} datasets and {} releases ({} observations, {} duplicates) in {secs:.2} s; head revision {}",
                        r.datasets_defined, r.releases_recorded, r.observations, r.duplicates, r.head_revision
                    );
                    Ok(())
                }
                Err(failure) => {
                    for e in &failure.errors {
                        eprintln!("error: {e}");
                    }
                    let r = failure.recorded;
                    if r.datasets_defined + r.releases_recorded == 0 {
                        bail!("{} error(s); nothing was recorded", failure.errors.len())
                    }
                    bail!(
                        "{} error(s); {} datasets and {} releases were recorded before the first; head revision {}",
                        failure.errors.len(),
                        r.datasets_defined,
                        r.releases_recorded,
                        r.head_revision
                    )
                }
            }
        }
        Command::ExportSchema { out } => {
            let sdl = crate::graphql::sdl();
            match out {
                Some(path) => std::fs::write(&path, sdl).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{sdl}"),
            }
            Ok(())
        }
        Command::Verify => {
            let started = Instant::now();
            let (store, prefold) = open_store(&cli.data_dir)?;
            let (projection, v) = fold_log_after(store.as_ref(), Some(prefold))?;
            match v.damage {
                None => {
                    println!(
                        "ok: {} events checked, {} observation versions, head {} ({:.2} s)",
                        v.checked,
                        projection.version_count(),
                        projection.head().hash,
                        started.elapsed().as_secs_f64()
                    );
                    Ok(())
                }
                Some(d) => {
                    println!("DAMAGED: first bad revision {}: {}", d.revision, d.reason);
                    println!("{} events before it check out", v.checked);
                    std::process::exit(1);
                }
            }
        }
        Command::Generate {
            releases,
            observations_per_release,
            seed,
            out,
        } => {
            use std::io::Write;
            let file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            w.write_all(b"[")?;
            serde_json::to_writer(&mut w, &crate::generate::dataset())?;
            for r in crate::generate::Generator::new(releases, observations_per_release, seed) {
                w.write_all(b",\n")?;
                serde_json::to_writer(&mut w, &r)?;
            }
            w.write_all(b"]\n")?;
            w.flush()?;
            println!(
                "wrote {releases} SYNTHETIC releases x {observations_per_release} observations to {}",
                out.display()
            );
            Ok(())
        }
        Command::Rebuild => {
            let started = Instant::now();
            let (store, prefold) = open_store(&cli.data_dir)?;
            let (projection, v) = fold_log_after(store.as_ref(), Some(prefold))?;
            // A damaged chain stays damaged: rebuilding indexes over it would hide the damage.
            if let Some(d) = v.damage.as_ref().filter(|_| !v.derived_only) {
                println!("DAMAGED: first bad revision {}: {}", d.revision, d.reason);
                std::process::exit(1);
            }
            let head = crate::store::Head {
                revision: projection.head().revision,
                hash: projection.head().hash,
            };
            let releases: Vec<_> = projection.releases().iter().map(|r| (r.id, r.revision)).collect();
            store.rebuild_indexes(head, &releases)?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "rebuilt: {} events, {} releases, {} observation versions in {secs:.2} s ({:.0} versions/s)",
                head.revision,
                releases.len(),
                projection.version_count(),
                projection.version_count() as f64 / secs.max(1e-9)
            );
            Ok(())
        }
    }
}

async fn serve(data_dir: &Path, args: ServeArgs) -> Result<()> {
    let ledger = open_ledger(data_dir, args.read_only)?;
    let mut tokens = Tokens {
        write: Token::parse_list(args.write_tokens.as_deref().unwrap_or("")).context("--write-tokens")?,
        read: Token::parse_list(args.read_tokens.as_deref().unwrap_or("")).context("--read-tokens")?,
    };
    if tokens.write.is_empty() {
        let (token, created) = generated_token(data_dir).context("the generated write token")?;
        if let Some(text) = created {
            // Printed once, on stderr, and never logged.
            eprintln!(
                "Generated a write token (kept in {}): {text}\nUse it as `Authorization: Bearer {}`",
                data_dir.join(crate::auth::TOKEN_FILE).display(),
                text.split_once(':').map_or(text.as_str(), |(_, s)| s)
            );
        }
        tokens.write.push(token);
    }
    if !args.no_fixtures && ledger.read().head().revision == 0 && ledger.is_read_only().is_none() {
        if args.fixtures.is_dir() {
            let batch = Batch::read_dir(&args.fixtures)?;
            match load(&ledger, batch, "fixtures").await {
                Ok(r) => tracing::info!(
                    releases = r.releases_recorded,
                    observations = r.observations,
                    revision = r.head_revision,
                    "loaded fixtures from {}",
                    args.fixtures.display()
                ),
                Err(errors) => bail!("loading fixtures: {}", errors.join("; ")),
            }
        } else {
            tracing::warn!(
                "fixtures directory {} not found; starting empty",
                args.fixtures.display()
            );
        }
    }
    let config = ServerConfig {
        limits: Limits {
            max_depth: args.max_depth,
            max_complexity: args.max_complexity,
            max_aliases: args.max_aliases,
            max_page_size: args.max_page_size,
            introspection: !args.no_introspection,
            ..Limits::default()
        },
        max_body_bytes: args.max_body_bytes,
        max_batch: args.max_batch,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_ws_connections: args.max_ws_connections,
        ws_init_timeout: Duration::from_millis(args.ws_init_timeout_ms),
        ws_keepalive: Duration::from_millis(args.ws_keepalive_ms),
        tokens,
        cors_origins: args.cors_origins,
        graphiql: !args.no_graphiql,
        response_cache_entries: args.response_cache_entries,
        query_threads: args.query_threads,
        max_concurrent_queries: args.max_concurrent_queries as usize,
        max_queued_queries: args.max_queued_queries,
        max_subscriptions_per_connection: args.max_subscriptions_per_connection,
        connections: crate::conn::ConnLimits {
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            max_connections: connection_cap(args.max_connections as usize),
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        },
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}/graphql");
    // Machine-readable line for scripts and tests that start the binary on port 0.
    println!("listening on {addr}");
    run(listener, ledger, config, shutdown_signal()).await?;
    Ok(())
}

/// Descriptors kept free for the store, the token file and the process's own needs.
const RESERVED_FILES: u64 = 64;

/// The soft limit on open files (Linux, from /proc); `None` when unknown or unlimited.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `--max-connections`, lowered (with a warning) to what the open-files limit allows: beyond
/// it, `accept` would fail with EMFILE and clients would wait in the backlog instead of
/// getting a 503.
fn connection_cap(wanted: usize) -> usize {
    match open_files_limit() {
        Some(limit) if wanted as u64 + RESERVED_FILES > limit => {
            let cap = limit.saturating_sub(RESERVED_FILES).max(1) as usize;
            tracing::warn!(
                wanted,
                open_files_limit = limit,
                cap,
                "--max-connections is above what the open-files limit (ulimit -n) allows; using {cap}"
            );
            cap
        }
        _ => wanted,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
