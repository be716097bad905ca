//! The fleet chaos test (issue 4): three brokers on one bucket, idempotent acks=all
//! producers on 24 partitions and a consumer group, while brokers are killed with -9
//! and restarted, paused past their session timeout (a split brain: alive, cut off,
//! then back, and fenced), and partitions are moved back and forth. An independent
//! checker then reads the whole log: every acknowledged record exactly once, at its
//! acknowledged offset, in order per partition; committed offsets never went back.
//!
//! A second run does the same with every broker's object store failing a share of its
//! requests (errors, lost acknowledgements, 503 throttling, latency: `--inject-faults`).
//!
//! Bounded: `SLUICE_CHAOS_SECS` of chaos per run (default 40, 25 with faults);
//! `SLUICE_CHAOS_SEED` replays a run's choice of actions.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fleet::Fleet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "chaos";
const PARTITIONS: i32 = 24;
const GROUP: &str = "chaos-group";

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("reconnect.backoff.max.ms", "500");
    c
}

#[derive(Default)]
struct Totals {
    kills: usize,
    pauses: usize,
    moves: usize,
}

/// (partition, offset) → value of every acknowledged record.
type Acked = Arc<Mutex<BTreeMap<(i32, i64), String>>>;

/// Produces until `stop`, recording acknowledgements; values carry a global sequence so
/// the checker can verify order per partition.
async fn produce(bootstrap: String, acked: Acked, stop: Arc<AtomicBool>, failed: Arc<AtomicU64>) {
    let p: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    let mut seq = 0u64;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    while !stop.load(Ordering::SeqCst) || !in_flight.is_empty() {
        while !stop.load(Ordering::SeqCst) && in_flight.len() < 200 {
            let value = format!("{seq:012}");
            let partition = (seq % PARTITIONS as u64) as i32;
            seq += 1;
            let p = p.clone();
            in_flight.push(async move {
                let r = p
                    .send(
                        FutureRecord::<(), _>::to(TOPIC)
                            .partition(partition)
                            .payload(&value),
                        Duration::from_secs(120),
                    )
                    .await;
                (value, r)
            });
        }
        let Some((value, r)) = in_flight.next().await else {
            continue;
        };
        match r {
            Ok(d) => {
                // librdkafka acknowledges with an unknown offset (-1001) a record it knows
                // was written without knowing where: after a retry whose first attempt's
                // answer was lost, a later batch's success proves it. Such a record is
                // kept under a negative key of its own and looked up by value.
                let at = if d.offset >= 0 {
                    d.offset
                } else {
                    -2 - value.parse::<i64>().expect("values are numbers")
                };
                let old = acked
                    .lock()
                    .unwrap()
                    .insert((d.partition, at), value.clone());
                assert!(
                    old.is_none(),
                    "offset {}/{} acknowledged twice ({old:?}, {value})",
                    d.partition,
                    d.offset
                );
            }
            Err((e, _)) => {
                failed.fetch_add(1, Ordering::SeqCst);
                eprintln!("produce of {value} failed (not acknowledged, allowed): {e}");
            }
        }
    }
}

/// A group member consuming and committing synchronously until `stop`.
fn consume(bootstrap: String, stop: Arc<AtomicBool>, consumed: Arc<AtomicU64>) {
    let c: BaseConsumer = config(&bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    let mut since_commit = 0;
    while !stop.load(Ordering::SeqCst) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                consumed.fetch_add(1, Ordering::SeqCst);
                since_commit += 1;
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
        if since_commit >= 200 {
            if let Err(e) = c.commit_consumer_state(CommitMode::Sync) {
                eprintln!("commit failed (retried later): {e}");
            }
            since_commit = 0;
        }
    }
    let _ = c.commit_consumer_state(CommitMode::Sync);
}

