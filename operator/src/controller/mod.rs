//! The two controllers and what they share: the [`Context`], backoff, Events, status
//! writes; the reconcile wrapper and error policy are in [`reconcile`].

pub mod cluster;
pub mod cluster_client;
pub mod feed;
pub mod reconcile;
pub mod resolve;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::runtime::Controller;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use tracing::{info, warn};

use crate::crd::{Feed, SecurityLakeCluster};
use crate::lake::{TableFigures, TopicTables};
use crate::metrics::{CounterSample, Metrics};
use crate::provision::Providers;
use reconcile::{error_policy, log_outcome};

/// Field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "sluice-operator";

/// Settings of the operator process (flags of `sluice-operator run`).
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Broker image for clusters that name none.
    pub broker_image: String,
    /// DNS domain of the Kubernetes cluster, for the brokers' advertised names.
    pub cluster_domain: String,
    /// Namespace the operator runs in: brokers' NetworkPolicies admit the operator's pods
    /// from there. `None`: from any namespace.
    pub operator_namespace: Option<String>,
    /// Timeout of each Kafka admin and metrics call.
    pub io_timeout: Duration,
    /// How often a healthy object is reconciled again to refresh its figures.
    pub refresh_interval: Duration,
    /// Resolve in-cluster Service names through the API (an operator running outside
    /// the cluster): see [`resolve`].
    pub resolve_via_api: bool,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            broker_image: format!(
                "ghcr.io/sluice-dev/sluice-broker:{}",
                env!("CARGO_PKG_VERSION")
            ),
            cluster_domain: "cluster.local".into(),
            operator_namespace: None,
            io_timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(30),
            resolve_via_api: false,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// Reads brokers' figures (metrics, consumer lag); replaced in tests.
    pub observer: Arc<dyn cluster::ClusterObserver>,
    /// Cloud provisioning per `spec.provider`; replaced in tests.
    pub providers: Providers,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Previous counter samples per cluster, for rates.
    samples: Mutex<HashMap<String, Samples>>,
    /// The last scale event written per cluster: the object a reconcile reads may come
    /// from a watch cache that has not seen the previous status write yet, and the
    /// status apply would then drop the event (found by the e2e suite).
    scale_events: Mutex<HashMap<String, crate::crd::cluster::ScaleEvent>>,
    /// The autoscaler's memory per cluster.
    autoscaling: Mutex<HashMap<String, cluster::apply_autoscale::Memory>>,
    /// Schema rejections per cluster from its last scrape (topic → reason → records):
    /// the cluster reconciler scrapes, the Feed reconciler reports.
    rejections: Scraped<BTreeMap<String, f64>>,
    /// The brokers' Iceberg table writers per cluster from its last scrape, by topic.
    tables: Scraped<TableFigures>,
}

/// Records rejected or dead-lettered per topic and reason.
pub type TopicRejections = BTreeMap<String, BTreeMap<String, f64>>;

/// Figures per topic from each cluster's last scrape of its brokers, kept for the
/// cluster's Feeds.
struct Scraped<V>(Mutex<HashMap<String, BTreeMap<String, V>>>);

impl<V: Clone + Default> Scraped<V> {
    fn new() -> Self {
        Scraped(Mutex::new(HashMap::new()))
    }

    fn record(&self, cluster: &str, by_topic: BTreeMap<String, V>) {
        let mut all = self.0.lock().expect("scraped figures lock");
        all.insert(cluster.to_string(), by_topic);
    }

    /// `topic`'s figures (the default when the scrape found none); `None` before the
    /// cluster's first scrape.
    fn topic(&self, cluster: &str, topic: &str) -> Option<V> {
        let all = self.0.lock().expect("scraped figures lock");
        Some(all.get(cluster)?.get(topic).cloned().unwrap_or_default())
    }

    fn forget(&self, cluster: &str) {
        self.0.lock().expect("scraped figures lock").remove(cluster);
    }
}

