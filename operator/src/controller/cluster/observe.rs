//! Reading a running cluster's figures: each broker's `/metrics` (throughput, schema
//! rejections) and `/v1/lake` (its Iceberg table writers), and the consumer groups'
//! committed offsets against the end offsets (lag).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::build::ClusterModel;
use crate::autoscale::FleetView;
use crate::controller::Context;
use crate::http::{self, request};
use crate::kafka::{partition_lags, topic_lag, AdminClient, AdminError, ClientSecurity};
use crate::lake::{add_tables, TopicTables};
use hyper::Method;

use crate::metrics::{
    add_rejections, labelled_series, series_value, CounterSample, BROKER_CPU_SECONDS,
    BROKER_FETCH_BYTES, BROKER_PARTITION_BYTES, BROKER_PRODUCE_BYTES,
};
use crate::registry::{self, Registration, RegistryError};

/// Most consumer groups whose lag one reconcile reads.
pub const MAX_GROUPS: usize = 200;

/// Where a cluster's figures come from.
#[derive(Clone, Debug)]
pub struct ObserveTarget {
    /// (pod name, `host:port` of its metrics listener) of every broker that should exist.
    pub brokers: Vec<(String, String)>,
    /// The Kafka bootstrap address; `None` while no broker is ready.
    pub bootstrap: Option<String>,
    /// How the operator logs in there (see [`crate::controller::cluster_client`]).
    pub security: ClientSecurity,
    /// Also read what the autoscaler and balancer need: per-partition load, leaders and
    /// the fleet's view of its brokers.
    pub autoscaling: bool,
}

/// What was read. A figure that could not be read is `None`, with the reason in
/// `problems`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub produce_bytes: Option<CounterSample>,
    pub fetch_bytes: Option<CounterSample>,
    /// CPU seconds of each broker process.
    pub cpu_seconds: Option<CounterSample>,
    /// Produce bytes per partition and leader: keys `pod/topic/partition`.
    pub partition_bytes: Option<CounterSample>,
    pub max_consumer_lag: Option<i64>,
    /// Lag (records) and committed offset per (group, topic, partition).
    pub lag: BTreeMap<(String, String, i32), (u64, i64)>,
    /// Leader of every partition: (topic, partition) → node id.
    pub leaders: BTreeMap<(String, i32), i32>,
    /// The brokers as the fleet's metadata shows them.
    pub fleet: Option<FleetView>,
    /// Records rejected or dead-lettered by schema validation, summed over the brokers:
    /// topic → reason → records. `None` when no broker's metrics could be read.
    pub rejections: Option<BTreeMap<String, BTreeMap<String, f64>>>,
    /// The Iceberg tables the brokers write, summed over the brokers by topic. `None`
    /// when no broker's `/v1/lake` could be read.
    pub tables: Option<TopicTables>,
    pub problems: Vec<String>,
}

/// Reads figures of a running cluster, carries out the autoscaler's decisions on it and
/// registers Feeds' schemas with its brokers. The real one talks to the brokers; tests
/// use their own.
pub trait ClusterObserver: Send + Sync {
    fn observe<'a>(&'a self, target: &'a ObserveTarget) -> BoxFuture<'a, Observation>;

    /// Marks broker `node` draining (its partitions move off, nothing new lands on it)
    /// or back in service, through the fleet endpoint of the broker at `metrics_addr`.
    fn set_draining<'a>(
        &'a self,
        metrics_addr: &'a str,
        node: i32,
        draining: bool,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Moves leadership of each (topic, partition) to the broker named with it; returns
    /// the moves the cluster refused, with reasons.
    fn move_partitions<'a>(
        &'a self,
        bootstrap: &'a str,
        security: &'a ClientSecurity,
        moves: &'a [(String, i32, i32)],
    ) -> BoxFuture<'a, Result<Vec<String>, String>>;

    /// Registers a schema (and its subject's compatibility) through the registry API of
    /// the broker at `http_addr` (its metrics listener); the schema's id.
    fn register_schema<'a>(
        &'a self,
        http_addr: &'a str,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<i32, RegistryError>>;
}

