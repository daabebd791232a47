//! The command line: `serve`, `import`, `export-schema`, `verify`, `rebuild`, `witness`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::auth::{generated_token, Token, Tokens};
use crate::graphql::Limits;
use crate::http::{run, ServerConfig};
use crate::import::{import_files, load, Batch};
use crate::ledger::{fold_log_after, Ledger, OpenOptions, Prefold};
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
    /// Log bytes read through one store handle while folding the log at start-up, before the
    /// store is opened afresh: bounds the memory of the start-up scan (sled keeps every page
    /// a handle reads until it is closed). Smaller means less memory and more reopens.
    #[arg(
        long,
        env = "TRADELEDGER_COLD_SCAN_CHUNK",
        default_value_t = COLD_SCAN_CHUNK as u64,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub cold_scan_chunk: u64,
    #[command(subcommand)]
    pub command: Command,
}

// `Serve` carries every flag of the server; the enum is built once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve GraphQL over HTTP and WebSocket.
    Serve(Box<ServeArgs>),
    /// Record release files (JSON or CSV) in the ledger: every release is checked before any
    /// is recorded, and files are read one item at a time, so they may be large.
    Import {
        /// Files to import, in order.
        #[arg(required_unless_present = "event_log", conflicts_with = "event_log")]
        files: Vec<PathBuf>,
        /// Restore a log written by `tradeledger export` into an empty store instead: every
        /// line is checked before anything is written, then the restored head hash and Merkle
        /// root are compared with the file's.
        #[arg(long, value_name = "FILE")]
        event_log: Option<PathBuf>,
        /// With --event-log: a checkpoint note of the source (`GET /checkpoint`) whose size
        /// and root the restored log must have.
        #[arg(long, value_name = "FILE", requires = "event_log")]
        checkpoint: Option<PathBuf>,
        /// Actor name recorded with the events.
        #[arg(long, default_value = "import")]
        actor: String,
    },
    /// Write the log as JSON Lines, one event per line with its revision, hash and canonical
    /// text (the chain is checked on the way); `import --event-log` restores it.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
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
    /// Re-fold the log and rewrite the derived indexes (release index, head record,
    /// transparency log leaves).
    Rebuild,
    /// Check a server's transparency log from outside, as an auditor does from cron: fetch its
    /// signed checkpoint, verify the signature, check with a consistency proof that it extends
    /// the checkpoint saved in the state file, then save it. Exits 0 when everything verifies,
    /// 1 with the reason otherwise.
    Witness {
        /// The server's base URL, e.g. `http://ledger.example:8000` (http only).
        #[arg(long, env = "TRADELEDGER_WITNESS_URL")]
        url: String,
        /// The log's note verifier key (`verifierKey` in the API).
        #[arg(long, env = "TRADELEDGER_WITNESS_VKEY")]
        vkey: String,
        /// File holding the last checkpoint this witness accepted; created on the first run.
        #[arg(long, env = "TRADELEDGER_WITNESS_STATE")]
        state: PathBuf,
        /// Bearer token, for a server whose reads need one.
        #[arg(long, env = "TRADELEDGER_WITNESS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
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
    /// Most objects one query may return in the worst case, computed before it runs: list
    /// sizes (`first`, the page-size cap, the ledger's largest lists) multiplied down the tree.
    #[arg(long, env = "TRADELEDGER_MAX_COST", default_value_t = crate::graphql::DEFAULT_MAX_COST)]
    pub max_cost: u64,
    /// Largest response body (and WebSocket `next` payload), in bytes; checked while it is
    /// written.
    #[arg(long, env = "TRADELEDGER_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Longest GraphQL query text, in bytes; checked before parsing (the standard
    /// introspection query is about 1.3 KB).
    #[arg(long, env = "TRADELEDGER_MAX_QUERY_BYTES", default_value_t = 64 * 1024)]
    pub max_query_bytes: usize,
    /// Most lexical tokens (names, punctuators, values) in a query text; checked before
    /// parsing.
    #[arg(long, env = "TRADELEDGER_MAX_QUERY_TOKENS", default_value_t = 15_000)]
    pub max_query_tokens: usize,
    /// Deepest nesting of brackets `{ [ (` (selection sets, list and object literals,
    /// arguments) in a query text; checked before parsing, so that the parser cannot run out
    /// of stack. Keep it above --max-depth.
    #[arg(long, env = "TRADELEDGER_MAX_QUERY_NESTING", default_value_t = 64)]
    pub max_query_nesting: usize,
    /// Deepest nesting of arrays and objects in `variables` and `extensions` (the object
    /// itself is level 1).
    #[arg(long, env = "TRADELEDGER_MAX_VARIABLES_DEPTH", default_value_t = 32)]
    pub max_variables_depth: usize,
    /// Most JSON values in `variables` (and in `extensions`); larger releases go through
    /// `tradeledger import`.
    #[arg(long, env = "TRADELEDGER_MAX_VARIABLES_NODES", default_value_t = 100_000)]
    pub max_variables_nodes: usize,
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
    /// Bytes the response cache may hold, keys and overhead included (0 turns it off).
    #[arg(long, env = "TRADELEDGER_RESPONSE_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub response_cache_bytes: usize,
    /// Origins allowed by CORS (comma-separated); CORS is off without any.
    #[arg(long, env = "TRADELEDGER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Origin (name) of the transparency log, the first line of its checkpoints: 1 to 256
    /// bytes, no spaces or `+`. Default: the name in the signing key, or for a key generated
    /// on first start `tradeledger.local/<8 random hex digits>`.
    #[arg(long, env = "TRADELEDGER_LOG_ORIGIN")]
    pub log_origin: Option<String>,
    /// File holding the Ed25519 key checkpoints are signed with, as
    /// `PRIVATE+KEY+<origin>+<hash>+<key>`. Without it, one is generated on first start in
    /// DATA_DIR/signing-key (owner-only) and its verifier key printed once.
    #[arg(long, env = "TRADELEDGER_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
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
/// handle has read nothing yet, for everything after. Each handle is closed before the next
/// is opened; sled lets go of its file lock a moment after, which [`SledStore::open`] waits
/// for (safe because this process holds `DATA_DIR/lock`). A new store has nothing to scan.
fn open_store(data_dir: &Path, chunk: u64) -> Result<(Arc<SledStore>, Prefold)> {
    prepare_data_dir(data_dir)?;
    lock_data_dir(data_dir)?;
    let path = data_dir.join("log");
    let context = || format!("opening the store at {}", path.display());
    let records: crate::store::RecordIter<'_> = if path.exists() {
        let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
        Box::new(ColdScan::new(&path, 1, chunk))
    } else {
        Box::new(std::iter::empty())
    };
    let prefold = Prefold::from_records(records).with_context(context)?;
    Ok((Arc::new(SledStore::open(&path).with_context(context)?), prefold))
}

