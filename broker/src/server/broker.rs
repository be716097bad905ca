//! Shared broker state and its lifecycle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::config::BrokerArgs;
use crate::coordination::controller::{Controller, ControllerConfig};
use crate::coordination::groups::offsets::OFFSETS_TOPIC;
use crate::coordination::groups::{ConsumerGroupTiming, GroupCoordinator};
use crate::coordination::placement::{self, NoEligibleBroker};
use crate::coordination::producer_ids::ProducerIdAllocator;
use crate::coordination::{topic_config, MetadataStore, TopicMetadata};
use crate::metrics::Metrics;
use crate::storage::{LogEngine, StorageError, Store};

/// Exit status of a broker whose incarnation was fenced or declared dead: it must be
/// restarted (as a new incarnation) by its supervisor (EX_TEMPFAIL).
pub const EXIT_FENCED: i32 = 75;

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
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// Serialises topic administration so metadata and engine stay in step.
    pub admin: tokio::sync::Mutex<()>,
    /// Serialises leadership changes (take-over, release, close) on this broker.
    pub(crate) leadership: tokio::sync::Mutex<()>,
}

impl Broker {
    /// Opens storage as a new incarnation, joins the cluster (registration, first
    /// heartbeat, a controller round) and takes over the partitions assigned to it.
    pub async fn start(
        args: BrokerArgs,
        advertised: (String, i32),
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let store = Store::from_url(&args.storage, metrics.clone()).context("opening storage")?;
        Self::start_with_store(args, advertised, metrics, store).await
    }

    /// [`Broker::start`] on an already opened store (the deterministic simulation gives
    /// each simulated host its own view of one in-memory bucket).
    pub async fn start_with_store(
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
            MetadataStore::open(store.clone())
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
        let owner = format!("{}/{}", args.node_id, engine.incarnation());
        let broker = Arc::new(Broker {
            advertised_host: advertised.0,
            advertised_port: advertised.1,
            store: store.clone(),
            engine,
            metadata,
            controller,
            producer_ids: ProducerIdAllocator::new(store, owner),
            groups: std::sync::OnceLock::new(),
            metrics,
            ready: AtomicBool::new(false),
            admin: tokio::sync::Mutex::new(()),
            leadership: tokio::sync::Mutex::new(()),
            args,
        });
        broker
            .controller
            .register(&broker.advertised_host, broker.advertised_port)
            .await
            .context("registering this broker")?;
        super::fleet::beat(&broker, 0)
            .await
            .context("first heartbeat")?;
        broker
            .controller
            .tick()
            .await
            .context("first controller round")?;
        // The offsets topic is created on the first FindCoordinator, when the fleet has
        // usually come up, so group coordinators spread over it; its id is fixed by the
        // cluster id so the coordinator knows it before it exists.
        let meta = broker.metadata.current();
        let (offsets_id, offsets_partitions) = match meta.topics.get(OFFSETS_TOPIC) {
            Some(t) => (t.id, t.partitions.len()),
            None => (
                offsets_topic_id(&meta.cluster_id),
                broker.args.offsets_topic_partitions.max(1) as usize,
            ),
        };
        let groups = GroupCoordinator::new(
            broker.engine.clone(),
            offsets_id,
            offsets_partitions,
            ConsumerGroupTiming {
                session_timeout: Duration::from_millis(
                    broker.args.group_consumer_session_timeout_ms,
                ),
                heartbeat_interval: Duration::from_millis(
                    broker.args.group_consumer_heartbeat_interval_ms,
                ),
            },
        );
        let _ = broker.groups.set(groups);
        super::fleet::reconcile(&broker)
            .await
            .context("taking over assigned partitions")?;
        broker.ready.store(true, Ordering::SeqCst);
        Ok(broker)
    }

    /// The group coordinator (set once the broker has started).
    pub fn groups(&self) -> &Arc<GroupCoordinator> {
        self.groups
            .get()
            .expect("group coordinator starts with the broker")
    }

