//! The command line: `serve`, `import`, `export-schema`, `verify`, `rebuild`, `witness`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

pub use crate::app::ServeArgs;
use crate::app::{open_any_ledger, open_store, App, LogArgs, StoreArgs, StoreKind};
use crate::import::import_files_as;
use crate::ledger::fold_log_after;
use crate::store::LogStore;

#[derive(Parser, Debug)]
#[command(
    name = "tradeledger",
    version,
    about = "GraphQL server over an event-sourced ledger of trade-statistics releases"
)]
pub struct Cli {
    /// Log filter, e.g. `info` or `tradeledger=debug`.
    #[arg(long, env = "TRADELEDGER_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log line format: `text` (coloured only on a terminal) or `json` (one object per line,
    /// for log collectors).
    #[arg(long, env = "TRADELEDGER_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text, global = true)]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The largest event file `verify-proof` reads.
const MAX_EVENT_BYTES: usize = 256 * 1024 * 1024;

/// `tradeledger witness serve`.
#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Serve the C2SP tlog-witness protocol: cosign the checkpoints logs submit to
    /// `POST /add-checkpoint` when they are consistent with the last one cosigned, and serve
    /// the latest at `GET /<sha256(origin) hex>/checkpoint`.
    Serve(Box<crate::tlog::witness_server::WitnessArgs>),
    /// Write a new witness cosigning key (Ed25519, `cosignature/v1`) to a file readable by its
    /// owner only, and print its verifier key, for the policies of the logs it witnesses.
    Keygen {
        /// The witness's name, e.g. `witness.agency.example/w1`: no spaces or `+`.
        #[arg(long, env = "TRADELEDGER_WITNESS_NAME")]
        name: String,
        /// The key file to create (it must not exist).
        #[arg(long, env = "TRADELEDGER_WITNESS_KEY_OUT")]
        out: PathBuf,
    },
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
        /// Files to import, in order; `-` is standard input (then --format is required).
        #[arg(required_unless_present = "event_log", conflicts_with = "event_log")]
        files: Vec<PathBuf>,
        /// Read every file as this format instead of choosing by extension (`.json`, `.csv`;
        /// any other extension is refused).
        /// `sdmx-ml` and `sdmx-csv` read SDMX data files with --structure.
        #[arg(long, value_enum, env = "TRADELEDGER_IMPORT_FORMAT", conflicts_with = "event_log")]
        format: Option<crate::sdmx::ingest::ImportFormat>,
        #[command(flatten)]
        sdmx: crate::sdmx::ingest::SdmxArgs,
        /// Restore a log written by `tradeledger export` into an empty store instead: every
        /// line is checked before anything is written, then the restored head hash and Merkle
        /// root are compared with the file's.
        #[arg(long, env = "TRADELEDGER_EVENT_LOG", value_name = "FILE")]
        event_log: Option<PathBuf>,
        /// With --event-log: a checkpoint note of the source (`GET /checkpoint`) whose size
        /// and root the restored log must have.
        #[arg(long, env = "TRADELEDGER_CHECKPOINT", value_name = "FILE", requires = "event_log")]
        checkpoint: Option<PathBuf>,
        /// Actor name recorded with the events.
        #[arg(long, env = "TRADELEDGER_ACTOR", default_value = "import")]
        actor: String,
        /// Send the releases to the running server at this address (e.g.
        /// `http://127.0.0.1:8000`) instead of opening a store: the files are read here, the
        /// server checks every release, then records them in batches (actor: the admin
        /// token's name). Every release needs an id, so that running it again is safe.
        #[arg(
            long,
            env = "TRADELEDGER_IMPORT_URL",
            value_name = "URL",
            conflicts_with = "event_log"
        )]
        url: Option<String>,
        /// With --url: an admin token of that server (`--admin-tokens`).
        #[arg(long, env = "TRADELEDGER_ADMIN_TOKEN", hide_env_values = true, requires = "url")]
        token: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// The log to import into (as for `serve`): with `--store jetstream`, releases are
        /// appended to the stream as a node appends them (atomic batches that expect the
        /// stream's last sequence), so other nodes may be serving it meanwhile.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Write the log as JSON Lines, one event per line with its revision, hash and canonical
    /// text (the chain is checked on the way); `import --event-log` restores it.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, env = "TRADELEDGER_EXPORT_OUT")]
        out: Option<PathBuf>,
        /// Export the log of the running server at this address (e.g. `http://127.0.0.1:8000`,
        /// a sled or a JetStream node) instead of opening a store: appended to --out where
        /// it ends, checked on the way, then the server's signed checkpoint is written to
        /// --checkpoint-out for `import --event-log --checkpoint`. Needs --out and --token.
        #[arg(long, env = "TRADELEDGER_EXPORT_URL", value_name = "URL", requires_all = ["out", "token"])]
        url: Option<String>,
        /// With --url: an admin token of that server (`--admin-tokens`).
        #[arg(long, env = "TRADELEDGER_ADMIN_TOKEN", hide_env_values = true, requires = "url")]
        token: Option<String>,
        /// With --url: keep the first N events of --out and continue after revision N
        /// (default: after the last complete event the file holds).
        #[arg(long, env = "TRADELEDGER_EXPORT_AFTER", value_name = "N", requires = "url")]
        after: Option<u64>,
        /// With --url: where to write the server's checkpoint note (default: OUT.checkpoint).
        #[arg(
            long,
            env = "TRADELEDGER_EXPORT_CHECKPOINT_OUT",
            value_name = "FILE",
            requires = "url"
        )]
        checkpoint_out: Option<PathBuf>,
        /// With --url: the log's note verifier key (`verifierKey` in the API, obtained
        /// beforehand from a source you trust): the server's checkpoint must carry a valid
        /// signature by it, else the export fails and writes no checkpoint.
        #[arg(long, env = "TRADELEDGER_EXPORT_VKEY", requires = "url")]
        vkey: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        sled: SledOnly,
    },
    /// Print the GraphQL schema (SDL).
    ExportSchema {
        /// Write to this file instead of standard output.
        #[arg(long, env = "TRADELEDGER_SCHEMA_OUT")]
        out: Option<PathBuf>,
    },
    /// Check the hash chain and re-fold every event; exits 1 and names the first bad
    /// revision if the log was altered.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        sled: SledOnly,
    },
    /// Write the projection snapshot DATA_DIR/snapshot (which `serve` also writes on shutdown
    /// and in the background), continuing the one there if the log agrees with it.
    Snapshot {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        sled: SledOnly,
    },
    /// Re-fold the log and rewrite the derived indexes (head record,
    /// transparency log leaves).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        sled: SledOnly,
    },
    /// Check a server's transparency log from outside, as an auditor does from cron: fetch its
    /// signed checkpoint, verify the signature, check with a consistency proof that it extends
    /// the checkpoint saved in the state file, then save it. Exits 0 when everything verifies,
    /// 1 with the reason otherwise.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Witness {
        #[command(subcommand)]
        action: Option<WitnessCommand>,
        /// The server's base URL, e.g. `http://ledger.example:8000` (http only).
        #[arg(long, env = "TRADELEDGER_WITNESS_URL", required = true)]
        url: Option<String>,
        /// The log's note verifier key (`verifierKey` in the API).
        #[arg(long, env = "TRADELEDGER_WITNESS_VKEY", required = true)]
        vkey: Option<String>,
        /// File holding the last checkpoint this witness accepted; created on the first run.
        #[arg(long, env = "TRADELEDGER_WITNESS_STATE", required = true)]
        state: Option<PathBuf>,
        /// Bearer token, for a server whose reads need one.
        #[arg(long, env = "TRADELEDGER_WITNESS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Ask a server on this machine for `/healthz` (or `/readyz`), for a container's
    /// HEALTHCHECK: exit status 0 on 200, with the answer on standard output; 1 otherwise,
    /// with the reason on standard error.
    Healthcheck(crate::healthcheck::HealthcheckArgs),
    /// Verify a `c2sp.org/tlog-proof@v1` file offline against a C2SP tlog-policy file: the
    /// event's leaf, the log's signature, the witnesses' quorum and the inclusion. Exits 0 when
    /// everything holds, 1 naming what failed.
    VerifyProof {
        /// The tlog-policy file: the logs and witnesses trusted, and the quorum.
        #[arg(long, env = "TRADELEDGER_VERIFY_POLICY")]
        policy: PathBuf,
        /// The `.tlog-proof` file (`GET /tlog/proof/<revision>`, or `tlogProof` in the API).
        proof: PathBuf,
        /// The event's canonical bytes (`GET /tlog/event/<revision>`, or `canonical` in the API).
        event: PathBuf,
    },
    /// Write a SYNTHETIC release file (dataset and releases) for benchmarks and load tests:
    /// each release publishes one new period and revises the two before it.
    Generate {
        /// Releases to write after the dataset definition.
        #[arg(long, env = "TRADELEDGER_GENERATE_RELEASES", default_value_t = 2000)]
        releases: usize,
        /// Observations in each release.
        #[arg(long, env = "TRADELEDGER_GENERATE_OBSERVATIONS_PER_RELEASE", default_value_t = 500)]
        observations_per_release: usize,
        /// Seed of the random values, so that a file can be made again.
        #[arg(long, env = "TRADELEDGER_GENERATE_SEED", default_value_t = 1)]
        seed: u64,
        /// The format to write: json (the dataset definition, then the releases) or csv
        /// (the releases only, one row per observation; `--releases 0` in json gives the
        /// dataset definition to import before it).
        #[arg(long, env = "TRADELEDGER_GENERATE_FORMAT", value_enum, default_value = "json")]
        format: crate::import::Format,
        /// The file to write.
        out: PathBuf,
    },
}

