//! The composition root: [`App::build`] opens the store, loads the signing key, the tokens and
//! the fixtures, and binds the listener, from the same [`ServeArgs`] whether `serve` runs it or
//! a test does (as zero2prod's `Application::build`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::auth::{generated_token, Token, Tokens};
use crate::http::{self, ServerConfig};
use crate::import::{load, Batch};
use crate::ledger::{Ledger, OpenError, OpenOptions, Prefold, Verification};
use crate::settings::LimitArgs;
use crate::snapshot::{Policy as SnapshotPolicy, SnapshotArgs};
use crate::store::{ColdScan, JetStreamConfig, JetStreamStore, SledStore, COLD_SCAN_CHUNK};

/// The flags of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address to listen on.
    #[arg(long, env = "TRADELEDGER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Also serve `GET /metrics` on this address, without a token (for a scraper on the
    /// operator's network). `/metrics` on --listen stays, behind --read-tokens when set.
    #[arg(long, env = "TRADELEDGER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub access_log: http::AccessLogArgs,
    /// Write tokens, comma-separated, each `name:secret` or `secret`. Without any, a token is
    /// generated on first start, kept in the data directory and printed once.
    #[arg(long, env = "TRADELEDGER_WRITE_TOKENS", hide_env_values = true)]
    pub write_tokens: Option<String>,
    /// Read tokens; when set, reads need a read or write token.
    #[arg(long, env = "TRADELEDGER_READ_TOKENS", hide_env_values = true)]
    pub read_tokens: Option<String>,
    /// Admin tokens, as --write-tokens: they may write and read, and run the online
    /// operations (`import --url`, `export --url`). None by default.
    #[arg(long, env = "TRADELEDGER_ADMIN_TOKENS", hide_env_values = true)]
    pub admin_tokens: Option<String>,
    /// Release files loaded into an empty store.
    #[arg(long, env = "TRADELEDGER_FIXTURES", default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// Start with an empty store.
    #[arg(long, env = "TRADELEDGER_NO_FIXTURES")]
    pub no_fixtures: bool,
    /// Refuse writes; also lets a damaged log be served up to its last good revision.
    #[arg(long, env = "TRADELEDGER_READ_ONLY")]
    pub read_only: bool,
    /// How far in the future (in seconds, by this server's clock) a release's `publishedAt`
    /// may be: clocks differ. A later one is refused with BAD_USER_INPUT naming the field.
    #[arg(
        long,
        env = "TRADELEDGER_MAX_CLOCK_SKEW",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    pub max_clock_skew: u64,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    #[command(flatten)]
    pub caching: crate::http::caching::CachingArgs,
    /// Turn off schema introspection (for production).
    #[arg(long, env = "TRADELEDGER_NO_INTROSPECTION")]
    pub no_introspection: bool,
    /// Do not serve GraphiQL on `GET /graphql`.
    #[arg(long, env = "TRADELEDGER_NO_GRAPHIQL")]
    pub no_graphiql: bool,
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
    /// A C2SP tlog-policy file (`log`, `witness NAME VKEY [URL]`, `group`, `quorum` lines):
    /// after each checkpoint (at most one a second), the server submits it to every witness
    /// with a URL and appends their cosignatures to the checkpoint it serves. It must list
    /// this server's log key.
    #[arg(long, env = "TRADELEDGER_WITNESS_POLICY", value_name = "FILE")]
    pub witness_policy: Option<PathBuf>,
    /// Serve HTTPS on --listen with this PEM certificate chain (leaf first); needs --tls-key.
    /// Both files are read again on SIGHUP.
    #[arg(long, env = "TRADELEDGER_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TRADELEDGER_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Where the store is: the flags of every command that opens one.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Directory of the sled store, the signing key and the generated write token.
    #[arg(long, env = "TRADELEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Log bytes read through one store handle while folding the log at start-up, before the
    /// store is opened afresh: bounds the memory of the start-up scan (sled keeps every page
    /// a handle reads until it is closed). Smaller means less memory and more reopens.
    #[arg(
        long,
        env = "TRADELEDGER_COLD_SCAN_CHUNK",
        default_value_t = COLD_SCAN_CHUNK as u64,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub cold_scan_chunk: u64,
}