/// Samples the group's committed offsets until `stop`; panics if one ever goes back.
fn watch_commits(bootstrap: String, stop: Arc<AtomicBool>, samples: Arc<AtomicU64>) {
    let c: BaseConsumer = config(&bootstrap).set("group.id", GROUP).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        if let Ok(committed) = c.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
            for e in committed.elements() {
                if let Offset::Offset(o) = e.offset() {
                    let h = highest.entry(e.partition()).or_insert(o);
                    assert!(
                        o >= *h,
                        "committed offset of partition {} went back from {h} to {o}",
                        e.partition()
                    );
                    *h = o;
                }
            }
            samples.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The runs share the machine one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos("chaos", &[], 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_under_object_store_faults_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos(
        "chaos with faults",
        &[
            "--inject-faults",
            "put_error=0.02,put_lost_ack=0.02,get_error=0.02,list_error=0.02,throttle=0.02,latency_ms=1",
        ],
        25,
    )
    .await;
}

async fn chaos(name: &str, broker_args: &[&str], default_secs: u64) {
    let seed: u64 = std::env::var("SLUICE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let secs: u64 = std::env::var("SLUICE_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_secs);
    eprintln!("{name}: seed {seed} ({secs}s); replay with SLUICE_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fleet = Fleet::start(3, broker_args);
    let bootstrap = fleet.bootstrap();
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().unwrap();
    admin
        .create_topics(
            [&NewTopic::new(
                TOPIC,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap()[0]
        .as_ref()
        .expect("topic created");

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce(
        bootstrap.clone(),
        acked.clone(),
        stop.clone(),
        failed.clone(),
    ));
    let consumer = {
        let (b, s, c) = (bootstrap.clone(), stop.clone(), consumed.clone());
        std::thread::spawn(move || consume(b, s, c))
    };
    let watcher = {
        let (b, s, n) = (bootstrap.clone(), stop.clone(), samples.clone());
        std::thread::spawn(move || watch_commits(b, s, n))
    };

    let mut totals = Totals::default();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    while started.elapsed() < Duration::from_secs(secs) {
        let node = rng.random_range(1..=3);
        match rng.random_range(0..4) {
            0 => {
                eprintln!("chaos: kill -9 node {node}");
                fleet.node(node).kill9();
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..3000))).await;
                fleet.node(node).restart();
                totals.kills += 1;
            }
            1 => {
                eprintln!("chaos: pause node {node} past its session timeout");
                let pid = fleet.node(node).pid();
                signal(pid, "-STOP");
                tokio::time::sleep(Duration::from_millis(3500)).await;
                signal(pid, "-CONT");
                // It either finds itself fenced and exits, or (paused while nothing
                // noticed) carries on; restart it if it exited.
                if let Some(status) = fleet.node(node).wait_exit(Duration::from_secs(5)) {
                    assert_eq!(
                        status.code(),
                        Some(sluice_broker::server::startup::EXIT_FENCED)
                    );
                    fleet.node(node).restart();
                }
                totals.pauses += 1;
            }
            _ => {
                let leaders = fleet.leaders(TOPIC);
                let moves: Vec<(i32, i32)> = (0..rng.random_range(1..8))
                    .map(|_| {
                        let p = rng.random_range(0..PARTITIONS);
                        let from = leaders[&p].node;
                        let to = (from.max(1) + rng.random_range(1..3) - 1) % 3 + 1;
                        (p, to)
                    })
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect();
                eprintln!("chaos: move {moves:?}");
                let r = fleet.reassign(TOPIC, &moves);
                assert_eq!(r.error_code, 0);
                totals.moves += r
                    .responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .filter(|p| p.error_code == 0)
                    .count();
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    producer.await.unwrap();
    consumer.join().expect("consumer");
    watcher.join().expect("committed offsets never went back");

    // The checker: read every partition from the start with a plain consumer.
    let acked = acked.lock().unwrap().clone();
    let log = common::fleet::read_log(&bootstrap, TOPIC, PARTITIONS, Duration::from_secs(60));
    let mut last_value: BTreeMap<i32, &String> = BTreeMap::new();
    let mut seen = HashSet::new();
    for ((p, _), v) in &log {
        assert!(seen.insert(v), "{v} is in the log twice");
        if let Some(prev) = last_value.insert(*p, v) {
            assert!(prev < v, "partition {p}: {v} after {prev}, out of order");
        }
    }
    let mut anomalies = 0;
    let in_partition: HashSet<(i32, &String)> = log.iter().map(|((p, _), v)| (*p, v)).collect();
    for (at, v) in &acked {
        let found = if at.1 >= 0 {
            log.get(at) == Some(v)
        } else {
            in_partition.contains(&(at.0, v))
        };
        if !found {
            eprintln!(
                "ANOMALY: acknowledged {v} at {at:?}, log has {:?}",
                log.get(at)
            );
            anomalies += 1;
        }
    }
    eprintln!(
        "{name} totals: seed {seed}, {}s, kills {}, pauses {}, moves {}, records acknowledged {}, not acknowledged {}, in log {}, consumed by the group {}, commit samples {}, anomalies {anomalies}",
        started.elapsed().as_secs(),
        totals.kills,
        totals.pauses,
        totals.moves,
        acked.len(),
        failed.load(Ordering::SeqCst),
        log.len(),
        consumed.load(Ordering::SeqCst),
        samples.load(Ordering::SeqCst),
    );
    assert_eq!(anomalies, 0);
    assert!(
        acked.len() > 1000,
        "the producer made progress through the chaos"
    );
    assert!(samples.load(Ordering::SeqCst) > 0);
}
