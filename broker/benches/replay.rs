//! The recovery contract's figures (issue 19): how long `GET /v1/evidence` takes over a
//! window of a million records, and what a replay of that window does to live produce
//! latency. One broker, file bucket, embedded sqlite catalog:
//! 1. `SLUICE_BENCH_RECORDS` (default 1,000,000) small JSON records are produced to a
//!    table topic (8 partitions) with timestamps spread over one hour, and the table
//!    catches up;
//! 2. the evidence report of that hour is asked for three times (median), and its
//!    figures checked (every record counted, in the table, no findings);
//! 3. live produce latency (send to acknowledgement, acks=all) of 1 KiB events to
//!    another topic at `SLUICE_BENCH_MBPS` (default 20) for `SLUICE_BENCH_SECS`
//!    (default 20): once alone, once while the hour is replayed into the table at the
//!    replay's default budget; p50/p99 of both and the ratio.
//!
//! Run: `cargo bench -p sluice-broker --bench replay`.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureRecord;
use support::{event, get, median, Broker};

const PARTITIONS: i32 = 8;
const T0_MS: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap()
}

async fn create(broker: &Broker, topic: NewTopic<'_>) {
    for r in admin(broker)
        .await
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("topic created");
    }
}

/// `records` small records, timestamps spread evenly over the hour from T0.
async fn fill(broker: &Broker, topic: &str, records: usize) {
    let producer = support::producer(&broker.bootstrap());
    let mut inflight = futures::stream::FuturesUnordered::new();
    for i in 0..records {
        let p = producer.clone();
        let value = format!(r#"{{"user":"u{}","n":{i},"src":"vpn"}}"#, i % 5000);
        let ts = T0_MS + (i as i64 * HOUR_MS) / records as i64;
        inflight.push(async move {
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .payload(&value)
                    .partition((i % PARTITIONS as usize) as i32)
                    .timestamp(ts),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
        });
        while inflight.len() > 100_000 {
            inflight.next().await;
        }
    }
    while inflight.next().await.is_some() {}
}

/// Produces 1 KiB events at `mb_per_s` for `secs`; when each was sent and its latency
/// in ms.
async fn live_latency(
    broker: &Broker,
    topic: &str,
    mb_per_s: f64,
    secs: f64,
) -> Vec<(Instant, f64)> {
    let producer = support::producer(&broker.bootstrap());
    let payload = event();
    let per_tick = ((mb_per_s * 1e6 / 100.0) / payload.len() as f64).max(1.0) as usize;
    let started = Instant::now();
    let mut inflight = futures::stream::FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut latencies = Vec::new();
    while started.elapsed().as_secs_f64() < secs {
        tick.tick().await;
        for _ in 0..per_tick {
            let (p, payload) = (producer.clone(), payload.clone());
            inflight.push(async move {
                let sent = Instant::now();
                p.send(
                    FutureRecord::<(), _>::to(topic).payload(&payload),
                    Duration::from_secs(60),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("acknowledged");
                (sent, sent.elapsed().as_secs_f64() * 1000.0)
            });
        }
        while let Some(Some(ms)) = futures::FutureExt::now_or_never(inflight.next()) {
            latencies.push(ms);
        }
    }
    while let Some(ms) = inflight.next().await {
        latencies.push(ms);
    }
    latencies
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * q) as usize]
}

fn body(raw: &str) -> serde_json::Value {
    let json = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("null");
    serde_json::from_str(json).unwrap_or_default()
}

/// The phase of the bench's replay, from the broker at HTTP port `metrics`.
fn replay_phase(metrics: u16) -> Option<String> {
    body(&get(metrics, "/v1/lake"))
        .as_array()?
        .iter()
        .flat_map(|t| t["replays"].as_array().cloned().unwrap_or_default())
        .find(|r| r["id"] == "bench")
        .and_then(|r| r["phase"].as_str().map(str::to_string))
}