/// Which log `serve` runs on: the embedded sled store, or a NATS JetStream stream shared by
/// several nodes (`--data-dir` then keeps the lock, the signing key and the token only).
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Where the event log is: `sled` (embedded, in DATA_DIR/log) or `jetstream` (a NATS
    /// JetStream stream that any number of nodes share; needs --nats-url).
    #[arg(long = "store", env = "TRADELEDGER_STORE", value_enum, default_value_t = StoreKind::Sled)]
    pub kind: StoreKind,
    /// NATS server URLs, comma-separated (`nats://host:4222,...`), for `--store jetstream`.
    #[arg(long, env = "TRADELEDGER_NATS_URL")]
    pub nats_url: Option<String>,
    /// JetStream stream holding the log (its subject is `<NAME>.events`); created if missing.
    #[arg(long, env = "TRADELEDGER_NATS_STREAM", default_value = crate::store::DEFAULT_NATS_STREAM)]
    pub nats_stream: String,
    /// Replicas of the stream (1, 3 or 5 for a cluster): set when the stream is created, and
    /// checked against an existing one.
    #[arg(long, env = "TRADELEDGER_NATS_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=5))]
    pub nats_replicas: u64,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "TRADELEDGER_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// NATS authentication token.
    #[arg(long, env = "TRADELEDGER_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// Longest wait on NATS, in milliseconds: connecting, a publish acknowledgement, the stream
    /// answering, this node reading back its own write. Beyond it a write fails as a storage
    /// failure (UNAVAILABLE: nothing was acknowledged, retry later; writes are refused and
    /// /readyz answers 503 until the stream answers again; reads go on).
    #[arg(long, env = "TRADELEDGER_NATS_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub nats_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sled,
    Jetstream,
}

impl Default for LogArgs {
    fn default() -> Self {
        LogArgs {
            kind: StoreKind::Sled,
            nats_url: None,
            nats_stream: crate::store::DEFAULT_NATS_STREAM.to_owned(),
            nats_replicas: 1,
            nats_creds: None,
            nats_token: None,
            nats_timeout_ms: 5_000,
        }
    }
}

impl LogArgs {
    /// The JetStream configuration, for `--store jetstream`.
    fn jetstream(&self) -> Result<JetStreamConfig> {
        let Some(urls) = self.nats_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            bail!("--store jetstream needs --nats-url (or TRADELEDGER_NATS_URL)");
        };
        Ok(JetStreamConfig {
            urls: urls.to_owned(),
            stream: self.nats_stream.clone(),
            replicas: self.nats_replicas as usize,
            creds: self.nats_creds.clone(),
            token: self.nats_token.clone(),
            timeout: std::time::Duration::from_millis(self.nats_timeout_ms),
        })
    }
}

