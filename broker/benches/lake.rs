//! What writing a feed's Iceberg table costs and how fresh it is (issue 18): 1 KiB OCSF
//! events produced with librdkafka (acks=all, idempotent, 8 partitions) at a steady
//! rate, first into a topic without a table, then into one with a table (raw mode,
//! hour partitions, the embedded sqlite catalog, file bucket). Reports:
//! - the broker's CPU per GiB of the produce path (no table), and while the table is
//!   written live;
//! - the table writer's own CPU per GiB and rows per second per core into Parquet,
//!   measured apart: a backlog produced while the broker has no catalog, then a
//!   restart with one, so the CPU counted is the writer catching up (reading the log,
//!   Arrow, Parquet with zstd, commits) and nothing else;
//! - commit latency (the broker's histogram) and freshness: from a record's
//!   acknowledgement to the moment the broker's table position passes its offset
//!   (p50, p99, max), against the goal of twice the commit interval.
//!
//! Run: `cargo bench -p sluice-broker --bench lake`. `SLUICE_BENCH_MBPS` (default 50),
//! `SLUICE_BENCH_SECS` (default 30) and `SLUICE_BENCH_COMMIT_MS` (default 10000) set
//! the rate, the length and the commit interval.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureRecord;
use support::{cpu_seconds, event, get, Broker};

const PARTITIONS: i32 = 8;
/// Every this many records, one is followed for freshness.
const SAMPLE_EVERY: usize = 200;

/// Acknowledged samples: (partition, offset, when acknowledged).
type Samples = Arc<Mutex<Vec<(i32, i64, Instant)>>>;

/// Produces at `mb_per_s` for `secs`; returns the records sent.
async fn produce_paced(
    broker: &Broker,
    topic: &str,
    payload: &[u8],
    mb_per_s: f64,
    secs: f64,
    samples: &Samples,
) -> usize {
    let producer = support::producer(&broker.bootstrap());
    let per_tick = ((mb_per_s * 1e6 / 100.0) / payload.len() as f64).max(1.0) as usize;
    let started = Instant::now();
    let mut inflight = futures::stream::FuturesUnordered::new();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed().as_secs_f64() < secs {
        tick.tick().await;
        for _ in 0..per_tick {
            let key = format!("k{}", sent % 64);
            let (p, samples, sample) = (
                producer.clone(),
                samples.clone(),
                sent.is_multiple_of(SAMPLE_EVERY),
            );
            inflight.push(async move {
                let delivery = p
                    .send(
                        FutureRecord::to(topic).key(&key).payload(payload),
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .expect("acknowledged");
                if sample {
                    samples.lock().unwrap().push((
                        delivery.partition,
                        delivery.offset,
                        Instant::now(),
                    ));
                }
            });
            sent += 1;
        }
        while inflight.len() > 50_000 {
            inflight.next().await;
        }
        // Drain what completed without waiting.
        while let Some(Some(())) = futures::FutureExt::now_or_never(inflight.next()) {}
    }
    while inflight.next().await.is_some() {}
    sent
}

/// The table positions the broker reports for `topic`, by partition.
fn table_positions(metrics_port: u16, topic: &str) -> BTreeMap<i32, i64> {
    let body = get(metrics_port, "/v1/lake");
    let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("[]");
    let tables: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    tables
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["topic"] == topic)
        .flat_map(|t| t["partitions"].as_object().cloned().unwrap_or_default())
        .filter_map(|(p, v)| Some((p.parse().ok()?, v["table_position"].as_i64()?)))
        .collect()
}

