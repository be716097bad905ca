//! The operator's own metrics (reconciles, errors, durations), and reading the brokers'
//! Prometheus text to compute throughput.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub controller: &'static str,
    pub error: &'static str,
}

/// `service:Operation` of a cloud API call, e.g. `s3:PutBucketEncryption`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabel {
    pub call: String,
}

/// Reconcile counters and durations per controller, and cloud API calls.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ControllerLabel, Counter>,
    pub failures: Family<ErrorLabel, Counter>,
    pub duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    pub cloud_calls: Family<CloudCallLabel, Counter>,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            cloud_calls: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric in `registry` (prefix it with `sluice_operator`).
    pub fn register(self, registry: &mut Registry) -> Self {
        registry.register(
            "reconciles",
            "Reconciles started, by controller",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and error kind",
            self.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            self.duration.clone(),
        );
        registry.register(
            "cloud_calls",
            "Cloud provider API calls made, by call (e.g. s3:HeadBucket)",
            self.cloud_calls.clone(),
        );
        self
    }

    pub fn reconciled(&self, controller: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .inc();
        self.duration
            .get_or_create(&ControllerLabel { controller })
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, controller: &'static str, error: &'static str) {
        self.failures
            .get_or_create(&ErrorLabel { controller, error })
            .inc();
    }
}

/// Broker counter of acknowledged produce bytes (`broker/src/metrics.rs`).
pub const BROKER_PRODUCE_BYTES: &str = "sluice_produce_bytes_total";
/// Broker counter of fetched bytes.
pub const BROKER_FETCH_BYTES: &str = "sluice_fetch_bytes_total";
/// Broker counter of its process' CPU seconds.
pub const BROKER_CPU_SECONDS: &str = "sluice_process_cpu_seconds_total";
/// Broker counter of produce bytes per partition it leads (labels `topic`, `partition`).
pub const BROKER_PARTITION_BYTES: &str = "sluice_partition_produce_bytes_total";

/// Broker counters of records that failed schema validation, by `topic` and `reason`:
/// refused, and written to the dead-letter topic.
pub const BROKER_RECORDS_REJECTED: &str = "sluice_records_rejected_total";
pub const BROKER_RECORDS_DEAD_LETTERED: &str = "sluice_records_dead_lettered_total";

/// Records rejected or dead-lettered per topic and reason, summed over the series of
/// [`BROKER_RECORDS_REJECTED`] and [`BROKER_RECORDS_DEAD_LETTERED`] in `text`; added to
/// `into` (one map for all the brokers).
pub fn add_rejections(text: &str, into: &mut BTreeMap<String, BTreeMap<String, f64>>) {
    for name in [BROKER_RECORDS_REJECTED, BROKER_RECORDS_DEAD_LETTERED] {
        for (labels, v) in labelled_series(text, name) {
            if let (Some(topic), Some(reason)) = (labels.get("topic"), labels.get("reason")) {
                *into
                    .entry(topic.clone())
                    .or_default()
                    .entry(reason.clone())
                    .or_default() += v;
            }
        }
    }
}

/// The value of an unlabelled series `name` in a Prometheus/OpenMetrics text exposition.
pub fn series_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Counter values at one moment, by source (a broker pod, a partition).
#[derive(Clone, Debug, PartialEq)]
pub struct CounterSample {
    /// Milliseconds on a monotonic clock.
    pub at_ms: u64,
    pub values: BTreeMap<String, f64>,
}

/// Per-second rate between two samples, summed over the pods (see [`counter_rates`]).
/// `None` when no time passed.
pub fn counter_rate(previous: &CounterSample, current: &CounterSample) -> Option<f64> {
    Some(counter_rates(previous, current)?.values().sum())
}

/// Per-second rate of each source between two samples. A source whose counter went down
/// restarted: its whole current value counts as growth. A source missing from either
/// sample has no rate. `None` when no time passed.
pub fn counter_rates(
    previous: &CounterSample,
    current: &CounterSample,
) -> Option<BTreeMap<String, f64>> {
    let elapsed = current
        .at_ms
        .checked_sub(previous.at_ms)
        .filter(|ms| *ms > 0)? as f64
        / 1000.0;
    Some(
        current
            .values
            .iter()
            .filter_map(|(source, now)| {
                let before = previous.values.get(source)?;
                let growth = if now >= before { now - before } else { *now };
                Some((source.clone(), growth / elapsed))
            })
            .collect(),
    )
}