impl ServeArgs {
    /// `serve`'s defaults over `data_dir`, listening on a free port of 127.0.0.1.
    pub fn new(data_dir: &Path) -> Self {
        ServeArgs {
            store: StoreArgs {
                data_dir: data_dir.to_owned(),
                cold_scan_chunk: COLD_SCAN_CHUNK as u64,
            },
            log: LogArgs::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            access_log: http::AccessLogArgs::default(),
            write_tokens: None,
            read_tokens: None,
            admin_tokens: None,
            fixtures: PathBuf::from("fixtures"),
            no_fixtures: false,
            read_only: false,
            max_clock_skew: crate::ledger::DEFAULT_MAX_CLOCK_SKEW.as_secs(),
            limits: LimitArgs::default(),
            snapshot: SnapshotArgs::default(),
            caching: crate::http::caching::CachingArgs::default(),
            no_introspection: false,
            no_graphiql: false,
            cors_origins: Vec::new(),
            log_origin: None,
            signing_key: None,
            witness_policy: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// A server ready to run: the ledger is open and the listener bound.
pub struct App {
    listener: tokio::net::TcpListener,
    /// The metrics address's listener (`--metrics-listen`), if any.
    metrics_listener: Option<tokio::net::TcpListener>,
    ledger: Ledger,
    config: ServerConfig,
    /// When snapshots are written; `None` for a ledger opened by the caller.
    snapshots: Option<SnapshotPolicy>,
}

impl App {
    /// Opens everything `settings` names and binds the listener.
    pub async fn build(settings: ServeArgs) -> Result<App> {
        App::build_with(settings, |_| {}).await
    }

    /// As [`App::build`], with the HTTP configuration adjusted by `configure` before the
    /// server starts (tests use it for settings that have no flag, such as the tokens).
    pub async fn build_with(settings: ServeArgs, configure: impl FnOnce(&mut ServerConfig)) -> Result<App> {
        // Checked before the store is opened: a bad file is an error naming it, at once.
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(http::tls::Tls::load(cert, key).context("--tls-cert/--tls-key")?),
            _ => None,
        };
        let limits = &settings.limits;
        if limits.max_query_nesting < limits.max_depth {
            bail!(
                "--max-query-nesting ({}) must be at least --max-depth ({}): each level of a query is a `{{`",
                limits.max_query_nesting,
                limits.max_depth
            );
        }
        let use_snapshot = !settings.snapshot.no_snapshot;
        let (ledger, covered) =
            open_any_ledger(&settings.store, &settings.log, settings.read_only, use_snapshot).await?;
        let snapshots = use_snapshot.then(|| SnapshotPolicy {
            dir: settings.store.data_dir.clone(),
            args: settings.snapshot.clone(),
            covered,
        });
        let keys = crate::tlog::KeyConfig {
            key_file: settings.signing_key.as_deref(),
            origin: settings.log_origin.as_deref(),
        };
        let (signer, created) =
            crate::tlog::load_signer(&settings.store.data_dir, keys).context("the checkpoint signing key")?;
        if created {
            // Printed once, on stderr, like the generated write token.
            crate::logging::notice(&format!(
                "Generated a checkpoint signing key (kept in {}). Its verifier key, for witnesses:\n{}",
                settings.store.data_dir.join(crate::tlog::KEY_FILE).display(),
                signer.verifier_key()
            ));
        }
        tracing::info!(verifier_key = %signer.verifier_key(), "signing checkpoints");
        if let Some(path) = &settings.witness_policy {
            let witnessing = load_witness_policy(path, &signer)?;
            ledger.set_witnessing(Arc::new(witnessing));
        }
        ledger.set_signer(Arc::new(signer));
        ledger.set_max_clock_skew(std::time::Duration::from_secs(settings.max_clock_skew));
        let mut tokens = Tokens {
            write: Token::parse_list(settings.write_tokens.as_deref().unwrap_or("")).context("--write-tokens")?,
            read: Token::parse_list(settings.read_tokens.as_deref().unwrap_or("")).context("--read-tokens")?,
            admin: Token::parse_list(settings.admin_tokens.as_deref().unwrap_or("")).context("--admin-tokens")?,
        };
        if tokens.write.is_empty() {
            let (token, created) = generated_token(&settings.store.data_dir).context("the generated write token")?;
            if let Some(text) = created {
                // Printed once, on stderr, and never logged.
                crate::logging::notice(&format!(
                    "Generated a write token (kept in {}): {text}\nUse it as `Authorization: Bearer {}`",
                    settings.store.data_dir.join(crate::auth::TOKEN_FILE).display(),
                    text.split_once(':').map_or(text.as_str(), |(_, s)| s)
                ));
            }
            tokens.write.push(token);
        }
        if !settings.no_fixtures && ledger.read().head().revision == 0 && ledger.is_read_only().is_none() {
            if settings.fixtures.is_dir() {
                let batch = Batch::read_dir(&settings.fixtures)?;
                match load(&ledger, batch, "fixtures").await {
                    Ok(r) => tracing::info!(
                        releases = r.releases_recorded,
                        observations = r.observations,
                        revision = r.head_revision,
                        "loaded fixtures from {}",
                        settings.fixtures.display()
                    ),
                    Err(errors) => bail!("loading fixtures: {}", errors.join("; ")),
                }
            } else {
                tracing::warn!(
                    "fixtures directory {} not found; starting empty",
                    settings.fixtures.display()
                );
            }
        }
        let serve = settings;
        let mut config = ServerConfig::new(&serve.limits);
        config.limits.introspection = !serve.no_introspection;
        config.connections.max_connections = connection_cap(config.connections.max_connections);
        config.tokens = tokens;
        config.cors_origins = serve.cors_origins;
        config.graphiql = !serve.no_graphiql;
        serve.access_log.apply(&mut config);
        let caching = &serve.caching;
        if caching.only_persisted && caching.persisted_queries.is_none() {
            bail!("--only-persisted needs --persisted-queries FILE: without it every query would be refused");
        }
        config.persisted_queries = match &caching.persisted_queries {
            Some(path) => Some(Arc::new(crate::http::persisted::Manifest::load(path, &config.limits)?)),
            None => None,
        };
        config.only_persisted = caching.only_persisted;
        config.apq_max_entries = caching.apq_max_entries;
        config.apq_max_bytes = caching.apq_max_bytes;
        config.http_caching = crate::http::caching::HttpCaching {
            max_age: caching.cache_max_age,
            stale_while_revalidate: caching.cache_stale_while_revalidate,
        };
        for url in &caching.purge_urls {
            let parsed = reqwest::Url::parse(url).with_context(|| format!("--purge-url {url}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("--purge-url {url}: the URL must be http:// or https://");
            }
        }
        config.purge_urls = caching.purge_urls.clone();
        config.tls = tls;
        configure(&mut config);
        let listen = serve.listen;
        let mut app = App::with_ledger(ledger, config, listen).await?;
        app.snapshots = snapshots;
        if let Some(addr) = serve.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --metrics-listen {addr}"))?;
            app.metrics_listener = Some(listener);
        }
        Ok(app)
    }

    /// A server over an open `ledger` (a test's own store, say).
    pub async fn with_ledger(ledger: Ledger, config: ServerConfig, listen: SocketAddr) -> Result<App> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        Ok(App {
            listener,
            metrics_listener: None,
            ledger,
            config,
            snapshots: None,
        })
    }

    /// The address the server listens on (with its real port when asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether the listener speaks HTTPS (`--tls-cert`).
    pub fn is_tls(&self) -> bool {
        self.config.tls.is_some()
    }

    /// The metrics address (`--metrics-listen`), if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Serves until `signal` resolves, then shuts down gracefully (see [`http::run`]).
    /// Snapshots are written in the background meanwhile, and once more after the final flush.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let snapshots = self.snapshots.map(|p| p.spawn(self.ledger.clone()));
        let served =
            http::run_with_metrics(self.listener, self.metrics_listener, self.ledger, self.config, signal).await;
        if let Some(writer) = snapshots {
            writer.finish().await;
        }
        served
    }
}

