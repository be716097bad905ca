//! Command line and environment configuration of `sluice-broker`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use sluice_lake::catalog::sqlite_uri;
use sluice_lake::CatalogConfig;

use crate::storage::EngineConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A Kafka-compatible broker whose only durable store is an object store.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice-broker", version)]
pub struct BrokerArgs {
    /// Address the Kafka listener binds.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// HOST:PORT given to clients in Metadata (default: the bound listen address).
    #[arg(long, env = "SLUICE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Object storage URL: file://DIR, memory://, or s3://BUCKET/PREFIX (AWS_* variables).
    #[arg(long, env = "SLUICE_STORAGE", default_value = "file://./sluice-data")]
    pub storage: String,
    /// This broker's node id.
    #[arg(long, env = "SLUICE_NODE_ID", default_value_t = 0)]
    pub node_id: i32,
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "SLUICE_METRICS_LISTEN", default_value = "127.0.0.1:9644")]
    pub metrics_listen: SocketAddr,
    /// Create topics on first Metadata request for them (local use; off for clusters).
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics asking for the default.
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,
    /// Longest a produce waits for its WAL object to fill before it is written.
    #[arg(long, env = "SLUICE_WAL_LINGER_MS", default_value_t = 10)]
    pub wal_linger_ms: u64,
    /// WAL object size that triggers a write before the linger ends.
    #[arg(long, env = "SLUICE_WAL_MAX_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub wal_max_bytes: usize,
    /// Longest durable data stays only in the WAL before it is checkpointed.
    #[arg(long, env = "SLUICE_CHECKPOINT_INTERVAL_MS", default_value_t = 30_000)]
    pub checkpoint_interval_ms: u64,
    /// Un-checkpointed bytes (all partitions) that trigger a checkpoint.
    #[arg(long, env = "SLUICE_CHECKPOINT_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub checkpoint_bytes: usize,
    /// How often retention is enforced.
    #[arg(
        long,
        env = "SLUICE_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub retention_check_interval_ms: u64,
    /// Largest request frame accepted; larger ones close the connection.
    #[arg(long, env = "SLUICE_MAX_REQUEST_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Produce bytes waiting for durability before producers are throttled.
    #[arg(long, env = "SLUICE_MAX_PENDING_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_pending_bytes: usize,
    /// Memory for cached segment blocks.
    #[arg(long, env = "SLUICE_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub cache_bytes: u64,
    /// Partitions of the internal `__consumer_offsets` topic (fixed once created).
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_PARTITIONS", default_value_t = 16)]
    pub offsets_topic_partitions: i32,
    /// KIP-848 consumer groups: a member that does not heartbeat for this long is removed.
    #[arg(
        long,
        env = "SLUICE_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        default_value_t = 45_000
    )]
    pub group_consumer_session_timeout_ms: u64,
    /// KIP-848 consumer groups: how often members are told to heartbeat.
    #[arg(
        long,
        env = "SLUICE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub group_consumer_heartbeat_interval_ms: u64,
    /// How often this broker writes its heartbeat and runs a controller round.
    #[arg(long, env = "SLUICE_HEARTBEAT_INTERVAL_MS", default_value_t = 1_000)]
    pub heartbeat_interval_ms: u64,
    /// A broker whose heartbeat does not move for this long is declared dead and its
    /// partitions fail over (Kafka's broker.session.timeout.ms).
    #[arg(long, env = "SLUICE_SESSION_TIMEOUT_MS", default_value_t = 6_000)]
    pub session_timeout_ms: u64,
    /// How often cluster metadata is checked for a newer version (one GET).
    #[arg(long, env = "SLUICE_METADATA_POLL_MS", default_value_t = 200)]
    pub metadata_poll_ms: u64,
    /// How often the controller deletes the WAL objects of dead incarnations that no
    /// partition needs any more (fences stay).
    #[arg(long, env = "SLUICE_WAL_GC_INTERVAL_MS", default_value_t = 60_000)]
    pub wal_gc_interval_ms: u64,
    /// Partition moves in flight at once when a broker is drained.
    #[arg(long, env = "SLUICE_MAX_PARTITION_MOVES", default_value_t = 64)]
    pub max_partition_moves: usize,
    /// Debug builds only: inject object-store faults, e.g.
    /// `put_error=0.2,put_lost_ack=0.1,get_error=0.1,list_error=0.1,throttle=0.05,latency_ms=5`.
    #[cfg(debug_assertions)]
    #[arg(long, env = "SLUICE_INJECT_FAULTS", hide = true)]
    pub inject_faults: Option<crate::storage::faults::FaultConfig>,
    /// Iceberg catalog of feeds' tables (docs/lake.md): `sqlite:<path>` (SQL catalog) or
    /// `http(s)://…` (REST catalog); `none` turns the lake writer off. Default: a sqlite
    /// catalog at `<dir>/tables/catalog.db` for `file://<dir>` storage, none otherwise.
    #[arg(long, env = "SLUICE_LAKE_CATALOG")]
    pub lake_catalog: Option<String>,
    /// Where new tables' files go. Default: `<storage URL>/tables`.
    #[arg(long, env = "SLUICE_LAKE_WAREHOUSE")]
    pub lake_warehouse: Option<String>,
    /// Extra catalog and file-IO properties, `KEY=VALUE`, repeatable or comma-separated
    /// (REST credentials or `warehouse`, `s3.*`). For an `s3://` warehouse the `s3.*`
    /// ones default from the AWS environment variables the broker's storage uses.
    #[arg(
        long = "lake-catalog-prop",
        env = "SLUICE_LAKE_CATALOG_PROPS",
        value_delimiter = ','
    )]
    pub lake_catalog_props: Vec<String>,
    /// A file of `KEY=VALUE` lines (blank lines and `#` comments skipped) with more
    /// catalog properties, e.g. a mounted Secret holding credentials; `--lake-catalog-prop`
    /// wins over it.
    #[arg(long, env = "SLUICE_LAKE_CATALOG_PROPS_FILE")]
    pub lake_catalog_props_file: Option<std::path::PathBuf>,
    /// Debug builds only: abort the process at a point of the lake writer's window
    /// (`window-read`, `files-written`, `committed`), for the crash-point tests.
    #[cfg(debug_assertions)]
    #[arg(long, env = "SLUICE_INJECT_LAKE_CRASH", hide = true)]
    pub inject_lake_crash: Option<crate::lake::CrashPoint>,
    /// Log output format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl BrokerArgs {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            node_id: self.node_id,
            wal_linger: Duration::from_millis(self.wal_linger_ms),
            wal_max_bytes: self.wal_max_bytes,
            max_pending_bytes: self.max_pending_bytes,
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
            checkpoint_bytes: self.checkpoint_bytes,
            cache_bytes: self.cache_bytes,
            ..EngineConfig::default()
        }
    }

    /// The lake writer's catalog, or None when it is off (see `--lake-catalog`).
    pub fn lake_catalog(&self) -> anyhow::Result<Option<CatalogConfig>> {
        let local_dir = match self.storage.strip_prefix("file://") {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
                Some(std::fs::canonicalize(dir).with_context(|| format!("resolving {dir}"))?)
            }
            None => None,
        };
        let uri = match (self.lake_catalog.as_deref(), &local_dir) {
            (Some("none"), _) | (None, None) => return Ok(None),
            (Some(uri), _) => uri.to_string(),
            (None, Some(dir)) => sqlite_uri(&dir.join("tables").join("catalog.db")),
        };
        let warehouse = match (&self.lake_warehouse, &local_dir) {
            (Some(w), _) => w.clone(),
            (None, Some(dir)) => format!("file://{}/tables", dir.display()),
            (None, None) if self.storage.starts_with("s3://") => {
                format!("{}/tables", self.storage.trim_end_matches('/'))
            }
            (None, None) => anyhow::bail!(
                "--lake-catalog is set but storage {} has no place for table files: give --lake-warehouse",
                self.storage
            ),
        };
        let mut props = HashMap::new();
        if let Some(path) = &self.lake_catalog_props_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = line.split_once('=').with_context(|| {
                    format!("{}: line {line:?} is not KEY=VALUE", path.display())
                })?;
                props.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        for kv in &self.lake_catalog_props {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--lake-catalog-prop {kv:?} is not KEY=VALUE"))?;
            props.insert(k.to_string(), v.to_string());
        }
        if warehouse.starts_with("s3://") {
            for (prop, vars) in S3_PROPS_FROM_ENV {
                let value = vars.iter().find_map(|v| std::env::var(v).ok());
                if let Some(value) = value {
                    props.entry(prop.to_string()).or_insert(value);
                }
            }
            if props.contains_key("s3.endpoint") {
                // S3-compatible servers (MinIO, moto) are addressed by path.
                props
                    .entry("s3.path-style-access".into())
                    .or_insert("true".into());
            }
        }
        Ok(Some(CatalogConfig::new(&uri, &warehouse, props)?))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(10))
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms.max(self.heartbeat_interval_ms * 2))
    }
}

/// The table files' S3 settings, from the variables the broker's own S3 storage reads.
const S3_PROPS_FROM_ENV: [(&str, &[&str]); 5] = [
    ("s3.endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
    ("s3.region", &["AWS_REGION", "AWS_DEFAULT_REGION"]),
    ("s3.access-key-id", &["AWS_ACCESS_KEY_ID"]),
    ("s3.secret-access-key", &["AWS_SECRET_ACCESS_KEY"]),
    ("s3.session-token", &["AWS_SESSION_TOKEN"]),
];