/// Every series `name{labels} value` in a text exposition, with its labels.
pub fn labelled_series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let value = value.split_whitespace().next()?.parse().ok()?;
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            Some((labels, value))
        })
        .collect()
}

/// `1536` → `1.5KiB`: bytes per second for people.
pub fn human_bytes(bytes_per_second: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes_per_second.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0}{}/s", UNITS[unit])
    } else {
        format!("{v:.1}{}/s", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "# HELP sluice_produce_bytes Record batch bytes acknowledged.\n\
        # TYPE sluice_produce_bytes counter\n\
        sluice_produce_bytes_total 4096\n\
        sluice_produce_bytes_total_other 1\n\
        sluice_fetch_bytes_total 1.5e3\n\
        # EOF\n";

    #[test]
    fn reads_unlabelled_series_exactly() {
        assert_eq!(series_value(EXPOSITION, BROKER_PRODUCE_BYTES), Some(4096.0));
        assert_eq!(series_value(EXPOSITION, BROKER_FETCH_BYTES), Some(1500.0));
        assert_eq!(series_value(EXPOSITION, "sluice_produce_bytes"), None);
    }

    fn sample(at_ms: u64, pods: &[(&str, f64)]) -> CounterSample {
        CounterSample {
            at_ms,
            values: pods.iter().map(|(p, v)| (p.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn rate_sums_pods_and_survives_a_restart() {
        let before = sample(1_000, &[("b-0", 1000.0), ("b-1", 5000.0)]);
        // b-0 grew by 2000; b-1 restarted and counted 500 since; b-2 is new (no baseline).
        let after = sample(3_000, &[("b-0", 3000.0), ("b-1", 500.0), ("b-2", 9999.0)]);
        assert_eq!(counter_rate(&before, &after), Some(1250.0));
        assert_eq!(counter_rate(&after, &after), None, "no time passed");
    }

    #[test]
    fn reads_labelled_series_with_their_labels() {
        let text = "# TYPE sluice_partition_produce_bytes counter\n\
            sluice_partition_produce_bytes_total{topic=\"dns\",partition=\"3\"} 2048\n\
            sluice_partition_produce_bytes_total{topic=\"flow\",partition=\"0\"} 1\n\
            sluice_partition_produce_bytes_created{topic=\"dns\",partition=\"3\"} 9\n";
        let series = labelled_series(text, BROKER_PARTITION_BYTES);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].0["topic"], "dns");
        assert_eq!(series[0].0["partition"], "3");
        assert_eq!(series[0].1, 2048.0);
    }

    #[test]
    fn rejections_add_up_by_topic_and_reason_over_both_counters_and_brokers() {
        let broker = "# TYPE sluice_records_rejected counter\n\
            sluice_records_rejected_total{topic=\"dns\",reason=\"schema\"} 3\n\
            sluice_records_rejected_total{topic=\"dns\",reason=\"framing\"} 1\n\
            sluice_records_dead_lettered_total{topic=\"dns\",reason=\"schema\"} 2\n\
            sluice_records_validated_total{topic=\"dns\"} 100\n\
            sluice_records_invalid_observed_total{topic=\"edr\",reason=\"decode\"} 9\n";
        let mut all = BTreeMap::new();
        add_rejections(broker, &mut all);
        add_rejections(broker, &mut all);
        assert_eq!(
            all.len(),
            1,
            "validated and observed records are not rejections"
        );
        assert_eq!(all["dns"]["schema"], 10.0);
        assert_eq!(all["dns"]["framing"], 2.0);
    }

    #[test]
    fn rates_per_source() {
        let before = sample(0, &[("a", 10.0), ("b", 10.0)]);
        let after = sample(2_000, &[("a", 30.0), ("c", 5.0)]);
        let rates = counter_rates(&before, &after).unwrap();
        assert_eq!(rates.len(), 1, "b is gone, c has no baseline");
        assert_eq!(rates["a"], 10.0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0.0), "0B/s");
        assert_eq!(human_bytes(1536.0), "1.5KiB/s");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0), "3.0MiB/s");
    }
}