fn open_ledger(data_dir: &Path, chunk: u64, read_only: bool) -> Result<Ledger> {
    let started = Instant::now();
    let (store, prefold) = open_store(data_dir, chunk)?;
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

/// Refuses a data directory without a store: `verify`, `rebuild` and `export` only read an
/// existing one, so a mistyped `--data-dir` must not create a directory and report an
/// empty, intact log.
fn require_store(data_dir: &Path) -> Result<()> {
    let log = data_dir.join("log");
    if !log.is_dir() {
        bail!(
            "no store in {}: {} does not exist (check --data-dir; only `serve` and `import` create a data directory)",
            data_dir.display(),
            log.display()
        );
    }
    Ok(())
}

/// Runs a parsed command line.
pub async fn run_cli(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.data_dir, cli.cold_scan_chunk, *args).await,
        Command::Import {
            event_log: Some(path),
            checkpoint,
            ..
        } => {
            let (store, _) = open_store(&cli.data_dir, cli.cold_scan_chunk)?;
            let note = match &checkpoint {
                Some(c) => Some(std::fs::read_to_string(c).with_context(|| format!("reading {}", c.display()))?),
                None => None,
            };
            let open = || -> std::io::Result<Box<dyn std::io::BufRead>> {
                Ok(Box::new(std::io::BufReader::new(std::fs::File::open(&path)?)))
            };
            match crate::export::restore(store.as_ref(), open, note.as_deref()) {
                Ok(s) => {
                    store.flush_blocking()?;
                    println!(
                        "restored {} events; head {}, tree root {}",
                        s.events,
                        s.head,
                        hex::encode(s.root)
                    );
                    Ok(())
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Command::Export { out } => {
            require_store(&cli.data_dir)?;
            let (store, prefold) = open_store(&cli.data_dir, cli.cold_scan_chunk)?;
            let (projection, v) = fold_log_after(store.as_ref(), Some(prefold))?;
            if let Some(d) = v.damage.filter(|_| !v.derived_only) {
                eprintln!("DAMAGED: first bad revision {}: {}", d.revision, d.reason);
                std::process::exit(1);
            }
            let head = projection.head().revision;
            drop(projection);
            let summary = match &out {
                Some(path) => {
                    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                    crate::export::export(store.as_ref(), head, &mut std::io::BufWriter::new(file))?
                }
                None => crate::export::export(store.as_ref(), head, &mut std::io::BufWriter::new(std::io::stdout()))?,
            };
            eprintln!(
                "exported {} events; head {}, tree root {}",
                summary.events,
                summary.head,
                hex::encode(summary.root)
            );
            Ok(())
        }
        Command::Import { files, actor, .. } => {
            if !crate::domain::text::has_visible(&actor) || actor.chars().any(crate::domain::text::is_hidden) {
                bail!("--actor must show at least one visible character, without control or text-direction characters");
            }
            let ledger = open_ledger(&cli.data_dir, cli.cold_scan_chunk, false)?;
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
            require_store(&cli.data_dir)?;
            let started = Instant::now();
            let (store, prefold) = open_store(&cli.data_dir, cli.cold_scan_chunk)?;
            let (projection, v) = fold_log_after(store.as_ref(), Some(prefold))?;
            let tree = crate::tlog::check_tree(store.as_ref(), v.checked)?;
            match v.damage.or(tree.damage) {
                None => {
                    println!(
                        "ok: {} events checked, {} observation versions, head {}, tree root {} ({:.2} s)",
                        v.checked,
                        projection.version_count(),
                        projection.head().hash,
                        hex::encode(tree.root),
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
        Command::Witness {
            url,
            vkey,
            state,
            token,
        } => match crate::tlog::witness::run(&url, &vkey, &state, token.as_deref()).await {
            Ok(outcome) => {
                println!("{outcome}");
                Ok(())
            }
            Err(refusal) => {
                eprintln!("witness: {refusal}");
                std::process::exit(1);
            }
        },
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
            require_store(&cli.data_dir)?;
            let started = Instant::now();
            let (store, prefold) = open_store(&cli.data_dir, cli.cold_scan_chunk)?;
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

async fn serve(data_dir: &Path, cold_scan_chunk: u64, args: ServeArgs) -> Result<()> {
    if args.max_query_nesting < args.max_depth {
        bail!(
            "--max-query-nesting ({}) must be at least --max-depth ({}): each level of a query is a `{{`",
            args.max_query_nesting,
            args.max_depth
        );
    }
    let ledger = open_ledger(data_dir, cold_scan_chunk, args.read_only)?;
    let keys = crate::tlog::KeyConfig {
        key_file: args.signing_key.as_deref(),
        origin: args.log_origin.as_deref(),
    };
    let (signer, created) = crate::tlog::load_signer(data_dir, keys).context("the checkpoint signing key")?;
    if created {
        // Printed once, on stderr, like the generated write token.
        eprintln!(
            "Generated a checkpoint signing key (kept in {}). Its verifier key, for witnesses:\n{}",
            data_dir.join(crate::tlog::KEY_FILE).display(),
            signer.verifier_key()
        );
    }
    tracing::info!(verifier_key = %signer.verifier_key(), "signing checkpoints");
    ledger.set_signer(Arc::new(signer));
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
            max_cost: args.max_cost,
            introspection: !args.no_introspection,
            max_query_bytes: args.max_query_bytes,
            max_query_tokens: args.max_query_tokens,
            max_query_nesting: args.max_query_nesting,
            max_variables_depth: args.max_variables_depth,
            max_variables_nodes: args.max_variables_nodes,
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
        response_cache_bytes: args.response_cache_bytes,
        max_response_bytes: args.max_response_bytes,
        query_threads: args.query_threads,
        max_concurrent_queries: args.max_concurrent_queries as usize,
        max_queued_queries: args.max_queued_queries,
        max_subscriptions_per_connection: args.max_subscriptions_per_connection,
        connections: crate::http::ConnLimits {
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