/// Reads and checks `--witness-policy`: a malformed line is an error naming it, and the
/// policy must list this server's log key.
fn load_witness_policy(path: &Path, signer: &crate::tlog::Signer) -> Result<crate::ledger::transparency::Witnessing> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the witness policy {}", path.display()))?;
    let policy =
        crate::tlog::policy::Policy::parse(&text).with_context(|| format!("the witness policy {}", path.display()))?;
    let ours = crate::tlog::Verifier::parse(&signer.verifier_key()).expect("our own key");
    let listed = policy
        .logs
        .iter()
        .any(|l| l.verifier.name() == ours.name() && l.verifier.public_key() == ours.public_key());
    if !listed {
        bail!(
            "the witness policy {} has no `log` line with this server's key: add `log {}`",
            path.display(),
            signer.verifier_key()
        );
    }
    for w in policy.witnesses.iter().filter(|w| w.url.is_some()) {
        let url = w.url.as_deref().unwrap_or_default();
        if !url.starts_with("http://") {
            bail!(
                "the witness policy {}: witness `{}` has the URL `{url}`; only http:// URLs are supported \
                 (cosignatures are verified, so the transport need not be trusted)",
                path.display(),
                w.name
            );
        }
    }
    Ok(crate::ledger::transparency::Witnessing::new(policy))
}

