//! `evidence`, the command both binaries run: resolve what to ask (a topic and a broker,
//! or a Feed through the Kubernetes API), fetch the report, print it, and turn it into
//! an exit code a script can test.
//!
//! Exit codes: 0 the report has no findings, 2 it has findings (the report is printed
//! either way), 1 an error (nothing on standard output, the reason on standard error).
//! Usage errors exit 1 too, not clap's usual 2, so that 2 always means findings.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use sluice_schema::evidence::Report;

use crate::broker_http::{base_url, fetch_report, REPORT_TIMEOUT};
use crate::feed_target::{resolve, Target};
use crate::render::{render, Format};
use crate::time::{parse_instant, Window};

pub const EXIT_NO_FINDINGS: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_FINDINGS: u8 = 2;

/// The window and output flags, the same in both binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Start of the window, inclusive: RFC 3339 (2026-12-01T10:00:00Z) or epoch milliseconds.
    #[arg(long, value_parser = parse_instant)]
    pub from: i64,
    /// End of the window, exclusive: RFC 3339 or epoch milliseconds.
    #[arg(long, value_parser = parse_instant)]
    pub to: i64,
    /// How to print the report.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// What the report is about and which broker to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Topic {
        topic: String,
        broker: String,
    },
    /// A Feed read through the Kubernetes API (current kubeconfig context, or the
    /// in-cluster service account).
    Feed {
        name: String,
        /// None: the context's namespace.
        namespace: Option<String>,
        /// None: the Service of the Feed's cluster.
        broker: Option<String>,
    },
}

/// The exit code of a report: whether it found anything.
pub fn exit_code_of(report: &Report) -> u8 {
    if report.findings.is_empty() {
        EXIT_NO_FINDINGS
    } else {
        EXIT_FINDINGS
    }
}

/// A usage error (or `--help`): clap's message, and exit 1 (0 for help and version).
pub fn exit_on_usage(error: clap::Error) -> ExitCode {
    let _ = error.print();
    if error.use_stderr() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::from(EXIT_NO_FINDINGS)
    }
}

/// A binary's whole `main`: parse its command line (a usage error exits 1, `--help` 0),
/// let the binary say what to report on, and run the command.
pub fn main_with<C: clap::Parser>(source_of: impl FnOnce(C) -> (Source, ReportArgs)) -> ExitCode {
    match C::try_parse() {
        Ok(cli) => {
            let (source, args) = source_of(cli);
            execute(source, args)
        }
        Err(e) => exit_on_usage(e),
    }
}

/// Runs the command to its exit code; errors go to standard error.
pub fn execute(source: Source, args: ReportArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(source, args)));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error and its causes on one line, each said once: `{:#}` would repeat the
/// messages of errors whose own text already includes their source's (kube's do).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

async fn run(source: Source, args: ReportArgs) -> anyhow::Result<u8> {
    // Checked before anything is asked of Kubernetes or a broker.
    let window = Window::new(args.from, args.to).map_err(|e| anyhow!(e))?;
    let (target, from_service) = target(source).await?;
    let base = base_url(&target.broker)?;
    let report = fetch_report(&base, &target.topic, window, REPORT_TIMEOUT)
        .await
        .map_err(|e| {
            if from_service {
                e.context(format!(
                    "{base} is the cluster's broker Service, reachable inside the cluster only; \
                     from outside, run `kubectl port-forward` to a broker's HTTP port and pass --broker"
                ))
            } else {
                e
            }
        })?;
    print(&render(&report, args.output))?;
    Ok(exit_code_of(&report))
}

/// The target, and whether its broker address is the in-cluster Service name.
async fn target(source: Source) -> anyhow::Result<(Target, bool)> {
    match source {
        Source::Topic { topic, broker } => Ok((Target { topic, broker }, false)),
        Source::Feed {
            name,
            namespace,
            broker,
        } => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to Kubernetes (kubeconfig or in-cluster service account)")?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let from_service = broker.is_none();
            let target = resolve(client, &namespace, &name, broker.as_deref()).await?;
            Ok((target, from_service))
        }
    }
}

/// Standard output closed early (`| head`) is not an error worth a message.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!(e).context("writing the report"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_make_the_exit_code_two() {
        let mut report = Report::default();
        assert_eq!(exit_code_of(&report), EXIT_NO_FINDINGS);
        report
            .findings
            .push("partition 0: 2 offsets not in the table yet".into());
        assert_eq!(exit_code_of(&report), EXIT_FINDINGS);
    }

    #[test]
    fn describes_each_cause_once() {
        #[derive(Debug)]
        struct Wrapping(std::io::Error);
        impl std::fmt::Display for Wrapping {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "failed to read kubeconfig: {}", self.0)
            }
        }
        impl std::error::Error for Wrapping {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(Wrapping(io)).context("connecting to Kubernetes");
        assert_eq!(
            describe(&error),
            "connecting to Kubernetes: failed to read kubeconfig: no such file"
        );
    }
}