    /// Creates `__consumer_offsets` when groups first need it. Offsets are never
    /// deleted by time: the coordinator compacts them itself.
    pub async fn ensure_offsets_topic(&self) -> Result<TopicMetadata, CreateTopicError> {
        if let Some(t) = self.metadata.current().topics.get(OFFSETS_TOPIC) {
            return Ok(t.clone());
        }
        let groups = self.groups();
        let configs = [(topic_config::RETENTION_MS.to_string(), "-1".to_string())].into();
        match self
            .create_topic_with_id(
                OFFSETS_TOPIC,
                groups.offsets_topic_id(),
                groups.offsets_partitions() as i32,
                configs,
            )
            .await
        {
            Err(CreateTopicError::Exists) => {
                // The version that said so may be newer than this broker's view (found
                // by the simulation, seed 1021: indexing it panicked).
                if !self.metadata.current().topics.contains_key(OFFSETS_TOPIC) {
                    self.metadata.refresh(true).await?;
                }
                let meta = self.metadata.current();
                meta.topics
                    .get(OFFSETS_TOPIC)
                    .cloned()
                    .ok_or(CreateTopicError::Exists)
            }
            other => other,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Creates a topic in metadata, its partitions spread over the live brokers, and
    /// takes over the ones assigned here (the others' leaders see the new version).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<TopicMetadata, CreateTopicError> {
        self.create_topic_with_id(name, Uuid::new_v4(), partitions, configs)
            .await
    }

    /// [`Broker::create_topic`] with a given topic id.
    pub async fn create_topic_with_id(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<TopicMetadata, CreateTopicError> {
        let _admin = self.admin.lock().await;
        let topic = self
            .metadata
            .update(|m| {
                if m.topics.contains_key(name) {
                    return Err(CreateTopicError::Exists);
                }
                let t = TopicMetadata {
                    id,
                    partitions: placement::place_new(m, name, partitions as usize)?,
                    configs: configs.clone(),
                };
                m.topics.insert(name.to_string(), t.clone());
                Ok(t)
            })
            .await?;
        if self.groups.get().is_some() {
            // The leaders elsewhere see the new version; the lead loop retries ours.
            if let Err(e) = super::fleet::reconcile(self).await {
                warn!(topic = name, error = %format!("{e:#}"), "could not take over the new partitions yet");
            }
        }
        info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    /// Auto-creation on Metadata, when allowed.
    pub async fn auto_create(&self, name: &str) -> Result<(), CreateTopicError> {
        topic_config::validate_topic_name(name).map_err(CreateTopicError::Invalid)?;
        match self
            .create_topic(name, self.args.default_partitions, Default::default())
            .await
        {
            Ok(_) | Err(CreateTopicError::Exists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Enforces retention on every partition led here, once.
    pub async fn enforce_retention(&self) {
        let meta = self.metadata.current();
        for (name, t) in &meta.topics {
            let s = topic_config::settings(&t.configs);
            for i in 0..t.partitions.len() as i32 {
                let Some(part) = self.engine.partition(t.id, i) else {
                    continue;
                };
                if let Err(e) = self
                    .engine
                    .enforce_retention(&part, s.retention_ms, s.retention_bytes, now_ms())
                    .await
                {
                    warn!(topic = %name, partition = i, error = %e, "retention failed; next round retries");
                }
            }
        }
    }
}

/// The id of the offsets topic of cluster `cluster_id`.
fn offsets_topic_id(cluster_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{cluster_id}/{OFFSETS_TOPIC}").as_bytes(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    #[error("topic already exists")]
    Exists,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    NoBroker(#[from] NoEligibleBroker),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Runs a broker until SIGTERM or SIGINT, then hands its partitions over and returns.
/// Exits the process with [`EXIT_FENCED`] if another broker fences this incarnation.
pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding Kafka listener {}", args.listen))?;
    let bound = listener.local_addr()?;
    let advertised = match &args.advertise {
        Some(a) => {
            let (h, p) = a
                .rsplit_once(':')
                .with_context(|| format!("--advertise {a:?} is not HOST:PORT"))?;
            (h.to_string(), p.parse::<i32>().context("advertised port")?)
        }
        // Clients connect to what Metadata says: an unspecified address would send them
        // to 0.0.0.0, which only works on this host.
        None if bound.ip().is_unspecified() => anyhow::bail!(
            "--listen {} binds every interface: give --advertise HOST:PORT for clients",
            args.listen
        ),
        None => (bound.ip().to_string(), bound.port() as i32),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let http_state = super::http::HttpState::default();
    let http = super::http::serve(
        args.metrics_listen,
        metrics.clone(),
        http_state.clone(),
        stop_rx.clone(),
    )
    .await
    .context("binding metrics listener")?;
    info!(listen = %bound, storage = %args.storage, node = args.node_id, "starting sluice-broker");
    let broker = Broker::start(args, advertised, metrics).await?;
    http_state.set_broker(broker.clone());
    info!(
        incarnation = broker.engine.incarnation(),
        topics = broker.metadata.current().topics.len(),
        partitions = broker.engine.partitions().len(),
        controller = broker.controller.is_controller(),
        "ready"
    );

    let group_timers = broker.groups().start_timers(stop_rx.clone());
    let (fleet, fenced) = super::fleet::start(broker.clone(), stop_rx.clone());
    let retention = {
        let broker = broker.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(broker.args.retention_check_interval_ms.max(10));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => broker.enforce_retention().await,
                    _ = stop.changed() => return,
                }
            }
        })
    };
    let acceptor = {
        let broker = broker.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, peer)) => {
                            let _ = socket.set_nodelay(true);
                            tokio::spawn(super::connection::serve(broker.clone(), socket, peer));
                        }
                        Err(e) => warn!(error = %e, "accept failed"),
                    },
                    _ = stop.changed() => return,
                }
            }
        })
    };

    tokio::select! {
        _ = wait_for_signal() => {}
        reason = fenced => {
            error!(reason = %reason.unwrap_or_default(), "this incarnation is fenced: exiting so it restarts as a new one");
            std::process::exit(EXIT_FENCED);
        }
    }
    info!("shutting down: handing partitions over");
    stop_tx.send_replace(true);
    let _ = acceptor.await;
    let _ = retention.await;
    let _ = group_timers.await;
    for t in fleet {
        let _ = t.await;
    }
    let handed_over = super::fleet::hand_over_all(&broker).await;
    if let Err(e) = broker.engine.shutdown().await {
        error!(error = %e, "shutdown checkpoint failed; the WAL still holds every acknowledged record");
        return Err(e.into());
    }
    if let Err(e) = handed_over {
        error!(error = %e, "could not hand every partition over; they fail over instead");
    }
    let _ = http.await;
    info!("stopped cleanly");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
