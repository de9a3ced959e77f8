//! The `chaos` binary: parse the command line, set up logging, run. Everything else is in
//! `chaos::cli`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    chaos::cli::run(chaos::cli::Cli::parse()).await
}
