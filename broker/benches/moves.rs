//! Partition moves and failover in a fleet of three brokers on one file bucket
//! (issue 4). Prints p50/p99 over repeated runs of:
//! - moving 1, 10 and 100 partitions between live brokers (AlterPartitionReassignments
//!   sent → every moved partition has acknowledged a produce at its new leader), with
//!   producers writing to every partition so each move has a tail to hand over;
//! - failover after kill -9: per partition of the killed broker, from its last
//!   acknowledgement before the kill to its first after.
//!
//! Run: `cargo bench -p sluice-broker --bench moves`. `SLUICE_BENCH_RUNS` repeats
//! (default 10 moves, 5 failovers); `SLUICE_BENCH_SESSION_MS` the session timeout
//! (default 6000, the broker's default; heartbeats at a sixth of it).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fleet::Fleet;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "moves";
const PARTITIONS: i32 = 150;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<42} n={:<4} p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Last acknowledgement time per partition, written by the load.
type Acks = Arc<Mutex<BTreeMap<i32, Vec<Instant>>>>;

/// One record at a time per partition, recording when each was acknowledged.
fn start_load(rt: &tokio::runtime::Runtime, bootstrap: &str, stop: Arc<AtomicBool>) -> Acks {
    let acks: Acks = Arc::default();
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    for partition in 0..PARTITIONS {
        let (p, acks, stop) = (p.clone(), acks.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = p
                    .send(
                        FutureRecord::<(), _>::to(TOPIC)
                            .partition(partition)
                            .payload(&[0u8; 512][..]),
                        Duration::from_secs(120),
                    )
                    .await;
                if r.is_ok() {
                    acks.lock()
                        .unwrap()
                        .entry(partition)
                        .or_default()
                        .push(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    acks
}

/// Moves `count` partitions from one broker to another and times each move until the
/// new leader acknowledged a produce for every moved partition.
fn bench_moves(fleet: &mut Fleet, runs: usize) {
    for count in [1usize, 10, 100] {
        let mut samples = Vec::new();
        for run in 0..runs {
            let leaders = fleet.leaders(TOPIC);
            let from = (run % 3) as i32 + 1;
            let to = from % 3 + 1;
            let mut mine: Vec<i32> = leaders
                .iter()
                .filter(|(_, l)| l.node == from)
                .map(|(p, _)| *p)
                .collect();
            if mine.len() < count {
                // Gather enough partitions on `from` first (not timed).
                let need: Vec<(i32, i32)> = leaders
                    .iter()
                    .filter(|(_, l)| l.node != from)
                    .take(count - mine.len())
                    .map(|(p, _)| (*p, from))
                    .collect();
                fleet.reassign(TOPIC, &need);
                fleet.wait_leaders(TOPIC, Duration::from_secs(60), "gathering", |l| {
                    need.iter().all(|(p, n)| l[p].node == *n)
                });
                mine.extend(need.iter().map(|(p, _)| *p));
            }
            let moves: Vec<(i32, i32)> = mine.iter().take(count).map(|p| (*p, to)).collect();
            let started = Instant::now();
            let r = fleet.reassign(TOPIC, &moves);
            assert_eq!(r.error_code, 0);
            let mut conn = fleet.node(to).connect();
            let mut waiting: Vec<i32> = moves.iter().map(|(p, _)| *p).collect();
            while !waiting.is_empty() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "moves stuck: {waiting:?}"
                );
                waiting.retain(|p| !matches!(conn.produce_one(TOPIC, *p, "probe"), Some((0, _))));
                if !waiting.is_empty() {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            samples.push(started.elapsed());
        }
        report(&format!("move {count} partition(s)"), samples);
    }
}

/// kill -9 one broker at a time; per partition it led, the gap between the last
/// acknowledgement before the kill and the first after.
fn bench_failover(fleet: &mut Fleet, acks: &Acks, runs: usize) {
    let mut gaps = Vec::new();
    let mut detect = Vec::new();
    for run in 0..runs {
        let victim = (run % 3) as i32 + 1;
        // The victim leads a third of the partitions (placed there untimed).
        let led: Vec<i32> = (0..PARTITIONS).filter(|p| p % 3 == victim - 1).collect();
        let place: Vec<(i32, i32)> = led.iter().map(|p| (*p, victim)).collect();
        fleet.reassign(TOPIC, &place);
        fleet.wait_leaders(TOPIC, Duration::from_secs(60), "placing", |l| {
            place.iter().all(|(p, n)| l[p].node == *n)
        });
        std::thread::sleep(Duration::from_secs(2));
        let killed = Instant::now();
        fleet.node(victim).kill9();
        let deadline = killed + Duration::from_secs(120);
        let mut after: BTreeMap<i32, Instant> = BTreeMap::new();
        while after.len() < led.len() {
            assert!(Instant::now() < deadline, "failover stuck");
            std::thread::sleep(Duration::from_millis(5));
            let a = acks.lock().unwrap();
            for p in &led {
                if let Some(t) = a.get(p).and_then(|v| v.iter().find(|t| **t > killed)) {
                    after.entry(*p).or_insert(*t);
                }
            }
        }
        let a = acks.lock().unwrap();
        for p in &led {
            let last = a[p]
                .iter()
                .rev()
                .find(|t| **t <= killed)
                .copied()
                .unwrap_or(killed);
            gaps.push(after[p] - last);
        }
        detect.push(after.values().max().copied().unwrap() - killed);
        drop(a);
        fleet.node(victim).restart();
    }
    report("failover gap per partition (kill -9)", gaps);
    report("failover, kill -9 to the last partition", detect);
}

fn main() {
    let session_ms = env("SLUICE_BENCH_SESSION_MS", 6000);
    let runs = env("SLUICE_BENCH_RUNS", 10) as usize;
    let heartbeat = (session_ms / 6).max(50).to_string();
    let session = session_ms.to_string();
    let mut fleet = Fleet::start_exact(
        3,
        &[
            "--heartbeat-interval-ms",
            &heartbeat,
            "--session-timeout-ms",
            &session,
            "--auto-create-topics",
            "false",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bootstrap = fleet.bootstrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        admin
            .create_topics(
                [&NewTopic::new(
                    TOPIC,
                    PARTITIONS,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new(),
            )
            .await
            .unwrap()[0]
            .as_ref()
            .expect("topic");
    });
    println!(
        "fleet of 3 brokers, file bucket, {PARTITIONS} partitions each written every ~20 ms (512 B, acks=all), \
         heartbeat {heartbeat} ms, session timeout {session_ms} ms, other settings default"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acks = start_load(&rt, &bootstrap, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    bench_moves(&mut fleet, runs);
    bench_failover(&mut fleet, &acks, (runs / 2).max(1));
    stop.store(true, Ordering::Relaxed);
}