/// Creates the data directory, readable by its owner only.
pub(crate) fn prepare_data_dir(dir: &Path) -> Result<()> {
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
pub(crate) fn lock_data_dir(dir: &Path) -> Result<()> {
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
pub(crate) fn open_store(data_dir: &Path, chunk: u64) -> Result<(Arc<SledStore>, Prefold)> {
    prepare_data_dir(data_dir)?;
    lock_data_dir(data_dir)?;
    let (store, prefold, _) = open_locked(data_dir, chunk, None)?;
    Ok((store, prefold))
}

/// [`open_store`] in a locked data directory, continuing `snapshot` if the log agrees with
/// it (see [`crate::snapshot::prefold`]); true when it did.
fn open_locked(
    data_dir: &Path,
    chunk: u64,
    snapshot: Option<crate::projection::Projection>,
) -> Result<(Arc<SledStore>, Prefold, bool)> {
    let path = data_dir.join("log");
    let context = || format!("opening the store at {}", path.display());
    let scan = |from: u64| -> crate::store::RecordIter<'_> {
        if path.exists() {
            let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
            Box::new(ColdScan::new(&path, from, chunk))
        } else {
            Box::new(std::iter::empty())
        }
    };
    // sled panics on some damage to its own files (a snapshot it cannot rebuild from a
    // corrupted log): report that as a damaged store, like its "Read corrupted data" errors.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<_> {
        let (prefold, used) = crate::snapshot::prefold(snapshot, scan).with_context(context)?;
        Ok((Arc::new(SledStore::open(&path).with_context(context)?), prefold, used))
    }));
    opened.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        bail!(
            "{}: the store's files are damaged below the event layer (the storage engine failed \
             reading them: {what}); restore from an export",
            context()
        )
    })
}

/// Opens the ledger on the log `log` names (sled in the data directory, or a JetStream
/// stream), as `serve` does; also returns the revision of the snapshot used (0: none).
pub(crate) async fn open_any_ledger(
    store: &StoreArgs,
    log: &LogArgs,
    read_only: bool,
    use_snapshot: bool,
) -> Result<(Ledger, u64)> {
    match log.kind {
        StoreKind::Sled => open_ledger_with(&store.data_dir, store.cold_scan_chunk, read_only, use_snapshot),
        StoreKind::Jetstream => {
            open_jetstream_ledger(
                &store.data_dir,
                store.cold_scan_chunk,
                &log.jetstream()?,
                read_only,
                use_snapshot,
            )
            .await
        }
    }
}

/// [`open_ledger`], starting from `DATA_DIR/snapshot` when `use_snapshot` and the log agrees
/// with it; also returns the revision of the snapshot used (0: none). Should the log's head
/// record disagree with the fold continued from it, the whole log is folded again, so a
/// snapshot never changes what a start reports.
pub(crate) fn open_ledger_with(
    data_dir: &Path,
    chunk: u64,
    read_only: bool,
    use_snapshot: bool,
) -> Result<(Ledger, u64)> {
    let started = Instant::now();
    prepare_data_dir(data_dir)?;
    lock_data_dir(data_dir)?;
    let snapshot = use_snapshot.then(|| crate::snapshot::load(data_dir)).flatten();
    let covered = snapshot.as_ref().map_or(0, |p| p.head().revision);
    let (store, prefold, used) = open_locked(data_dir, chunk, snapshot)?;
    let options = OpenOptions { read_only };
    let opened = Ledger::open_after(store, options, Some(prefold));
    let (ledger, verification, kept) = keep_or_refold(opened, used, || {
        let (store, prefold, _) = open_locked(data_dir, chunk, None)?;
        Ok(Ledger::open_after(store, options, Some(prefold)))
    })?;
    let covered = if kept { covered } else { 0 };
    log_opened(&ledger, &verification, covered, started, "sled");
    Ok((ledger, covered))
}

/// The ledger `opened` from a fold continued from a snapshot (`used`), kept when the log
/// agrees with it; otherwise, with a warning naming why, the ledger `refold` opens over the
/// whole log, so a snapshot never changes what a start reports. `opened` (and its store) is
/// closed before `refold` runs. Also says whether the snapshot was kept.
fn keep_or_refold(
    opened: Result<(Ledger, Verification), OpenError>,
    used: bool,
    refold: impl FnOnce() -> Result<Result<(Ledger, Verification), OpenError>>,
) -> Result<(Ledger, Verification, bool)> {
    let why = match &opened {
        Ok((_, v)) if v.ok() => None,
        Ok((_, v)) => Some(v.damage.as_ref().map(|d| d.to_string()).unwrap_or_default()),
        Err(e) => Some(e.to_string()),
    };
    let (opened, kept) = match why {
        Some(why) if used => {
            tracing::warn!(reason = %why, "the log disagrees with the fold continued from the snapshot ({why}); folding the whole log");
            drop(opened);
            (refold()?, false)
        }
        _ => (opened, used),
    };
    let (ledger, verification) = opened?;
    Ok((ledger, verification, kept))
}