/// (pod name, address of its HTTP listener: metrics, fleet endpoint, schema registry)
/// of brokers `0..replicas`.
pub async fn broker_http_addresses(
    ctx: &Context,
    model: &ClusterModel<'_>,
    replicas: i32,
) -> Vec<(String, String)> {
    let mut brokers = Vec::new();
    for i in 0..replicas {
        let addr = format!("{}:{}", model.pod_host(i), model.metrics_port());
        brokers.push((
            format!("{}-{i}", model.broker_name()),
            ctx.address(&addr).await,
        ));
    }
    brokers
}

/// Milliseconds on a monotonic clock since the first call.
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Scrapes brokers over HTTP and reads lag through the Kafka admin protocol.
pub struct BrokerObserver {
    pub timeout: Duration,
}

impl ClusterObserver for BrokerObserver {
    fn observe<'a>(&'a self, target: &'a ObserveTarget) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let mut obs = Observation::default();
            let http = http::client();
            let mut produce = BTreeMap::new();
            let mut fetch = BTreeMap::new();
            let mut cpu = BTreeMap::new();
            let mut partitions = BTreeMap::new();
            let mut rejections = None;
            let mut tables = None;
            let at_ms = monotonic_ms();
            for (pod, addr) in &target.brokers {
                match request(
                    &http,
                    Method::GET,
                    &format!("http://{addr}/metrics"),
                    self.timeout,
                )
                .await
                {
                    Ok(text) => {
                        add_rejections(&text, rejections.get_or_insert_with(BTreeMap::new));
                        if let Some(v) = series_value(&text, BROKER_PRODUCE_BYTES) {
                            produce.insert(pod.clone(), v);
                        }
                        if let Some(v) = series_value(&text, BROKER_FETCH_BYTES) {
                            fetch.insert(pod.clone(), v);
                        }
                        if let Some(v) = series_value(&text, BROKER_CPU_SECONDS) {
                            cpu.insert(pod.clone(), v);
                        }
                        if target.autoscaling {
                            for (labels, v) in labelled_series(&text, BROKER_PARTITION_BYTES) {
                                if let (Some(t), Some(p)) =
                                    (labels.get("topic"), labels.get("partition"))
                                {
                                    partitions.insert(format!("{pod}/{t}/{p}"), v);
                                }
                            }
                        }
                        match request(
                            &http,
                            Method::GET,
                            &format!("http://{addr}/v1/lake"),
                            self.timeout,
                        )
                        .await
                        .and_then(|body| {
                            add_tables(pod, &body, tables.get_or_insert_with(BTreeMap::new))
                        }) {
                            Ok(()) => {}
                            Err(e) => obs.problems.push(format!("lake writers of {pod}: {e}")),
                        }
                        if target.autoscaling && obs.fleet.is_none() {
                            match request(
                                &http,
                                Method::GET,
                                &format!("http://{addr}/v1/cluster"),
                                self.timeout,
                            )
                            .await
                            .and_then(|body| {
                                serde_json::from_str::<FleetView>(&body).map_err(|e| e.to_string())
                            }) {
                                Ok(view) => obs.fleet = Some(view),
                                Err(e) => obs.problems.push(format!("fleet view of {pod}: {e}")),
                            }
                        }
                    }
                    Err(e) => obs.problems.push(format!("metrics of {pod}: {e}")),
                }
            }
            let sample = |values: BTreeMap<String, f64>| {
                (!values.is_empty()).then_some(CounterSample { at_ms, values })
            };
            obs.rejections = rejections;
            obs.tables = tables;
            obs.produce_bytes = sample(produce);
            obs.fetch_bytes = sample(fetch);
            obs.cpu_seconds = sample(cpu);
            obs.partition_bytes = if target.autoscaling {
                Some(CounterSample {
                    at_ms,
                    values: partitions,
                })
            } else {
                None
            };
            if let Some(bootstrap) = &target.bootstrap {
                match read_offsets(
                    bootstrap,
                    &target.security,
                    self.timeout,
                    target.autoscaling,
                )
                .await
                {
                    Ok(offsets) => {
                        obs.max_consumer_lag = offsets.max_lag;
                        obs.lag = offsets.lag;
                        obs.leaders = offsets.leaders;
                    }
                    Err(e) => obs.problems.push(format!("consumer lag: {e}")),
                }
            }
            obs
        })
    }

    fn set_draining<'a>(
        &'a self,
        metrics_addr: &'a str,
        node: i32,
        draining: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let method = if draining {
                Method::POST
            } else {
                Method::DELETE
            };
            let url = format!("http://{metrics_addr}/v1/nodes/{node}/drain");
            request(&http::client(), method, &url, self.timeout)
                .await
                .map(|_| ())
        })
    }

    fn move_partitions<'a>(
        &'a self,
        bootstrap: &'a str,
        security: &'a ClientSecurity,
        moves: &'a [(String, i32, i32)],
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            let mut admin = AdminClient::connect(bootstrap, self.timeout, security)
                .await
                .map_err(|e| e.to_string())?;
            admin
                .move_partitions(moves)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn register_schema<'a>(
        &'a self,
        http_addr: &'a str,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<i32, RegistryError>> {
        Box::pin(async move {
            registry::register(&http::client(), http_addr, registration, self.timeout).await
        })
    }
}