#[tokio::main]
async fn main() {
    let records: usize = env_or("SLUICE_BENCH_RECORDS", 1_000_000);
    let mb_per_s: f64 = env_or("SLUICE_BENCH_MBPS", 20.0);
    let secs: f64 = env_or("SLUICE_BENCH_SECS", 20.0);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    create(
        &broker,
        NewTopic::new("feed", PARTITIONS, TopicReplication::Fixed(1))
            .set("sluice.table.enabled", "true")
            .set("sluice.table.commit.interval.ms", "2000"),
    )
    .await;
    create(
        &broker,
        NewTopic::new("live", PARTITIONS, TopicReplication::Fixed(1)),
    )
    .await;

    let began = Instant::now();
    fill(&broker, "feed", records).await;
    let produced_in = began.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(900);
    while (broker.metric("sluice_lake_rows_total") as usize) < records {
        assert!(Instant::now() < deadline, "the table did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{records} records produced in {produced_in:.1} s; table caught up after {:.1} s",
        began.elapsed().as_secs_f64()
    );

    let query = format!(
        "/v1/evidence?topic=feed&from={T0_MS}&to={}",
        T0_MS + HOUR_MS
    );
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let report = body(&get(broker.metrics, &query));
        times.push(t.elapsed().as_secs_f64());
        let counted: u64 = report["partitions"]
            .as_array()
            .expect("a report")
            .iter()
            .map(|p| p["records"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(counted as usize, records, "every record counted");
        assert_eq!(
            report["findings"],
            serde_json::json!([]),
            "{}",
            report["findings"]
        );
    }
    println!(
        "evidence over {records} records: median {:.2} s (runs: {times:.2?})",
        median(times.clone())
    );

    let alone = live_latency(&broker, "live", mb_per_s, secs).await;
    let replay = serde_json::json!([{
        "id": "bench", "fromMs": T0_MS, "toMs": T0_MS + HOUR_MS, "reason": "bench",
        "requestedBy": "bench", "approvedBy": "bench-approver"
    }])
    .to_string();
    let resource = ResourceSpecifier::Topic("feed");
    // rdkafka's AlterConfigs is Kafka's legacy API: it replaces the whole set.
    let alter = AlterConfig::new(resource)
        .set("sluice.table.enabled", "true")
        .set("sluice.table.commit.interval.ms", "2000")
        .set("sluice.table.replays", &replay);
    for r in admin(&broker)
        .await
        .alter_configs([&alter], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("replay set");
    }
    let replay_began = Instant::now();
    let watcher = tokio::spawn({
        let metrics = broker.metrics;
        async move {
            loop {
                let b = replay_phase(metrics);
                if b.as_deref() == Some("Succeeded") {
                    return Some(replay_began.elapsed().as_secs_f64());
                }
                if b.as_deref() == Some("Failed") {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let during = live_latency(&broker, "live", mb_per_s, secs).await;
    let replay_secs = tokio::time::timeout(Duration::from_secs(600), watcher)
        .await
        .expect("the replay finished")
        .unwrap()
        .expect("the replay succeeded");
    println!("replay of {records} records: {replay_secs:.1} s");
    // Only the records sent while the replay ran, against the whole run without one.
    let replay_end = replay_began + Duration::from_secs_f64(replay_secs);
    let during: Vec<f64> = during
        .into_iter()
        .filter(|(sent, _)| *sent >= replay_began && *sent <= replay_end)
        .map(|(_, ms)| ms)
        .collect();
    let alone: Vec<f64> = alone.into_iter().map(|(_, ms)| ms).collect();
    let (p50a, p99a) = (
        percentile(alone.clone(), 0.5),
        percentile(alone.clone(), 0.99),
    );
    let (p50d, p99d) = (
        percentile(during.clone(), 0.5),
        percentile(during.clone(), 0.99),
    );
    println!("| live produce at {mb_per_s} MB/s | records | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| alone ({secs} s) | {} | {p50a:.2} | {p99a:.2} |",
        alone.len()
    );
    println!(
        "| sent while the replay ran | {} | {p50d:.2} | {p99d:.2} |",
        during.len()
    );
    println!("| ratio | | {:.2} | {:.2} |", p50d / p50a, p99d / p99a);
}
