//! Reading a running cluster's figures: each broker's `/metrics` (throughput) and the
//! consumer groups' committed offsets against the end offsets (lag).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use crate::kafka::{topic_lag, AdminClient, AdminError};
use crate::metrics::{series_value, CounterSample, BROKER_FETCH_BYTES, BROKER_PRODUCE_BYTES};

/// Most consumer groups whose lag one reconcile reads.
pub const MAX_GROUPS: usize = 200;

/// Where a cluster's figures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserveTarget {
    /// (pod name, `host:port` of its metrics listener) of every broker that should exist.
    pub brokers: Vec<(String, String)>,
    /// The Kafka bootstrap address; `None` while no broker is ready.
    pub bootstrap: Option<String>,
}

/// What was read. A figure that could not be read is `None`, with the reason in
/// `problems`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub produce_bytes: Option<CounterSample>,
    pub fetch_bytes: Option<CounterSample>,
    pub max_consumer_lag: Option<i64>,
    pub problems: Vec<String>,
}

/// Reads figures of a running cluster. The real one talks to the brokers; tests use
/// their own.
pub trait ClusterObserver: Send + Sync {
    fn observe<'a>(&'a self, target: &'a ObserveTarget) -> BoxFuture<'a, Observation>;
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
            let http =
                HttpClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
            let mut produce = BTreeMap::new();
            let mut fetch = BTreeMap::new();
            let at_ms = monotonic_ms();
            for (pod, addr) in &target.brokers {
                match scrape(&http, addr, self.timeout).await {
                    Ok(text) => {
                        if let Some(v) = series_value(&text, BROKER_PRODUCE_BYTES) {
                            produce.insert(pod.clone(), v);
                        }
                        if let Some(v) = series_value(&text, BROKER_FETCH_BYTES) {
                            fetch.insert(pod.clone(), v);
                        }
                    }
                    Err(e) => obs.problems.push(format!("metrics of {pod}: {e}")),
                }
            }
            if !produce.is_empty() {
                obs.produce_bytes = Some(CounterSample {
                    at_ms,
                    values: produce,
                });
            }
            if !fetch.is_empty() {
                obs.fetch_bytes = Some(CounterSample {
                    at_ms,
                    values: fetch,
                });
            }
            if let Some(bootstrap) = &target.bootstrap {
                match max_consumer_lag(bootstrap, self.timeout).await {
                    Ok(lag) => obs.max_consumer_lag = lag,
                    Err(e) => obs.problems.push(format!("consumer lag: {e}")),
                }
            }
            obs
        })
    }
}

async fn scrape(
    http: &HttpClient<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>,
    addr: &str,
    timeout: Duration,
) -> Result<String, String> {
    let uri: hyper::Uri = format!("http://{addr}/metrics")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let response = tokio::time::timeout(timeout, http.get(uri))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| "timed out reading the body".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "metrics are not UTF-8".into())
}

/// The largest lag of any consumer group on any topic: `None` when no group has
/// committed offsets.
pub async fn max_consumer_lag(
    bootstrap: &str,
    timeout: Duration,
) -> Result<Option<i64>, AdminError> {
    let mut admin = AdminClient::connect(bootstrap, timeout).await?;
    let groups = admin.list_groups().await?;
    let mut end_offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    let mut max = None;
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
            if let Some(lag) = topic_lag(&offsets, &topic, &end_offsets[&topic]) {
                max = Some(max.map_or(lag, |m: i64| m.max(lag)));
            }
        }
    }
    Ok(max)
}
