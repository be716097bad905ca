//! The `sluice-broker` binary: parses arguments, sets up logging and runs the broker.

use std::io::IsTerminal;

use clap::Parser;
use sluice_broker::config::{BrokerArgs, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = BrokerArgs::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into a file or a collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    sluice_broker::server::startup::run(args).await
}
