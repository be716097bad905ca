//! Command line and environment configuration of `sluice-broker`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use sluice_lake::catalog::sqlite_uri;
use sluice_lake::CatalogConfig;

use crate::security::listener::{self, ListenerSpec};
use crate::security::sasl::SaslMechanism;
use crate::security::tls::TlsSettings;
use crate::storage::EngineConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthorizerMode {
    Auto,
    On,
    Off,
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
    /// Kafka listeners, `NAME://HOST:PORT` comma-separated, e.g.
    /// `INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:9093` (Kafka's `listeners`). A name
    /// that is not in `--listener-security-protocol-map` must be a security protocol
    /// (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`). Default: one PLAINTEXT
    /// listener on `--listen`, advertised as `--advertise`.
    #[arg(long, env = "SLUICE_LISTENERS", value_delimiter = ',')]
    pub listeners: Vec<String>,
    /// `NAME://HOST:PORT` per listener given to clients in Metadata (default: the bound
    /// address). Clients are always sent to the listener they connected through.
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENERS", value_delimiter = ',')]
    pub advertised_listeners: Vec<String>,
    /// `NAME:PROTOCOL` pairs, e.g. `INTERNAL:SASL_SSL,EXTERNAL:SSL`.
    #[arg(
        long,
        env = "SLUICE_LISTENER_SECURITY_PROTOCOL_MAP",
        value_delimiter = ','
    )]
    pub listener_security_protocol_map: Vec<String>,
    /// PEM certificate chain of SSL and SASL_SSL listeners (read again when it changes).
    #[arg(long, env = "SLUICE_SSL_CERTIFICATE_FILE")]
    pub ssl_certificate_file: Option<std::path::PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "SLUICE_SSL_KEY_FILE")]
    pub ssl_key_file: Option<std::path::PathBuf>,
    /// PEM bundle of the CAs that client certificates must chain to (mTLS).
    #[arg(long, env = "SLUICE_SSL_CLIENT_CA_FILE")]
    pub ssl_client_ca_file: Option<std::path::PathBuf>,
    /// Client certificates: none, requested or required (Kafka's `ssl.client.auth`).
    #[arg(
        long,
        env = "SLUICE_SSL_CLIENT_AUTH",
        value_enum,
        default_value = "none"
    )]
    pub ssl_client_auth: crate::security::tls::ClientAuth,
    /// Kafka's `ssl.principal.mapping.rules`: turns a client certificate's subject into
    /// the principal's name, e.g. `RULE:^CN=([^,]+).*$/$1/,DEFAULT`.
    #[arg(
        long,
        env = "SLUICE_SSL_PRINCIPAL_MAPPING_RULES",
        default_value = "DEFAULT"
    )]
    pub ssl_principal_mapping_rules: String,
    /// How often the certificate, key and CA files are checked for changes.
    #[arg(long, env = "SLUICE_SSL_RELOAD_INTERVAL_MS", default_value_t = 10_000)]
    pub ssl_reload_interval_ms: u64,
    /// SASL mechanisms offered on SASL listeners.
    #[arg(
        long,
        env = "SLUICE_SASL_ENABLED_MECHANISMS",
        value_delimiter = ',',
        default_value = "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    )]
    pub sasl_enabled_mechanisms: Vec<String>,
    /// A file of `USER=PASSWORD` lines (a mounted Secret): users that have no SCRAM
    /// credential yet get one for each SCRAM mechanism at start-up, so a new cluster has
    /// someone who can log in and create the others (`kafka-configs.sh`).
    #[arg(long, env = "SLUICE_SASL_BOOTSTRAP_USERS_FILE")]
    pub sasl_bootstrap_users_file: Option<std::path::PathBuf>,
    /// Longest a SASL login lasts before the client must log in again on the same
    /// connection (KIP-368; Kafka's `connections.max.reauth.ms`); 0: forever.
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,
    /// Delay before a failed login is answered; doubles for each failure in a row
    /// from the same address (Kafka's `connection.failed.authentication.delay.ms`).
    #[arg(
        long,
        env = "SLUICE_FAILED_AUTHENTICATION_DELAY_MS",
        default_value_t = 100
    )]
    pub failed_authentication_delay_ms: u64,
    /// A connection must finish its TLS handshake and SASL login within this long.
    #[arg(
        long,
        env = "SLUICE_AUTHENTICATION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub authentication_timeout_ms: u64,
    /// Whether requests are checked against ACLs: `auto` turns the authorizer on when
    /// any listener authenticates its clients (SASL, or SSL with client certificates).
    #[arg(long, env = "SLUICE_AUTHORIZER", value_enum, default_value = "auto")]
    pub authorizer: AuthorizerMode,
    /// Principals allowed everything, `;`-separated (Kafka's `super.users`), e.g.
    /// `User:admin;User:operator`.
    #[arg(long, env = "SLUICE_SUPER_USERS", value_delimiter = ';')]
    pub super_users: Vec<String>,
    /// Allow a request on a resource no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    #[arg(long, env = "SLUICE_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_everyone_if_no_acl_found: bool,
    /// The listener this broker reaches the other brokers through when it forwards to
    /// them (dead-letter batches to their partition's leader), Kafka's
    /// `inter.broker.listener.name`. Its protocol says whether the forward uses TLS
    /// (`--inter-broker-ssl-ca-file`) and logs in (`--inter-broker-user`). Default: the
    /// first of `--listeners`.
    #[arg(long, env = "SLUICE_INTER_BROKER_LISTENER_NAME")]
    pub inter_broker_listener_name: Option<String>,
    /// The user this broker logs in as on a SASL inter-broker listener, with
    /// SCRAM-SHA-512 (or the first SCRAM mechanism enabled). Its password is its
    /// `USER=PASSWORD` line in `--sasl-bootstrap-users-file`. It needs Write on the
    /// dead-letter topics: make it a super user (`--super-users`).
    #[arg(long, env = "SLUICE_INTER_BROKER_USER")]
    pub inter_broker_user: Option<String>,
    /// PEM bundle of the CAs the other brokers' certificates must chain to on a TLS
    /// inter-broker listener; the name checked is the host each broker advertises on it.
    /// Default: `--ssl-client-ca-file`.
    #[arg(long, env = "SLUICE_INTER_BROKER_SSL_CA_FILE")]
    pub inter_broker_ssl_ca_file: Option<std::path::PathBuf>,
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
        let mut props = match &self.lake_catalog_props_file {
            Some(path) => key_values(path)?,
            None => HashMap::new(),
        };
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

    /// The Kafka listeners to bind (`--listeners`, or one PLAINTEXT listener on
    /// `--listen` advertised as `--advertise`).
    pub fn listener_specs(&self) -> anyhow::Result<Vec<ListenerSpec>> {
        if self.listeners.is_empty() {
            let advertised = match &self.advertise {
                Some(a) => vec![format!("PLAINTEXT://{a}")],
                None => Vec::new(),
            };
            let bind = vec![format!("PLAINTEXT://{}", self.listen)];
            return listener::parse(&bind, &advertised, &[]).map_err(anyhow::Error::msg);
        }
        let specs = listener::parse(
            &self.listeners,
            &self.advertised_listeners,
            &self.listener_security_protocol_map,
        )
        .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(!specs.is_empty(), "--listeners names no listener");
        Ok(specs)
    }

    /// TLS settings from the `--ssl-*` options, or None without a certificate.
    pub fn tls_settings(&self) -> anyhow::Result<Option<TlsSettings>> {
        match (&self.ssl_certificate_file, &self.ssl_key_file) {
            (None, None) => Ok(None),
            (Some(certificate), Some(key)) => Ok(Some(TlsSettings {
                certificate: certificate.clone(),
                key: key.clone(),
                client_ca: self.ssl_client_ca_file.clone(),
                client_auth: self.ssl_client_auth,
            })),
            _ => anyhow::bail!("--ssl-certificate-file and --ssl-key-file go together"),
        }
    }

    pub fn sasl_mechanisms(&self) -> anyhow::Result<Vec<SaslMechanism>> {
        self.sasl_enabled_mechanisms
            .iter()
            .map(|name| {
                SaslMechanism::parse(name.trim()).with_context(|| {
                    format!("SASL mechanism {name:?} is not offered (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)")
                })
            })
            .collect()
    }

    /// `USER=PASSWORD` pairs of `--sasl-bootstrap-users-file`.
    pub fn bootstrap_users(&self) -> anyhow::Result<Vec<(String, String)>> {
        let Some(path) = &self.sasl_bootstrap_users_file else {
            return Ok(Vec::new());
        };
        Ok(key_values(path)?.into_iter().collect())
    }

    /// Whether the authorizer is on (see `--authorizer`).
    pub fn authorizer_enabled(&self) -> anyhow::Result<bool> {
        Ok(match self.authorizer {
            AuthorizerMode::On => true,
            AuthorizerMode::Off => false,
            AuthorizerMode::Auto => self.listener_specs()?.iter().any(|l| {
                l.protocol.uses_sasl()
                    || (l.protocol.uses_tls()
                        && self.ssl_client_auth != crate::security::tls::ClientAuth::None)
            }),
        })
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(10))
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms.max(self.heartbeat_interval_ms * 2))
    }
}

/// The `KEY=VALUE` lines of a file (blank lines and `#` comments skipped).
fn key_values(path: &std::path::Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .with_context(|| format!("{}: a line is not KEY=VALUE", path.display()))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// The table files' S3 settings, from the variables the broker's own S3 storage reads.
const S3_PROPS_FROM_ENV: [(&str, &[&str]); 5] = [
    ("s3.endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
    ("s3.region", &["AWS_REGION", "AWS_DEFAULT_REGION"]),
    ("s3.access-key-id", &["AWS_ACCESS_KEY_ID"]),
    ("s3.secret-access-key", &["AWS_SECRET_ACCESS_KEY"]),
    ("s3.session-token", &["AWS_SESSION_TOKEN"]),
];