/// Counters kept between two reconciles of one object.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub produce: Option<CounterSample>,
    pub fetch: Option<CounterSample>,
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        metrics: Metrics,
        observer: Arc<dyn cluster::ClusterObserver>,
    ) -> Context {
        let recorder = Recorder::new(client.clone(), Reporter::from(MANAGER));
        let providers = Providers::new(&metrics);
        Context {
            client,
            config,
            metrics,
            recorder,
            observer,
            providers,
            failures: Mutex::new(HashMap::new()),
            samples: Mutex::new(HashMap::new()),
            scale_events: Mutex::new(HashMap::new()),
            autoscaling: Mutex::new(HashMap::new()),
            rejections: Scraped::new(),
            tables: Scraped::new(),
        }
    }

    /// The same context with other cloud providers (tests).
    pub fn with_providers(mut self, providers: Providers) -> Context {
        self.providers = providers;
        self
    }

    /// Publishes an Event about `obj`. A failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "publishing an Event failed");
        }
    }

    /// Publishes a Normal Event about `obj` listing `items`, when there are any.
    pub async fn event_list<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        items: &[String],
    ) {
        if !items.is_empty() {
            self.event(obj, EventType::Normal, reason, items.join("; "))
                .await;
        }
    }

    /// The address to connect to for `addr` (`host:port`): `addr` itself, or with
    /// `--resolve-via-api` an in-cluster Service name resolved through the
    /// API (see [`resolve`]).
    pub async fn address(&self, addr: &str) -> String {
        if self.config.resolve_via_api {
            resolve::resolve(&self.client, &self.config.cluster_domain, addr).await
        } else {
            addr.to_string()
        }
    }

    /// Takes the previous samples of `key` and stores `next` in their place.
    pub fn swap_samples(&self, key: &str, next: Samples) -> Samples {
        let mut samples = self.samples.lock().expect("samples lock");
        samples.insert(key.to_string(), next).unwrap_or_default()
    }

    /// The scale event to report: `new` (remembered) when the reconcile scaled, else the
    /// last one this process wrote for `key`, if any.
    pub fn scale_event(
        &self,
        key: &str,
        new: Option<crate::crd::cluster::ScaleEvent>,
    ) -> Option<crate::crd::cluster::ScaleEvent> {
        let mut events = self.scale_events.lock().expect("scale events lock");
        match new {
            Some(event) => {
                events.insert(key.to_string(), event.clone());
                Some(event)
            }
            None => events.get(key).cloned(),
        }
    }

    /// Runs `f` on the autoscaler memory of cluster `key`.
    pub fn autoscaling<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut cluster::apply_autoscale::Memory) -> T,
    ) -> T {
        let mut all = self.autoscaling.lock().expect("autoscaling lock");
        f(all.entry(key.to_string()).or_default())
    }

    /// Keeps the schema rejections scraped from cluster `key` for its Feeds.
    pub fn record_rejections(&self, key: &str, rejections: TopicRejections) {
        self.rejections.record(key, rejections);
    }

    /// Rejections by reason of `topic` on cluster `key`, from the cluster's last scrape;
    /// `None` before any scrape.
    pub fn rejections(&self, key: &str, topic: &str) -> Option<BTreeMap<String, f64>> {
        self.rejections.topic(key, topic)
    }

    /// Keeps the table writers scraped from cluster `key` for its Feeds.
    pub fn record_tables(&self, key: &str, tables: TopicTables) {
        self.tables.record(key, tables);
    }

    /// The table of `topic` on cluster `key` summed over the brokers that write it (none:
    /// empty figures), from the cluster's last scrape; `None` before any scrape.
    pub fn tables(&self, key: &str, topic: &str) -> Option<TableFigures> {
        self.tables.topic(key, topic)
    }

    /// Forgets the samples of a deleted object.
    pub fn forget(&self, key: &str) {
        self.samples.lock().expect("samples lock").remove(key);
        self.scale_events
            .lock()
            .expect("scale events lock")
            .remove(key);
        self.failures.lock().expect("failures lock").remove(key);
        self.autoscaling
            .lock()
            .expect("autoscaling lock")
            .remove(key);
        self.rejections.forget(key);
        self.tables.forget(key);
    }

    /// Records a success: the backoff of `key` starts over.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }
}

/// 5 s after the first failure, doubling, at most 5 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

/// `namespace/name` of an object: the key of its samples and backoff.
pub fn object_key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Server-side applies `status` to the status subresource of `obj` (of kind `kind`).
pub async fn apply_status<K>(
    api: &Api<K>,
    obj: &K,
    kind: &'static str,
    status: &impl Serialize,
) -> crate::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use crate::error::KubeContext;
    use kube::api::{Patch, PatchParams};
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let name = obj.name_any();
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .kube("apply status of", kind, &name)?;
    Ok(())
}

/// Runs both controllers until SIGTERM/SIGINT.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let clusters: Api<SecurityLakeCluster> = Api::all(client.clone());
    let feeds: Api<Feed> = Api::all(client.clone());
    let watch = WatcherConfig::default();

    let cluster_controller = Controller::new(clusters.clone(), watch.clone())
        .owns(Api::<StatefulSet>::all(client.clone()), watch.clone())
        .owns(Api::<Service>::all(client.clone()), watch.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), watch.clone())
        .owns(Api::<ServiceAccount>::all(client.clone()), watch.clone())
        .owns(
            Api::<PodDisruptionBudget>::all(client.clone()),
            watch.clone(),
        )
        .owns(Api::<NetworkPolicy>::all(client.clone()), watch.clone())
        .shutdown_on_signal()
        .run(
            cluster::reconcile,
            error_policy::<SecurityLakeCluster>,
            ctx.clone(),
        )
        .for_each(log_outcome::<SecurityLakeCluster, _, _>);

    let feed_controller = Controller::new(feeds, watch.clone());
    let feed_store = feed_controller.store();
    let feed_controller = feed_controller
        // A cluster change (created, became ready, deleted) wakes the feeds that name it.
        .watches(clusters, watch, move |cluster: SecurityLakeCluster| {
            feed::feeds_of_cluster(&feed_store.state(), &cluster)
        })
        .shutdown_on_signal()
        .run(feed::reconcile, error_policy::<Feed>, ctx)
        .for_each(log_outcome::<Feed, _, _>);

    info!("controllers started");
    futures::join!(cluster_controller, feed_controller);
    info!("controllers stopped");
}