/// Says how the ledger opened: its head, the snapshot it started from and how long it took,
/// and, loudly, a damaged log served read-only.
fn log_opened(ledger: &Ledger, verification: &Verification, covered: u64, started: Instant, store: &str) {
    let p = ledger.read();
    tracing::info!(
        revision = p.head().revision,
        versions = p.version_count(),
        snapshot = covered,
        millis = started.elapsed().as_millis() as u64,
        store,
        "ledger opened"
    );
    if let Some(d) = &verification.damage {
        tracing::error!(damage = %d, "serving a damaged log read-only");
    }
}

/// Where a JetStream node keeps its copy of the stream, in its data directory.
pub const STREAM_COPY_DIR: &str = "jetstream";

/// Opens the ledger over a JetStream stream: the data directory holds the lock, the signing
/// key, the token, the node's projection snapshot and its copy of the stream
/// ([`STREAM_COPY_DIR`], a sled store; see [`JetStreamStore::connect`]). The fold reads the
/// copy from the disk first (with bounded memory, continuing the snapshot when the copy
/// agrees with it), then what the stream holds beyond the copy, as it downloads. Returns the
/// revision the snapshot covered (0 if none was used).
async fn open_jetstream_ledger(
    data_dir: &Path,
    chunk: u64,
    config: &JetStreamConfig,
    read_only: bool,
    use_snapshot: bool,
) -> Result<(Ledger, u64)> {
    let started = Instant::now();
    prepare_data_dir(data_dir)?;
    lock_data_dir(data_dir)?;
    let context = || format!("opening the JetStream stream {} at {}", config.stream, config.urls);
    // The snapshot is read while the node connects and checks its copy of the stream.
    let loading = use_snapshot.then(|| {
        let dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || crate::snapshot::load(&dir))
    });
    let copy = data_dir.join(STREAM_COPY_DIR);
    let mut connection = JetStreamStore::connect(config, Some(&copy))
        .await
        .with_context(context)?;
    let snapshot = match loading {
        Some(task) => task.await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the snapshot failed; folding the whole stream");
            None
        }),
        None => None,
    };
    let covered = snapshot.as_ref().map_or(0, |p| p.head().revision);
    let (local_fold, used) = if connection.local.revision > 0 {
        let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
        let path = copy.clone();
        let folded = tokio::task::spawn_blocking(move || {
            crate::snapshot::prefold(snapshot, |from| Box::new(ColdScan::new(&path, from, chunk)))
        })
        .await;
        // The copy is only a cache of the stream: damaged, it is fetched again.
        let folded = match folded {
            Ok(Ok((prefold, used))) => match prefold.damage() {
                None => Ok((prefold, used)),
                Some(d) => Err(format!("it is damaged at {d}")),
            },
            Ok(Err(e)) => Err(format!("it does not read back ({e})")),
            Err(e) => Err(format!("the storage engine failed reading it ({e})")),
        };
        match folded {
            Ok((prefold, used)) => (Some(prefold), used),
            Err(why) => {
                connection.discard_copy(&why).await.with_context(context)?;
                (None, false)
            }
        }
    } else {
        if snapshot.is_some() {
            tracing::info!(
                "this node has no copy of the stream yet: folding the whole stream as it downloads, not the snapshot"
            );
        }
        (None, false)
    };
    // What the copy holds: nothing if it was emptied.
    let local = connection.local.revision;
    let (store, feed) = connection.follow(true).await.with_context(context)?;
    let store = Arc::new(store);
    let prefold = tokio::task::spawn_blocking(move || {
        let records: crate::store::RecordIter<'static> = match feed {
            Some(feed) => Box::new(feed),
            None => Box::new(std::iter::empty()),
        };
        match local_fold {
            Some(prefold) => prefold.then(records),
            None => Prefold::from_records(records),
        }
    })
    .await
    .context("folding the JetStream stream")??;
    tracing::info!(stream = %config.stream, local, fetched = prefold.revision().saturating_sub(local), "read the JetStream stream");
    let options = OpenOptions { read_only };
    let opened = Ledger::open_after(store.clone(), options, Some(prefold));
    let (ledger, verification, kept) = keep_or_refold(opened, used, || Ok(Ledger::open(store, options)))?;
    let covered = if kept { covered } else { 0 };
    log_opened(&ledger, &verification, covered, started, "jetstream");
    Ok((ledger, covered))
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
