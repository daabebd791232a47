//! Diagnostics on standard error, through `tracing`: human-readable text (coloured only when
//! standard error is a terminal, so files and pipes get no escape codes) or one JSON object
//! per line for log collectors (`--log-format json`).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; ANSI colour on a terminal only.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` and the spans.
    Json,
}

/// The format [`init`] installed; text when logging was not set up (library use, tests).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the process's subscriber; `filter` is an `EnvFilter` directive such as `info` or
/// `tradeledger=debug` (an invalid one falls back to `info`, with a warning once logging
/// works).
pub fn init(filter: &str, format: LogFormat) {
    let (env_filter, bad_filter) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let _ = FORMAT.set(format);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    if let Some(e) = bad_filter {
        tracing::warn!(filter, error = %e, "invalid log filter; logging at info");
    }
}

/// Writes a one-time message for the operator (a generated key or token) on standard error,
/// outside the log filter, so that it is shown whatever `--log` says: as it is in text
/// format, as one JSON line in JSON format (so that every line stays parseable).
pub fn notice(text: &str) {
    match FORMAT.get() {
        Some(LogFormat::Json) => eprintln!(
            "{}",
            serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "fields": { "message": text },
                "target": "tradeledger::notice",
            })
        ),
        _ => eprintln!("{text}"),
    }
}
