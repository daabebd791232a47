use clap::Parser;

// jemalloc rather than glibc's malloc: after a big answer glibc keeps the freed pages
// resident, while jemalloc, with its background threads purging what stays unused (about
// 10 s), gives them back (docs/performance.md, "round-2 attacks").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tradeledger::cli::Cli::parse();
    tradeledger::logging::init(&cli.log, cli.log_format);
    // Without them, jemalloc purges only when the program allocates: an idle server would keep
    // the pages of its last big answer.
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc's background threads did not start: freed memory returns only as the server allocates");
    }
    match tradeledger::cli::run_cli(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(tradeledger::cli::exit_status(&e))
        }
    }
}
