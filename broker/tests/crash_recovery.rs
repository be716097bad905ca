//! kill -9 the broker in the middle of an idempotent acks=all produce stream, restart it
//! on the same bucket, and prove every acknowledged record is read back exactly once, at
//! its acknowledged offset, in order, with a high watermark never below an acknowledged
//! offset.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{temp_storage, BrokerProcess};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 4;
const TOPIC: &str = "crash";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9() {
    let (_dir, url) = temp_storage();
    // Checkpoints run during the stream, so recovery reads both segments and WAL.
    let mut broker = BrokerProcess::start(
        &url,
        &[
            "--checkpoint-interval-ms",
            "700",
            "--default-partitions",
            "4",
        ],
    );
    let bootstrap = broker.bootstrap();
    let producer = idempotent_producer(&bootstrap);
    let acked: Arc<Mutex<Vec<(i32, i64, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let producer = producer.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut inflight = futures::stream::FuturesUnordered::new();
            use futures::StreamExt;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                while inflight.len() < 200 {
                    let value = format!("record-{n}");
                    let key = format!("k{}", n % 16);
                    n += 1;
                    let producer = producer.clone();
                    inflight.push(async move {
                        let r = producer
                            .send(
                                FutureRecord::to(TOPIC).key(&key).payload(&value),
                                Duration::from_secs(60),
                            )
                            .await;
                        (
                            r.map(|d| (d.partition, d.offset)).map_err(|(e, _)| e),
                            value,
                        )
                    });
                }
                if let Some((Ok((p, o)), value)) = inflight.next().await {
                    acked.lock().unwrap().push((p, o, value));
                }
            }
            while let Some((r, value)) = inflight.next().await {
                if let Ok((p, o)) = r {
                    acked.lock().unwrap().push((p, o, value));
                }
            }
            n
        })
    };

    let mut acked_before_kill = Vec::new();
    for round in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let target = (round + 1) * 3000;
        while acked.lock().unwrap().len() < target {
            assert!(
                Instant::now() < deadline,
                "producer made no progress (round {round}): {}",
                broker.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        broker.kill9();
        let snapshot: Vec<(i32, i64, String)> = acked.lock().unwrap().clone();
        acked_before_kill.push(snapshot.len());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        broker.restart();
        eprintln!("round {round}: restart to ready in {:?}", started.elapsed());
        // The restarted broker's high watermark covers everything acknowledged before the kill.
        let c = consumer(&bootstrap);
        let mut max_acked: HashMap<i32, i64> = HashMap::new();
        for (p, o, _) in &snapshot {
            let m = max_acked.entry(*p).or_insert(-1);
            *m = (*m).max(*o);
        }
        for (p, max) in max_acked {
            let (_, high) = c
                .fetch_watermarks(TOPIC, p, Duration::from_secs(20))
                .unwrap();
            assert!(
                high > max,
                "partition {p}: high watermark {high} below acknowledged offset {max}"
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < acked_before_kill[1] + 2000 {
        assert!(
            Instant::now() < deadline,
            "producer did not resume after restart: {}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = tokio::time::timeout(Duration::from_secs(90), sender)
        .await
        .unwrap()
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "sent {sent}, acknowledged {}, before kills {acked_before_kill:?}",
        acked.len()
    );

    verify_log(&bootstrap, &acked);
}

/// An idempotent acks=all producer that rides out broker restarts.
fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("reconnect.backoff.max.ms", "200")
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap()
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "crash-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Reads every partition back from the start and checks the log against what producers
/// were acknowledged: offsets dense and in order, no value twice (idempotence), and every
/// acknowledged value at its acknowledged offset.
fn verify_log(bootstrap: &str, acked: &[(i32, i64, String)]) {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    let mut total = 0;
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
        total += c
            .fetch_watermarks(TOPIC, p, Duration::from_secs(20))
            .unwrap()
            .1;
    }
    c.assign(&tpl).unwrap();
    let mut log: HashMap<(i32, i64), String> = HashMap::new();
    let mut last: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (log.len() as i64) < total {
        assert!(
            Instant::now() < deadline,
            "read back {} of {total}",
            log.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let prev = last.insert(m.partition(), m.offset());
            assert_eq!(
                prev.map_or(0, |o| o + 1),
                m.offset(),
                "partition {} read in order without gaps",
                m.partition()
            );
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            log.insert((m.partition(), m.offset()), value);
        }
    }
    let mut seen = HashSet::new();
    for value in log.values() {
        assert!(
            seen.insert(value.clone()),
            "{value} is in the log twice: idempotence failed"
        );
    }
    for (p, o, value) in acked {
        assert_eq!(
            log.get(&(*p, *o)),
            Some(value),
            "acknowledged {value} at {p}/{o} is there"
        );
    }
}

/// Object-store errors, lost acknowledgements of writes that landed, 503 throttling and
/// latency, during produce, checkpoints, a kill -9 and the recovery after it: retries get
/// every record through and nothing acknowledged is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_object_store_faults() {
    let (_dir, url) = temp_storage();
    let faults = "put_error=0.15,put_lost_ack=0.1,get_error=0.15,list_error=0.1,delete_error=0.1,throttle=0.05,latency_ms=2";
    let mut broker = BrokerProcess::start(
        &url,
        &[
            "--inject-faults",
            faults,
            "--checkpoint-interval-ms",
            "300",
            "--default-partitions",
            "4",
        ],
    );
    let bootstrap = broker.bootstrap();
    let producer = idempotent_producer(&bootstrap);
    let sends = (0..3000).map(|n| {
        let producer = producer.clone();
        async move {
            let value = format!("record-{n}");
            let r = producer
                .send(
                    FutureRecord::to(TOPIC)
                        .key(&format!("k{}", n % 16))
                        .payload(&value),
                    Duration::from_secs(60),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("acknowledged despite faults");
            (r.partition, r.offset, value)
        }
    });
    let acked: Vec<(i32, i64, String)> = futures::future::join_all(sends).await;
    tokio::time::sleep(Duration::from_millis(700)).await; // let checkpoints run under faults
    broker.kill9();
    broker.restart(); // recovery itself runs under the same faults
    verify_log(&bootstrap, &acked);
    let errors = broker.metrics();
    assert!(
        errors.contains("sluice_object_errors_total"),
        "faults were injected and retried"
    );
}

fn produce_raw(conn: &mut common::KafkaConn, topic: &str, value: &str) -> (i16, i64) {
    try_produce_raw(conn, topic, value).expect("the broker closed the connection")
}

fn try_produce_raw(conn: &mut common::KafkaConn, topic: &str, value: &str) -> Option<(i16, i64)> {
    conn.produce_one(topic, 0, value)
}

/// docs/storage-protocol.md I3: a second process of the same node on the same bucket starts a new
/// incarnation and fences the first one's WAL stream; the first never acknowledges again
/// (it answers NOT_LEADER_OR_FOLLOWER, then exits with EXIT_FENCED so its supervisor
/// restarts it), and everything it acknowledged before is served by the second. Three
/// shapes of the first one's stream: objects still there, everything checkpointed and
/// collected, and nothing ever written.
#[test]
fn a_fenced_broker_stops_acknowledging() {
    for (case, checkpoint_ms, writes_before) in [
        ("wal present", "60000", true),
        ("wal collected", "100", true),
        ("never wrote", "60000", false),
    ] {
        let (_dir, url) = temp_storage();
        let args = [
            "--default-partitions",
            "1",
            "--checkpoint-interval-ms",
            checkpoint_ms,
        ];
        let mut first = BrokerProcess::start(&url, &args);
        let mut a = first.connect();
        a.auto_create_topic("fence");
        let mut next = 0;
        if writes_before {
            assert_eq!(produce_raw(&mut a, "fence", "before"), (0, 0), "{case}");
            next = 1;
            std::thread::sleep(Duration::from_millis(600)); // checkpoints and WAL collection run
        }
        let second = BrokerProcess::start(&url, &args);
        let mut b = second.connect();
        if let Some((code, _)) = try_produce_raw(&mut a, "fence", "zombie write") {
            assert_eq!(
                code, 6,
                "{case}: the fenced broker answers NOT_LEADER_OR_FOLLOWER instead of acknowledging"
            );
        }
        assert_eq!(
            produce_raw(&mut b, "fence", "after"),
            (0, next),
            "{case}: the new incarnation continues the log"
        );
        let status = first
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{case}: the fenced broker keeps running"));
        assert_eq!(
            status.code(),
            Some(sluice_broker::server::startup::EXIT_FENCED),
            "{case}: it exits for a restart as a new incarnation"
        );
        assert_eq!(
            produce_raw(&mut b, "fence", "after the zombie"),
            (0, next + 1)
        );
    }
}

/// A fenced incarnation that never writes again but checkpoints on its way out (SIGTERM)
/// must not disturb the new one: its segment objects carry its own incarnation and its
/// manifest write loses to the new incarnation's claim.
#[test]
fn a_fenced_broker_checkpointing_on_shutdown_changes_nothing() {
    let (_dir, url) = temp_storage();
    let args = [
        "--default-partitions",
        "1",
        "--checkpoint-interval-ms",
        "60000",
    ];
    let mut first = BrokerProcess::start(&url, &args);
    let mut a = first.connect();
    a.auto_create_topic("zombie");
    for i in 0..3 {
        assert_eq!(produce_raw(&mut a, "zombie", &format!("a{i}")), (0, i));
    }
    let mut second = BrokerProcess::start(&url, &args);
    let mut b = second.connect();
    for i in 3..6 {
        assert_eq!(produce_raw(&mut b, "zombie", &format!("b{i}")), (0, i));
    }
    first.terminate(); // flushes and tries to checkpoint its stale tail
                       // The new incarnation's log is intact, live and after its own restart.
    assert_eq!(produce_raw(&mut b, "zombie", "b6"), (0, 6));
    second.kill9();
    second.restart();
    let mut b = second.connect();
    assert_eq!(
        produce_raw(&mut b, "zombie", "b7"),
        (0, 7),
        "offsets continue after recovery"
    );
}
