//! Produce throughput and latency of one broker on the file backend, driven by
//! librdkafka (rdkafka crate) with acks=all and idempotence, 1 KiB records.
//! Also reports object PUTs per GiB and the recovery time after kill -9 with a large
//! un-checkpointed tail. Run: `cargo bench -p sluice-broker --bench produce`
//! (`SLUICE_BENCH_MB` sets the volume, default 512).

mod support;

use std::time::{Duration, Instant};

use rdkafka::producer::{FutureRecord, Producer};
use support::Broker;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let mb: usize = std::env::var("SLUICE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(
        dir.path(),
        &[
            "--default-partitions",
            "8",
            // Keep the whole run in the WAL so the recovery measurement has a big tail.
            "--checkpoint-interval-ms",
            "3600000",
            "--checkpoint-bytes",
            "2147483648",
        ],
    );
    let producer = support::producer(&broker.bootstrap());
    let payload = vec![b'x'; 1024];
    let records = mb * 1024;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(records);
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..records {
        let key = format!("k{}", i % 64);
        let p = producer.clone();
        let payload = &payload;
        inflight.push(async move {
            let t = Instant::now();
            p.send(
                FutureRecord::to("bench").key(&key).payload(payload),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
            t.elapsed().as_secs_f64() * 1000.0
        });
        if inflight.len() >= 20_000 {
            latencies.push(inflight.next().await.unwrap());
        }
    }
    while let Some(l) = inflight.next().await {
        latencies.push(l);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let puts = broker.metric("sluice_object_requests_total{op=\"put\"}");
    let gib = (records * 1024) as f64 / (1u64 << 30) as f64;
    println!("produce: {records} x 1 KiB records, acks=all, idempotent, librdkafka linger.ms=5, 8 partitions, file backend");
    println!(
        "  throughput        {:.1} MB/s ({:.0} records/s)",
        (records * 1024) as f64 / 1e6 / secs,
        records as f64 / secs
    );
    println!(
        "  latency (closed loop, 20k in flight) p50 {:.1} ms  p99 {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!("  object PUTs       {puts} = {:.0} per GiB", puts / gib);

    // Fixed-rate latency: 2,000 records/s, one in flight at a time per tick.
    let mut fixed = Vec::new();
    let tick = Duration::from_micros(500);
    let t0 = Instant::now();
    for i in 0..4000u32 {
        let due = t0 + tick * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let p = producer.clone();
        let payload = payload.clone();
        fixed.push(tokio::spawn(async move {
            let t = Instant::now();
            p.send(
                FutureRecord::to("bench-latency").key("k").payload(&payload),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
            t.elapsed().as_secs_f64() * 1000.0
        }));
    }
    let mut fixed_lat = Vec::new();
    for h in fixed {
        fixed_lat.push(h.await.unwrap());
    }
    fixed_lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "  latency at 2,000 records/s: p50 {:.1} ms  p99 {:.1} ms  p999 {:.1} ms",
        percentile(&fixed_lat, 0.5),
        percentile(&fixed_lat, 0.99),
        percentile(&fixed_lat, 0.999)
    );

    // Recovery after kill -9 with everything still in the WAL.
    let wal_bytes: u64 = walk(&broker.dir.join("wal"));
    broker.kill();
    let t = Instant::now();
    broker.restart();
    println!(
        "  recovery after kill -9 with {:.0} MiB un-checkpointed WAL: {:.2} s to ready",
        wal_bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
}

fn walk(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
