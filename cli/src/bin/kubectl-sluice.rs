//! `kubectl sluice evidence <feed>`: the kubectl plugin (kubectl runs any `kubectl-*` on
//! the PATH). The Feed is read through the current kubeconfig context; the report comes
//! from its cluster's brokers. Exit codes: 0 no findings, 2 findings, 1 error (`command`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_cli::command::{main_with, ReportArgs, Source};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl sluice",
    bin_name = "kubectl sluice",
    version,
    about = "Sluice's kubectl plugin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print what the system recorded about a Feed over a time window, checked against
    /// the table, the registry and the dead-letter topic. Exits 0 without findings, 2
    /// with findings, 1 on error.
    Evidence(EvidenceArgs),
}

#[derive(Debug, clap::Args)]
struct EvidenceArgs {
    /// The Feed (as in `kubectl get feeds`).
    feed: String,
    /// The Feed's namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// A broker's HTTP address, e.g. http://127.0.0.1:9644 after `kubectl port-forward`.
    /// Default: the Feed's cluster Service, which resolves inside the cluster only.
    #[arg(long)]
    broker: Option<String>,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    main_with(|cli: Cli| {
        let Command::Evidence(args) = cli.command;
        let source = Source::Feed {
            name: args.feed,
            namespace: args.namespace,
            broker: args.broker,
        };
        (source, args.report)
    })
}