/// `--store` for the commands that work on the embedded sled store only: they refuse
/// `jetstream` (from the flag or `TRADELEDGER_STORE`) instead of silently opening
/// `DATA_DIR/log`.
#[derive(clap::Args, Debug, Clone)]
pub struct SledOnly {
    /// The log to work on: this command supports `sled` only (a JetStream stream is refused;
    /// `import` and `serve` take `--store jetstream`).
    #[arg(long = "store", env = "TRADELEDGER_STORE", value_enum, default_value_t = StoreKind::Sled)]
    kind: StoreKind,
}

impl SledOnly {
    fn check(&self, command: &str) -> Result<()> {
        if self.kind == StoreKind::Jetstream {
            bail!(
                "`{command}` works on the embedded sled store only and does not support --store jetstream \
                 (TRADELEDGER_STORE=jetstream); nothing was done. Unset TRADELEDGER_STORE or pass --store sled \
                 to work on DATA_DIR/log"
            );
        }
        Ok(())
    }
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

/// The release file format of `import --format` (the SDMX formats are read apart).
fn release_format(format: Option<crate::sdmx::ingest::ImportFormat>) -> Option<crate::import::Format> {
    format.and_then(crate::sdmx::ingest::ImportFormat::release)
}

/// `import --format sdmx-ml|sdmx-csv --structure S DATA...` into the local store.
async fn import_sdmx(
    files: &[PathBuf],
    format: crate::sdmx::ingest::SdmxFormat,
    args: &crate::sdmx::ingest::SdmxArgs,
    actor: &str,
    store: &StoreArgs,
    log: &LogArgs,
) -> Result<()> {
    match &args.structure {
        Some(s) if s.is_file() => {}
        Some(s) => bail!("--structure {}: no such file; nothing was recorded", s.display()),
        None => bail!("--format sdmx-ml and sdmx-csv need --structure STRUCTURE.xml; nothing was recorded"),
    }
    let (ledger, _) = open_any_ledger(store, log, false, false).await?;
    let started = Instant::now();
    match crate::sdmx::ingest::import(&ledger, files, format, args, actor).await {
        Ok((r, missing)) => {
            let skipped = match missing {
                0 => String::new(),
                n => format!("; {n} observations without a value (missing) left out"),
            };
            println!(
                "{}{skipped}; refused: none; head revision {} ({:.2} s)",
                r.summary(),
                r.head_revision,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            bail!("refused: {} error(s) above; nothing was recorded", errors.len())
        }
    }
}

/// The exit status for the error `run_cli` returned: 1 for a failed health check (Docker
/// reserves 2 in a HEALTHCHECK), 2 for any other.
pub fn exit_status(e: &anyhow::Error) -> u8 {
    if e.is::<crate::healthcheck::Unhealthy>() {
        1
    } else {
        2
    }
}

/// Runs a parsed command line.
pub async fn run_cli(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let app = App::build(*args).await?;
            let addr = app.local_addr()?;
            let scheme = if app.is_tls() { "https" } else { "http" };
            tracing::info!("listening on {scheme}://{addr}/graphql");
            // Machine-readable lines for scripts and tests that start the binary on port 0.
            if let Some(metrics) = app.metrics_addr() {
                tracing::info!("serving metrics on http://{metrics}/metrics");
                println!("metrics on {metrics}");
            }
            println!("listening on {addr}");
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(())
        }
        Command::Import {
            event_log: Some(path),
            checkpoint,
            store,
            log,
            ..
        } => {
            if log.kind == StoreKind::Jetstream {
                bail!(
                    "`import --event-log` restores into an empty sled store only and does not support \
                     --store jetstream (TRADELEDGER_STORE=jetstream); nothing was done. To fill a stream, \
                     import release files with --store jetstream"
                );
            }
            let (store, _) = open_store(&store.data_dir, store.cold_scan_chunk)?;
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
        Command::Export {
            url: Some(url),
            token,
            after,
            out,
            checkpoint_out,
            vkey,
            ..
        } => {
            let (Some(out), Some(token)) = (out, token) else {
                bail!("export --url needs --out FILE and --token (an admin token)");
            };
            let e =
                crate::online::export(&url, &token, after, &out, checkpoint_out.as_deref(), vkey.as_deref()).await?;
            eprintln!(
                "exported {} events ({} kept from before, {} appended) to {}; checkpoint (size {}, root {}) in {}",
                e.kept + e.appended,
                e.kept,
                e.appended,
                out.display(),
                e.checkpoint.size,
                hex::encode(e.checkpoint.root),
                e.checkpoint_file.display()
            );
            Ok(())
        }
        Command::Export { out, store, sled, .. } => {
            sled.check("export")?;
            require_store(&store.data_dir)?;
            let (store, prefold) = open_store(&store.data_dir, store.cold_scan_chunk)?;
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
        Command::Import {
            url: Some(url),
            token,
            files,
            format,
            sdmx,
            ..
        } => {
            let token = token.context("import --url needs --token (an admin token of that server)")?;
            let started = Instant::now();
            let r = match format.and_then(|f| f.sdmx()) {
                Some(sdmx_format) => {
                    let structure = sdmx
                        .structure
                        .as_deref()
                        .context("--format sdmx-ml and sdmx-csv need --structure STRUCTURE.xml; nothing was sent")?;
                    // The server checks the dataset against its own definition.
                    let read = crate::sdmx::ingest::read(structure, &files, sdmx_format, &sdmx, &|_| None)
                        .map_err(|e| anyhow::anyhow!("{e}; nothing was sent"))?;
                    crate::online::import_batch(&url, &token, read.batch).await?
                }
                None => crate::online::import(&url, &token, &files, release_format(format)).await?,
            };
            println!(
                "recorded {} datasets and {} releases ({} observations sent); already there: {}; head revision {} ({:.2} s)",
                r.datasets_defined,
                r.releases_recorded,
                r.observations,
                r.duplicates,
                r.head_revision,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Import {
            files,
            format,
            actor,
            store,
            log,
            sdmx,
            ..
        } => {
            if !crate::domain::text::has_visible(&actor) || actor.chars().any(crate::domain::text::is_hidden) {
                bail!("--actor must show at least one visible character, without control or text-direction characters");
            }
            if let Some(sdmx_format) = format.and_then(|f| f.sdmx()) {
                return import_sdmx(&files, sdmx_format, &sdmx, &actor, &store, &log).await;
            }
            let format = release_format(format);
            // A file of unknown format is refused before the store is opened (or created).
            for f in &files {
                crate::import::format_of(f, format)?;
            }
            // Opened as `serve` opens it (a JetStream stream is created if missing); the
            // snapshot is not used: importing needs the whole log checked.
            let (ledger, _) = open_any_ledger(&store, &log, false, false).await?;
            let started = Instant::now();
            match import_files_as(&ledger, &files, format, &actor).await {
                Ok(r) => {
                    let secs = started.elapsed().as_secs_f64();
                    println!(
                        "{}; refused: none; head revision {} ({secs:.2} s)",
                        r.summary(),
                        r.head_revision
                    );
                    Ok(())
                }
                Err(failure) => {
                    for e in &failure.errors {
                        eprintln!("error: {e}");
                    }
                    let r = failure.recorded;
                    let n = failure.errors.len();
                    if r.datasets_defined + r.releases_recorded == 0 {
                        bail!("refused: {n} error(s) above; nothing was recorded")
                    }
                    bail!(
                        "{} before the first error; refused: {n} error(s) above; nothing after it was recorded; head revision {}",
                        r.summary(),
                        r.head_revision
                    )
                }
            }
        }
        Command::Healthcheck(args) => {
            let body = crate::healthcheck::check(&args).await?;
            println!("{body}");
            Ok(())
        }
        Command::ExportSchema { out } => {
            let sdl = crate::graphql::schema_file();
            match out {
                Some(path) => std::fs::write(&path, sdl).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{sdl}"),
            }
            Ok(())
        }
        Command::Verify { store, sled } => {
            sled.check("verify")?;
            require_store(&store.data_dir)?;
            let started = Instant::now();
            let (store, prefold) = open_store(&store.data_dir, store.cold_scan_chunk)?;
            let (projection, v) = fold_log_after(store.as_ref(), Some(prefold))?;
            let tree = crate::store::check_tree(store.as_ref(), v.checked)?;
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
            action: Some(WitnessCommand::Serve(args)),
            ..
        } => crate::tlog::witness_server::serve(*args).await,
        Command::Witness {
            action: Some(WitnessCommand::Keygen { name, out }),
            ..
        } => {
            let vkey = crate::tlog::witness_server::keygen(&name, &out)?;
            println!("{vkey}");
            Ok(())
        }
        Command::Witness {
            action: None,
            url,
            vkey,
            state,
            token,
        } => match crate::tlog::witness::run(
            url.as_deref().unwrap_or_default(),
            vkey.as_deref().unwrap_or_default(),
            &state.unwrap_or_default(),
            token.as_deref(),
        )
        .await
        {
            Ok(outcome) => {
                println!("{outcome}");
                Ok(())
            }
            Err(refusal) => {
                eprintln!("witness: {refusal}");
                std::process::exit(1);
            }
        },
        Command::VerifyProof { policy, proof, event } => {
            let read = |path: &PathBuf, what: &str, limit: usize| -> Result<Vec<u8>> {
                use std::io::Read;
                let file =
                    std::fs::File::open(path).with_context(|| format!("reading the {what} {}", path.display()))?;
                let mut bytes = Vec::new();
                file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
                if bytes.len() > limit {
                    bail!("the {what} {} is longer than {limit} bytes", path.display());
                }
                Ok(bytes)
            };
            let text = |bytes: Vec<u8>, path: &PathBuf| {
                String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))
            };
            let policy_text = text(read(&policy, "policy", crate::tlog::policy::MAX_POLICY_BYTES)?, &policy)?;
            let parsed = crate::tlog::policy::Policy::parse(&policy_text)
                .with_context(|| format!("the policy {}", policy.display()))?;
            let proof_text = text(read(&proof, "proof", crate::tlog::proof::MAX_PROOF_BYTES)?, &proof)?;
            let event_bytes = read(&event, "event", MAX_EVENT_BYTES)?;
            match crate::tlog::proof::verify_event(&parsed, &proof_text, &event_bytes) {
                Ok(v) => {
                    println!(
                        "ok: revision {} is in {} at tree size {}, cosigned by {} (quorum met)",
                        v.revision,
                        v.origin,
                        v.size,
                        if v.cosigners.is_empty() {
                            "no witness".to_owned()
                        } else {
                            v.cosigners.join(", ")
                        }
                    );
                    Ok(())
                }
                Err(why) => {
                    println!("FAILED: {why}");
                    std::process::exit(1);
                }
            }
        }
        Command::Generate {
            releases,
            observations_per_release,
            seed,
            format,
            out,
        } => {
            use std::io::Write;
            let file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            if format == crate::import::Format::Csv {
                let mut csv = crate::import::CsvWriter::new(w)?;
                for r in crate::generate::Generator::new(releases, observations_per_release, seed) {
                    csv.release(&r)?;
                }
                csv.finish()?.flush()?;
                println!(
                    "wrote {releases} SYNTHETIC releases x {observations_per_release} observations to {} (CSV: import the dataset definition first, `generate --releases 0 FILE.json`)",
                    out.display()
                );
                return Ok(());
            }
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
        Command::Snapshot { store, sled } => {
            sled.check("snapshot")?;
            require_store(&store.data_dir)?;
            let (ledger, _) = crate::app::open_ledger_with(&store.data_dir, store.cold_scan_chunk, true, true)?;
            if ledger.health().degraded {
                bail!("the log is damaged; no snapshot written (run `tradeledger verify`)");
            }
            let s = crate::snapshot::save(&ledger, &store.data_dir).await?;
            println!(
                "wrote {}: revision {}, {} bytes in {:.2} s (projection read-locked {:.0} ms)",
                store.data_dir.join(crate::snapshot::FILE).display(),
                s.revision,
                s.bytes,
                s.total.as_secs_f64(),
                s.pause.as_secs_f64() * 1000.0
            );
            Ok(())
        }
        Command::Rebuild { store, sled } => {
            sled.check("rebuild")?;
            require_store(&store.data_dir)?;
            let started = Instant::now();
            let (store, prefold) = open_store(&store.data_dir, store.cold_scan_chunk)?;
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
            store.rebuild_derived(head)?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "rebuilt: {} events, {} releases, {} observation versions in {secs:.2} s ({:.0} versions/s)",
                head.revision,
                projection.releases().len(),
                projection.version_count(),
                projection.version_count() as f64 / secs.max(1e-9)
            );
            Ok(())
        }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag of every subcommand has an environment variable, and every argument a help
    /// text: walks the whole command tree, so a new flag cannot forget either.
    #[test]
    fn every_flag_has_an_env_var_and_a_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let name = format!("{path} {id}");
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{name}: no help text"));
                }
                if !arg.is_positional() && arg.get_env().is_none() {
                    missing.push(format!("{name}: no environment variable"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tradeledger", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// Commands that never open a store do not offer `--data-dir`.
    #[test]
    fn data_dir_only_where_a_store_is_opened() {
        let cli = Cli::command();
        let has = |name: &str| {
            cli.find_subcommand(name)
                .expect(name)
                .get_arguments()
                .any(|a| a.get_id() == "data_dir")
        };
        for name in ["serve", "import", "export", "verify", "rebuild"] {
            assert!(has(name), "{name} takes --data-dir");
        }
        for name in ["export-schema", "generate", "witness"] {
            assert!(!has(name), "{name} offers --data-dir");
        }
    }
}
