//! Produce throughput and latency of one broker on the file backend, driven by
//! librdkafka (rdkafka crate) with acks=all and idempotence, 1 KiB records.
//! Also reports object PUTs per GiB and the recovery time after kill -9 with a large
//! un-checkpointed tail. Run: `cargo bench -p sluice-broker --bench produce`
//! (`SLUICE_BENCH_MB` sets the volume, default 512).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker {
    child: Child,
    kafka: u16,
    metrics: u16,
    dir: std::path::PathBuf,
}

impl Broker {
    fn start(dir: &std::path::Path, kafka: u16, metrics: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-broker"))
            .args([
                "--listen",
                &format!("127.0.0.1:{kafka}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics}"),
                "--storage",
                &format!("file://{}", dir.display()),
                "--default-partitions",
                "8",
                // Keep the whole run in the WAL so the recovery measurement has a big tail.
                "--checkpoint-interval-ms",
                "3600000",
                "--checkpoint-bytes",
                "2147483648",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let b = Broker {
            child,
            kafka,
            metrics,
            dir: dir.to_path_buf(),
        };
        b.wait_ready();
        b
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !get(self.metrics, "/readyz").starts_with("HTTP/1.1 200") {
            assert!(Instant::now() < deadline, "broker not ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn metric(&self, name: &str) -> f64 {
        get(self.metrics, "/metrics")
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

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
    let (kafka, metrics) = (free_port(), free_port());
    let mut broker = Broker::start(dir.path(), kafka, metrics);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", broker.kafka))
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        .create()
        .unwrap();
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
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    let t = Instant::now();
    let restarted = Broker::start(dir.path(), broker.kafka, broker.metrics);
    println!(
        "  recovery after kill -9 with {:.0} MiB un-checkpointed WAL: {:.2} s to ready",
        wal_bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let mut restarted = restarted;
    let _ = restarted.child.kill();
    let _ = restarted.child.wait();
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
