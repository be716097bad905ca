//! `sluice-operator`: `run` starts the controllers, `crd` prints the CRDs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::get;
use axum::Router;
use clap::{Parser, Subcommand, ValueEnum};
use prometheus_client::registry::Registry;
use sluice_operator::controller::cluster::BrokerObserver;
use sluice_operator::controller::{self, Context, OperatorConfig};
use sluice_operator::crd::crds_yaml;
use sluice_operator::metrics::Metrics;
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "sluice-operator",
    version,
    about = "Kubernetes operator for Sluice"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (YAML).
    Crd,
    /// Run the SecurityLakeCluster and Feed controllers.
    Run(RunArgs),
    /// Write JSON schemas of our kinds and of the built-in kinds the chart renders, for
    /// kubeconform (CI).
    #[command(hide = true)]
    Schemas {
        /// Directory to write `<kind>_<group>_<version>.json` files into.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Broker image for clusters that set no `spec.image`.
    #[arg(long, env = "SLUICE_OPERATOR_BROKER_IMAGE")]
    broker_image: Option<String>,
    /// DNS domain of the Kubernetes cluster.
    #[arg(
        long,
        env = "SLUICE_OPERATOR_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
    /// Namespace the operator runs in (brokers' NetworkPolicies admit it from there).
    #[arg(long, env = "SLUICE_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// `/metrics`, `/healthz` listener.
    #[arg(
        long,
        env = "SLUICE_OPERATOR_METRICS_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    metrics_listen: SocketAddr,
    /// Timeout of each Kafka admin and broker metrics call, in seconds.
    #[arg(long, env = "SLUICE_OPERATOR_IO_TIMEOUT_SECS", default_value_t = 10)]
    io_timeout_secs: u64,
    /// How often a ready object is reconciled again to refresh its figures, in seconds.
    #[arg(long, env = "SLUICE_OPERATOR_REFRESH_SECS", default_value_t = 30)]
    refresh_secs: u64,
    /// Resolve in-cluster Service names (the bootstrap Service, brokers' per-pod names)
    /// through the API (ready pods' IPs) instead of DNS: for an operator running outside
    /// the cluster, where those names do not resolve. Needs `get`/`list` on pods (the
    /// chart's `outOfCluster: true`).
    #[arg(long, env = "SLUICE_OPERATOR_RESOLVE_VIA_API")]
    resolve_via_api: bool,
    /// Log output format.
    #[arg(
        long,
        env = "SLUICE_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", crds_yaml());
            Ok(())
        }
        Command::Run(args) => run(args).await,
        Command::Schemas { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (name, schema) in sluice_operator::schemas::kubeconform_schemas() {
                let path = out.join(name);
                std::fs::write(&path, serde_json::to_vec_pretty(&schema)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    // Colour codes only for a person at a terminal, never into a file or a collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }

    let defaults = OperatorConfig::default();
    let config = OperatorConfig {
        broker_image: args.broker_image.unwrap_or(defaults.broker_image),
        cluster_domain: args.cluster_domain,
        operator_namespace: args.namespace,
        io_timeout: Duration::from_secs(args.io_timeout_secs),
        refresh_interval: Duration::from_secs(args.refresh_secs),
        resolve_via_api: args.resolve_via_api,
    };
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or kubeconfig)")?;

    let mut registry = Registry::with_prefix("sluice_operator");
    let metrics = Metrics::default().register(&mut registry);
    let registry = Arc::new(registry);
    let observer = Arc::new(BrokerObserver {
        timeout: config.io_timeout,
    });
    let ctx = Arc::new(Context::new(client, config, metrics, observer));

    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics listener {}", args.metrics_listen))?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut out = String::new();
                    prometheus_client::encoding::text::encode(&mut out, &registry)
                        .expect("writing to a String cannot fail");
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        out,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    info!(addr = %args.metrics_listen, "metrics listener");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    controller::run(ctx).await;
    server.abort();
    Ok(())
}
