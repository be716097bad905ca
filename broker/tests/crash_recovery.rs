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
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("reconnect.backoff.max.ms", "200")
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap();
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

    // Read everything back.
    let c = consumer(&bootstrap);
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
        ends.insert(
            p,
            c.fetch_watermarks(TOPIC, p, Duration::from_secs(20))
                .unwrap()
                .1,
        );
    }
    c.assign(&tpl).unwrap();
    let total: i64 = ends.values().sum();
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
    for (p, o, value) in &acked {
        assert_eq!(
            log.get(&(*p, *o)),
            Some(value),
            "acknowledged {value} at {p}/{o} is there"
        );
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "crash-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}
