use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tradeledger::cli::Cli::parse();
    tradeledger::logging::init(&cli.log, cli.log_format);
    match tradeledger::cli::run_cli(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