/// Consumer groups' offsets against the end offsets, and (when asked) every
/// partition's leader.
#[derive(Debug, Default)]
struct Offsets {
    max_lag: Option<i64>,
    lag: BTreeMap<(String, String, i32), (u64, i64)>,
    leaders: BTreeMap<(String, i32), i32>,
}

async fn read_offsets(
    bootstrap: &str,
    security: &ClientSecurity,
    timeout: Duration,
    with_leaders: bool,
) -> Result<Offsets, AdminError> {
    let mut admin = AdminClient::connect(bootstrap, timeout, security).await?;
    let mut out = Offsets::default();
    if with_leaders {
        for topic in admin.describe_all_topics().await? {
            for (partition, leader) in &topic.leaders {
                out.leaders
                    .insert((topic.name.clone(), *partition), *leader);
            }
        }
    }
    let groups = admin.list_groups().await?;
    let mut end_offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for group in groups.iter().take(MAX_GROUPS) {
        let offsets = admin.committed_offsets(group).await?;
        let topics: std::collections::BTreeSet<String> =
            offsets.offsets.keys().map(|(t, _)| t.clone()).collect();
        for topic in topics {
            if !end_offsets.contains_key(&topic) {
                let ends = match admin.describe_topic(&topic).await? {
                    Some(description) => admin.end_offsets(&description).await?,
                    None => BTreeMap::new(),
                };
                end_offsets.insert(topic.clone(), ends);
            }
            let ends = &end_offsets[&topic];
            if let Some(lag) = topic_lag(&offsets, &topic, ends) {
                out.max_lag = Some(out.max_lag.map_or(lag, |m: i64| m.max(lag)));
            }
            for (partition, lag, committed) in partition_lags(&offsets, &topic, ends) {
                out.lag.insert(
                    (group.clone(), topic.clone(), partition),
                    (lag as u64, committed),
                );
            }
        }
    }
    Ok(out)
}

/// The largest lag of any consumer group on any topic: `None` when no group has
/// committed offsets.
pub async fn max_consumer_lag(
    bootstrap: &str,
    security: &ClientSecurity,
    timeout: Duration,
) -> Result<Option<i64>, AdminError> {
    Ok(read_offsets(bootstrap, security, timeout, false)
        .await?
        .max_lag)
}
