//! `sluice evidence`: the evidence report of a topic (or a Feed) over a time window.
//! Exit codes: 0 no findings, 2 findings, 1 error (`command`).

use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use sluice_cli::command::{main_with, ReportArgs, Source};

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Sluice command-line tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print what the system recorded about a topic over a time window, checked against
    /// the table, the registry and the dead-letter topic. Exits 0 without findings, 2
    /// with findings, 1 on error.
    #[command(group(ArgGroup::new("source").required(true).args(["topic", "feed"])))]
    Evidence(EvidenceArgs),
}

#[derive(Debug, clap::Args)]
struct EvidenceArgs {
    /// A broker's HTTP address (its metrics listener), e.g. http://127.0.0.1:9644.
    /// With --feed: default the Feed's cluster Service (inside the cluster only).
    #[arg(long)]
    broker: Option<String>,
    /// The topic to report on.
    #[arg(long, requires = "broker")]
    topic: Option<String>,
    /// A Feed to report on, read through the Kubernetes API (its topic and cluster).
    #[arg(long)]
    feed: Option<String>,
    /// The Feed's namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, requires = "feed")]
    namespace: Option<String>,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    main_with(|cli: Cli| {
        let Command::Evidence(args) = cli.command;
        let source = match (args.topic, args.feed) {
            (Some(topic), _) => Source::Topic {
                topic,
                // `requires = "broker"` makes it present.
                broker: args.broker.unwrap_or_default(),
            },
            (None, Some(name)) => Source::Feed {
                name,
                namespace: args.namespace,
                broker: args.broker,
            },
            (None, None) => unreachable!("clap requires --topic or --feed"),
        };
        (source, args.report)
    })
}
