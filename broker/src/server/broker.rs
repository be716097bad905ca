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
use crate::coordination::producer_ids::ProducerIdAllocator;
use crate::coordination::topics::TopicAdmin;
use crate::coordination::MetadataStore;
use crate::governance::{DeadLetterWriter, SchemaRegistry};
use crate::lake::{LakeStatus, SharedCatalog};
use crate::metrics::Metrics;
use crate::storage::{LogEngine, Store};

pub struct Broker {
    pub args: BrokerArgs,
    pub advertised_host: String,
    pub advertised_port: i32,
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
        advertised: (String, i32),
        metrics: Arc<Metrics>,
        store: Store,
    ) -> anyhow::Result<Arc<Self>> {
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
        let owner = format!("{}/{}", args.node_id, engine.incarnation());
        Ok(Arc::new(Broker {
            advertised_host: advertised.0,
            advertised_port: advertised.1,
            store: store.clone(),
            topics: TopicAdmin::new(metadata.clone(), engine.clone()),
            engine,
            metadata,
            controller,
            producer_ids: ProducerIdAllocator::new(store, owner),
            groups: std::sync::OnceLock::new(),
            metrics,
            schemas,
            dead_letters: DeadLetterWriter::default(),
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
