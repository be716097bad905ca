//! The state one broker process shares between its connections, handlers and background
//! tasks. [`super::startup`] opens it and joins the cluster; nothing here imports the rest
//! of `server`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
#[cfg(debug_assertions)]
use tracing::warn;

use crate::config::BrokerArgs;
use crate::coordination::controller::{Controller, ControllerConfig};
use crate::coordination::groups::GroupCoordinator;
use crate::coordination::metadata::Endpoint;
use crate::coordination::producer_ids::ProducerIdAllocator;
use crate::coordination::topics::TopicAdmin;
use crate::coordination::MetadataStore;
use crate::governance::{DeadLetterWriter, SchemaRegistry};
use crate::lake::{LakeStatus, SharedCatalog};
use crate::metrics::Metrics;
use crate::security::authorizer::Authorizer;
use crate::security::credentials::bootstrap;
use crate::security::login_guard::LoginGuard;
use crate::security::throttle::Throttler;
use crate::security::tls::TlsConfig;
use crate::security::{Security, SecurityStore};
use crate::storage::{LogEngine, StorageError, Store};
use sluice_auth::mapping::PrincipalMapper;

pub struct Broker {
    pub args: BrokerArgs,
    /// Where clients reach this broker, by listener name; the first is its main address.
    pub advertised: Vec<(String, Endpoint)>,
    /// Credentials, TLS and the login guard of the listeners.
    pub security: Security,
    pub store: Store,
    pub engine: Arc<LogEngine>,
    pub metadata: Arc<MetadataStore>,
    pub controller: Controller,
    pub producer_ids: ProducerIdAllocator,
    pub groups: std::sync::OnceLock<Arc<GroupCoordinator>>,
    /// Topic administration, one change at a time.
    pub topics: TopicAdmin,
    pub metrics: Arc<Metrics>,
    /// The schema registry this broker serves and validates produce batches with.
    pub schemas: Arc<SchemaRegistry>,
    pub dead_letters: DeadLetterWriter,
    /// What this broker's lake writers report (`GET /v1/lake`).
    pub lake_status: LakeStatus,
    /// The Iceberg catalog (`--lake-catalog`) of the lake writers and evidence reports.
    pub lake_catalog: Arc<SharedCatalog>,
    ready: AtomicBool,
    /// Serialises leadership changes (take-over, release, close) on this broker.
    pub(crate) leadership: tokio::sync::Mutex<()>,
}

impl Broker {
    /// Opens storage as a new incarnation and loads cluster metadata: a broker that has
    /// not joined the cluster yet and leads nothing.
    pub(super) async fn open(
        args: BrokerArgs,
        advertised: Vec<(String, Endpoint)>,
        metrics: Arc<Metrics>,
        store: Store,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(!advertised.is_empty(), "a broker needs a listener");
        // Before anything is opened: settings that cannot reach the other brokers stop
        // the start-up here, not every forward later.
        let inter_broker = args.inter_broker().context("inter-broker settings")?;
        #[cfg(debug_assertions)]
        let store = match &args.inject_faults {
            Some(faults) => {
                warn!(?faults, "injecting object store faults");
                store.with_faults(faults.clone())
            }
            None => store,
        };
        let engine = LogEngine::open(store.clone(), args.engine_config(), metrics.clone())
            .await
            .context("starting the log engine")?;
        let metadata = Arc::new(
            crate::coordination::metadata::open(store.clone())
                .await
                .context("loading cluster metadata")?,
        );
        let controller = Controller::new(
            store.clone(),
            metadata.clone(),
            args.node_id,
            engine.incarnation(),
            ControllerConfig {
                session_timeout: args.session_timeout(),
                max_moves: args.max_partition_moves.max(1),
                wal_gc_interval: Duration::from_millis(args.wal_gc_interval_ms.max(100)),
            },
        );
        let schemas = Arc::new(
            SchemaRegistry::open(store.clone())
                .await
                .context("loading the schema registry")?,
        );
        let security = open_security(&args, store.clone()).await?;
        let owner = format!("{}/{}", args.node_id, engine.incarnation());
        Ok(Arc::new(Broker {
            advertised,
            security,
            store: store.clone(),
            topics: TopicAdmin::new(metadata.clone(), engine.clone()),
            engine,
            metadata,
            controller,
            producer_ids: ProducerIdAllocator::new(store, owner),
            groups: std::sync::OnceLock::new(),
            metrics,
            schemas,
            dead_letters: DeadLetterWriter::new(inter_broker),
            lake_status: LakeStatus::default(),
            lake_catalog: Arc::new(SharedCatalog::new(
                args.lake_catalog()
                    .context("configuring the lake catalog")?,
            )),
            ready: AtomicBool::new(false),
            leadership: tokio::sync::Mutex::new(()),
            args,
        }))
    }

    /// The group coordinator (set once the broker has started).
    pub fn groups(&self) -> &Arc<GroupCoordinator> {
        self.groups
            .get()
            .expect("group coordinator starts with the broker")
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks the broker ready once it leads what it was assigned.
    pub(super) fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// The credential store (with the bootstrap users added), TLS and SASL settings.
async fn open_security(args: &BrokerArgs, store: Store) -> anyhow::Result<Security> {
    let credentials = SecurityStore::open(store)
        .await
        .context("loading the security state")?;
    let users = args.bootstrap_users()?;
    if !users.is_empty() {
        credentials
            .update_if(|s| Ok::<_, StorageError>(bootstrap(s, &users).then_some(())))
            .await
            .context("adding the bootstrap users")?;
    }
    let tls = match args.tls_settings()? {
        Some(settings) => Some(Arc::new(
            TlsConfig::load(settings).context("loading the TLS certificate")?,
        )),
        None => None,
    };
    Ok(Security {
        store: credentials,
        login_guard: LoginGuard::new(Duration::from_millis(args.failed_authentication_delay_ms)),
        principal_mapper: PrincipalMapper::parse(&args.ssl_principal_mapping_rules)
            .context("--ssl-principal-mapping-rules")?,
        sasl_mechanisms: args.sasl_mechanisms()?,
        reauth: (args.connections_max_reauth_ms > 0)
            .then(|| Duration::from_millis(args.connections_max_reauth_ms)),
        tls,
        authentication_timeout: Duration::from_millis(args.authentication_timeout_ms.max(100)),
        throttler: Throttler::default(),
        authorizer: Authorizer {
            enabled: args.authorizer_enabled()?,
            super_users: args
                .super_users
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            allow_everyone_if_no_acl_found: args.allow_everyone_if_no_acl_found,
        },
    })
}
