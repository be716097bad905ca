//! Prometheus metrics for the broker, registered once and shared by every component.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// One login attempt: the listener, the mechanism (`SSL` for a client certificate)
/// and `ok`, `failed` or `timeout`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabel {
    pub listener: String,
    pub mechanism: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabel {
    pub quota: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicReasonLabel {
    pub topic: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicOutcomeLabel {
    pub topic: String,
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~52 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn size_histogram() -> Histogram {
    // 1 KiB .. 64 MiB
    Histogram::new(exponential_buckets(1024.0, 2.0, 17))
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    pub object_requests: Family<OpLabel, Counter>,
    pub object_bytes: Family<OpLabel, Counter>,
    pub object_errors: Family<OpLabel, Counter>,
    pub object_latency: HistogramFamily<OpLabel>,
    pub requests: Family<ApiLabel, Counter>,
    pub protocol_errors: Family<KindLabel, Counter>,
    pub authentications: Family<AuthLabel, Counter>,
    pub throttled: Family<QuotaLabel, Counter>,
    pub produce_errors: Family<KindLabel, Counter>,
    pub produce_bytes: Counter,
    pub produce_records: Counter,
    pub produce_latency: Histogram,
    pub fetch_bytes: Counter,
    pub fetch_latency: Histogram,
    pub wal_flush_bytes: Histogram,
    pub wal_flush_latency: Histogram,
    pub wal_pending_bytes: Gauge,
    pub tail_bytes: Gauge,
    pub checkpoints: Counter,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub high_watermark: Family<PartitionLabel, Gauge>,
    /// Record bytes acknowledged per partition led here: the balancer's load signal.
    pub partition_produce_bytes: Family<PartitionLabel, Counter>,
    /// Records checked against their topic's schema, and what happened to invalid ones.
    pub records_validated: Family<TopicLabel, Counter>,
    pub records_rejected: Family<TopicReasonLabel, Counter>,
    pub records_dead_lettered: Family<TopicReasonLabel, Counter>,
    pub records_invalid_observed: Family<TopicReasonLabel, Counter>,
    /// Time to validate one batch (decode included).
    pub validation_latency: Histogram,
    /// The lake writer (`lake/`): rows committed to feeds' tables, commits by outcome
    /// (committed, superseded, failed), their latency, records of partitions led here
    /// not yet in the table, and when the last commit landed.
    pub lake_rows: Family<TopicLabel, Counter>,
    pub lake_commits: Family<TopicOutcomeLabel, Counter>,
    pub lake_commit_latency: Histogram,
    pub lake_lag_records: Family<TopicLabel, Gauge>,
    pub lake_last_commit_seconds: Family<TopicLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            object_requests: Family::default(),
            object_bytes: Family::default(),
            object_errors: Family::default(),
            object_latency: Family::new_with_constructor(latency_histogram),
            requests: Family::default(),
            protocol_errors: Family::default(),
            authentications: Family::default(),
            throttled: Family::default(),
            produce_errors: Family::default(),
            produce_bytes: Counter::default(),
            produce_records: Counter::default(),
            produce_latency: latency_histogram(),
            fetch_bytes: Counter::default(),
            fetch_latency: latency_histogram(),
            wal_flush_bytes: size_histogram(),
            wal_flush_latency: latency_histogram(),
            wal_pending_bytes: Gauge::default(),
            tail_bytes: Gauge::default(),
            checkpoints: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            high_watermark: Family::default(),
            partition_produce_bytes: Family::default(),
            records_validated: Family::default(),
            records_rejected: Family::default(),
            records_dead_lettered: Family::default(),
            records_invalid_observed: Family::default(),
            validation_latency: Histogram::new(exponential_buckets(0.00001, 2.0, 20)),
            lake_rows: Family::default(),
            lake_commits: Family::default(),
            lake_commit_latency: latency_histogram(),
            lake_lag_records: Family::default(),
            lake_last_commit_seconds: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "object_requests",
            "Object store requests by operation",
            m.object_requests.clone(),
        );
        r.register(
            "object_bytes",
            "Object store bytes moved by operation",
            m.object_bytes.clone(),
        );
        r.register(
            "object_errors",
            "Object store request failures by operation",
            m.object_errors.clone(),
        );
        r.register(
            "object_latency_seconds",
            "Object store request latency",
            m.object_latency.clone(),
        );
        r.register("requests", "Kafka requests by API", m.requests.clone());
        r.register(
            "protocol_errors",
            "Connections closed for malformed or unsupported requests",
            m.protocol_errors.clone(),
        );
        r.register(
            "authentications",
            "TLS and SASL logins by listener, mechanism and result",
            m.authentications.clone(),
        );
        r.register(
            "throttled",
            "Requests throttled by a client quota, by quota",
            m.throttled.clone(),
        );
        r.register(
            "produce_errors",
            "Produce partitions answered with an error, by Kafka error",
            m.produce_errors.clone(),
        );
        r.register(
            "produce_bytes",
            "Record batch bytes acknowledged",
            m.produce_bytes.clone(),
        );
        r.register(
            "produce_records",
            "Records acknowledged",
            m.produce_records.clone(),
        );
        r.register(
            "produce_latency_seconds",
            "Produce request latency",
            m.produce_latency.clone(),
        );
        r.register("fetch_bytes", "Record bytes served", m.fetch_bytes.clone());
        r.register(
            "fetch_latency_seconds",
            "Fetch request latency including long-poll wait",
            m.fetch_latency.clone(),
        );
        r.register(
            "wal_flush_size_bytes",
            "Size of each WAL object written",
            m.wal_flush_bytes.clone(),
        );
        r.register(
            "wal_flush_latency_seconds",
            "Time to make one WAL object durable",
            m.wal_flush_latency.clone(),
        );
        r.register(
            "wal_pending_bytes",
            "Produce bytes waiting for WAL durability",
            m.wal_pending_bytes.clone(),
        );
        r.register(
            "tail_bytes",
            "Durable bytes not yet checkpointed into segments",
            m.tail_bytes.clone(),
        );
        r.register(
            "checkpoints",
            "Partition checkpoints written",
            m.checkpoints.clone(),
        );
        r.register(
            "cache_hits",
            "Segment block cache hits",
            m.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Segment block cache misses",
            m.cache_misses.clone(),
        );
        r.register(
            "partition_high_watermark",
            "High watermark per partition",
            m.high_watermark.clone(),
        );
        r.register(
            "partition_produce_bytes",
            "Record bytes acknowledged per partition led by this broker",
            m.partition_produce_bytes.clone(),
        );
        r.register(
            "records_validated",
            "Produced records checked against their topic's schema",
            m.records_validated.clone(),
        );
        r.register(
            "records_rejected",
            "Invalid records whose batch was refused (mode reject), by reason",
            m.records_rejected.clone(),
        );
        r.register(
            "records_dead_lettered",
            "Invalid records routed to the dead-letter topic, by reason",
            m.records_dead_lettered.clone(),
        );
        r.register(
            "records_invalid_observed",
            "Invalid records that landed anyway (mode observe), by reason",
            m.records_invalid_observed.clone(),
        );
        r.register(
            "validation_latency_seconds",
            "Time to validate one produce batch",
            m.validation_latency.clone(),
        );
        r.register(
            "lake_rows",
            "Rows this broker committed to feeds' Iceberg tables",
            m.lake_rows.clone(),
        );
        r.register(
            "lake_commits",
            "Iceberg commits by outcome: committed, superseded (another writer had the offsets), failed",
            m.lake_commits.clone(),
        );
        r.register(
            "lake_commit_latency_seconds",
            "Time to commit one window's files to its table",
            m.lake_commit_latency.clone(),
        );
        r.register(
            "lake_lag_records",
            "Records of partitions led by this broker not yet in their table",
            m.lake_lag_records.clone(),
        );
        r.register(
            "lake_last_commit_timestamp_seconds",
            "When this broker last committed to the topic's table (Unix time)",
            m.lake_last_commit_seconds.clone(),
        );
        r.register_collector(Box::new(ProcessCpu));
        Metrics { registry, ..m }
    }

    /// Renders the OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// `process_cpu_seconds_total`: CPU time of this process (user + system), read from
/// `/proc/self/stat` at each scrape, so an autoscaler can see CPU use without a
/// metrics server. Absent where there is no procfs.
#[derive(Debug)]
struct ProcessCpu;

/// Linux reports process times in USER_HZ ticks, 100 per second on every architecture
/// the kernel ABI exposes to user space.
const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessCpu {
    fn seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name (which may hold spaces): utime and
        // stime are the 14th and 15th fields of the line, the 12th and 13th after it.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let user: f64 = fields.next()?.parse().ok()?;
        let system: f64 = fields.next()?.parse().ok()?;
        Some((user + system) / TICKS_PER_SECOND)
    }
}

impl prometheus_client::collector::Collector for ProcessCpu {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let Some(seconds) = Self::seconds() else {
            return Ok(());
        };
        let counter = prometheus_client::metrics::counter::ConstCounter::new(seconds);
        let metric = encoder.encode_descriptor(
            "process_cpu_seconds",
            "CPU time of the broker process, user and system",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

#[cfg(test)]
mod process_tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_scraped_and_grow() {
        let m = Metrics::new();
        let value = |text: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix("sluice_process_cpu_seconds_total "))
                .expect("the series is exposed")
                .parse()
                .unwrap()
        };
        let before = value(&m.encode());
        // Burn some CPU so the counter moves by at least one tick.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = value(&m.encode());
        assert!(after > before, "{before} → {after}");
    }
}
