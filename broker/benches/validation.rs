//! What validation on produce costs: the same 1 KiB OCSF Authentication events (JSON)
//! produced with librdkafka (acks=all, idempotent) into topics without validation, with
//! `id` validation, with `full` validation (Confluent framing, format json-schema) and
//! with `full` validation of plain JSON (what log shippers send). Reports throughput
//! and the broker's CPU seconds per GiB, and each as a ratio of the unvalidated run.
//! The rows run interleaved, `SLUICE_BENCH_ROUNDS` times (default 3) after a warm-up,
//! and each figure is the median of its rounds: the client shares the machine with the
//! broker, and a single short run of each is mostly noise.
//! Run: `cargo bench -p sluice-broker --bench validation` (`SLUICE_BENCH_MB` sets the
//! volume per row and round, default 256). Goal (issue 17): `full` costs at most 25 % of
//! the throughput.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureRecord, Producer};
use support::{cpu_seconds, event, median, Broker};

const SCHEMA: &str = include_str!("../../examples/ocsf/schemas/authentication.json");
const SUBJECT: &str = "ocsf-authentication-value";

fn register(broker: &Broker) -> u32 {
    let body = serde_json::json!({ "schemaType": "JSON", "schema": SCHEMA }).to_string();
    let (status, text) = sluice_testkit::http_send(
        ("127.0.0.1", broker.metrics),
        "POST",
        &format!("/subjects/{SUBJECT}/versions"),
        &body,
    )
    .expect("registry");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_u64()
        .unwrap() as u32
}

async fn produce(broker: &Broker, topic: &str, payload: &[u8], records: usize) -> (f64, f64) {
    let producer = support::producer(&broker.bootstrap());
    let cpu0 = cpu_seconds(broker.child.id());
    let started = Instant::now();
    let mut inflight = futures::stream::FuturesUnordered::new();
    for i in 0..records {
        let key = format!("k{}", i % 64);
        let p = producer.clone();
        inflight.push(async move {
            p.send(
                FutureRecord::to(topic).key(&key).payload(payload),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
        });
        if inflight.len() >= 20_000 {
            inflight.next().await;
        }
    }
    while inflight.next().await.is_some() {}
    producer.flush(Duration::from_secs(30)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(broker.child.id()) - cpu0;
    let bytes = (records * payload.len()) as f64;
    (bytes / 1e6 / secs, cpu / (bytes / (1u64 << 30) as f64))
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mb = env("SLUICE_BENCH_MB", 256);
    let rounds = env("SLUICE_BENCH_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "8"]);
    let id = register(&broker);
    let json = event();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(&json);

    let policy = |format: &str, level: &str| {
        vec![
            ("sluice.schema.subject", SUBJECT.to_string()),
            ("sluice.schema.format", format.to_string()),
            ("sluice.schema.level", level.to_string()),
        ]
    };
    // (row name, topic configs, the value every record carries)
    type Row<'a> = (&'static str, Vec<(&'static str, String)>, &'a [u8]);
    let topics: Vec<Row> = vec![
        ("no validation", vec![], &framed),
        ("id", policy("json-schema", "id"), &framed),
        ("full", policy("json-schema", "full"), &framed),
        ("full, plain JSON", policy("json", "full"), &json),
    ];
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let records = mb * 1024 * 1024 / framed.len();
    for (i, (_, configs, _)) in topics.iter().enumerate() {
        let name = format!("bench-{i}");
        let mut t = NewTopic::new(&name, 8, TopicReplication::Fixed(1));
        for (k, v) in configs {
            t = t.set(k, v);
        }
        let created = admin
            .create_topics([&t], &AdminOptions::new())
            .await
            .unwrap();
        created[0].as_ref().expect("topic created");
    }
    // Warm-up: every topic's partitions taken over, the validators compiled.
    for (i, (_, _, payload)) in topics.iter().enumerate() {
        produce(&broker, &format!("bench-{i}"), payload, records / 10).await;
    }
    let mut figures = vec![(Vec::new(), Vec::new()); topics.len()];
    for _ in 0..rounds {
        for (i, (_, _, payload)) in topics.iter().enumerate() {
            let (mb_per_s, cpu_per_gib) =
                produce(&broker, &format!("bench-{i}"), payload, records).await;
            figures[i].0.push(mb_per_s);
            figures[i].1.push(cpu_per_gib);
        }
    }
    let rejected = broker.metric("sluice_records_rejected_total");
    assert_eq!(rejected, 0.0, "every event is valid");
    println!(
        "validation on produce: {records} x {} B OCSF Authentication events per row and round, median of {rounds} rounds, acks=all, idempotent, 8 partitions, file backend",
        framed.len()
    );
    println!("| validation | MB/s | vs none | broker CPU-s/GiB | vs none |");
    println!("|---|---|---|---|---|");
    let medians: Vec<(f64, f64)> = figures
        .into_iter()
        .map(|(t, c)| (median(t), median(c)))
        .collect();
    let (base_mb, base_cpu) = medians[0];
    for ((name, _, _), (mb_per_s, cpu)) in topics.iter().zip(medians) {
        println!(
            "| {name} | {mb_per_s:.1} | {:.2} | {cpu:.2} | {:.2} |",
            mb_per_s / base_mb,
            cpu / base_cpu
        );
    }
}