/// The writer's own cost: `secs` of records at `rate` produced to a table topic while
/// the broker has no catalog, then a restart with the default one; returns the rows,
/// the broker's CPU seconds and the wall time from ready until all are committed.
async fn catch_up(payload: &[u8], rate: f64, secs: f64, commit_ms: &str) -> (usize, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--lake-catalog", "none"]);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let topic = NewTopic::new("backlog", PARTITIONS, TopicReplication::Fixed(1))
        .set("sluice.table.enabled", "true")
        .set("sluice.table.commit.interval.ms", commit_ms);
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("topic created");
    }
    let sent = produce_paced(&broker, "backlog", payload, rate, secs, &Samples::default()).await;
    drop(broker);
    let broker = Broker::start(dir.path(), &[]);
    let pid = broker.child.id();
    let (cpu0, started) = (cpu_seconds(pid), Instant::now());
    let deadline = started + Duration::from_secs(600);
    while (broker.metric("sluice_lake_rows_total") as usize) < sent {
        assert!(Instant::now() < deadline, "the writer did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (
        sent,
        cpu_seconds(pid) - cpu0,
        started.elapsed().as_secs_f64(),
    )
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rate = env("SLUICE_BENCH_MBPS", 50.0);
    let secs = env("SLUICE_BENCH_SECS", 30.0);
    let commit_ms = env("SLUICE_BENCH_COMMIT_MS", 10_000.0) as u64;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let plain = NewTopic::new("plain", PARTITIONS, TopicReplication::Fixed(1));
    let commit = commit_ms.to_string();
    let table = NewTopic::new("table", PARTITIONS, TopicReplication::Fixed(1))
        .set("sluice.table.enabled", "true")
        .set("sluice.table.commit.interval.ms", &commit);
    for r in admin
        .create_topics([&plain, &table], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("topic created");
    }
    let payload = event();
    let none: Samples = Arc::default();
    // Warm-up: partitions taken over, connections open.
    produce_paced(&broker, "plain", &payload, rate, 2.0, &none).await;

    let pid = broker.child.id();
    let cpu0 = cpu_seconds(pid);
    let plain_sent = produce_paced(&broker, "plain", &payload, rate, secs, &none).await;
    let plain_cpu = cpu_seconds(pid) - cpu0;

    // The table run: produce, then wait until every sample is in the table.
    let samples: Samples = Arc::default();
    let produced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpu1 = cpu_seconds(pid);
    let poller = {
        let (samples, produced) = (samples.clone(), produced.clone());
        let metrics = broker.metrics;
        tokio::spawn(async move {
            let mut fresh: Vec<f64> = Vec::new();
            let mut pending: Vec<(i32, i64, Instant)> = Vec::new();
            let deadline = Instant::now()
                + Duration::from_secs_f64(secs + 60.0 + 3.0 * commit_ms as f64 / 1000.0);
            loop {
                pending.append(&mut samples.lock().unwrap());
                let positions = table_positions(metrics, "table");
                let now = Instant::now();
                pending.retain(|(p, o, acked)| {
                    let done = positions.get(p).is_some_and(|pos| pos > o);
                    if done {
                        fresh.push(now.duration_since(*acked).as_secs_f64());
                    }
                    !done
                });
                let all_sent = produced.load(std::sync::atomic::Ordering::SeqCst);
                if (all_sent && pending.is_empty()) || now > deadline {
                    return (fresh, pending.len());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let table_sent = produce_paced(&broker, "table", &payload, rate, secs, &samples).await;
    produced.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut fresh, unseen) = poller.await.unwrap();
    let table_cpu = cpu_seconds(pid) - cpu1;
    assert_eq!(unseen, 0, "samples never reached the table");
    fresh.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rows = broker.metric("sluice_lake_rows_total");
    let commits = broker.metric("sluice_lake_commit_latency_seconds_count");
    let commit_secs = broker.metric("sluice_lake_commit_latency_seconds_sum");
    drop(broker);
    let (backlog, writer_cpu, writer_secs) = catch_up(&payload, rate, secs, &commit).await;
    let gib = |n: usize| (n * payload.len()) as f64 / (1u64 << 30) as f64;
    let produce_per_gib = plain_cpu / gib(plain_sent);
    let writer_per_gib = writer_cpu / gib(backlog);
    println!(
        "lake output: {} B OCSF events at {rate} MB/s for {secs} s, {PARTITIONS} partitions, commit every {commit_ms} ms, file bucket, sqlite catalog",
        payload.len()
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!("| broker CPU-s/GiB, produce path (no table) | {produce_per_gib:.2} |");
    println!(
        "| broker CPU-s/GiB, producing with the table written live | {:.2} |",
        table_cpu / gib(table_sent)
    );
    println!(
        "| table writer alone, catching up {backlog} rows: CPU-s/GiB | {writer_per_gib:.2} ({writer_secs:.1} s wall) |"
    );
    println!(
        "| table writer / produce path, CPU per GiB | {:.2} |",
        writer_per_gib / produce_per_gib
    );
    println!(
        "| rows/s per core into Parquet | {:.0} |",
        backlog as f64 / writer_cpu
    );
    println!("| rows committed live | {rows} of {table_sent} |");
    println!(
        "| commits, mean commit latency | {commits}, {:.3} s |",
        commit_secs / commits.max(1.0)
    );
    println!(
        "| freshness ack -> in table: p50 / p99 / max | {:.1} / {:.1} / {:.1} s (goal < {:.0} s) |",
        percentile(&fresh, 0.5),
        percentile(&fresh, 0.99),
        fresh[fresh.len() - 1],
        2.0 * commit_ms as f64 / 1000.0
    );
}
