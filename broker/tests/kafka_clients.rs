//! librdkafka (through the rdkafka crate) against the real broker binary.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{temp_storage, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

fn producer(bootstrap: &str, codec: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("compression.type", codec)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", "kafka-clients-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let res = admin
        .create_topics([&topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    res[0].as_ref().expect("topic created");
}

/// What a consumed record carried: key, value, timestamp.
type Consumed = (Vec<u8>, Vec<u8>, i64);

/// Consumes partitions from `from` until `count` messages arrived; returns them by
/// (partition, offset).
fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> HashMap<(i32, i64), Consumed> {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut got = HashMap::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < count && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("consume without error");
            let prev = got.insert(
                (m.partition(), m.offset()),
                (
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                    m.timestamp().to_millis().unwrap_or(-1),
                ),
            );
            assert!(
                prev.is_none(),
                "offset {} of partition {} delivered twice",
                m.offset(),
                m.partition()
            );
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_across_eight_partitions() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let bootstrap = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&bootstrap, &topic, 8, &[]).await;
        let p = producer(&bootstrap, codec);
        let mut acked = HashMap::new();
        let sends: Vec<_> = (0..400)
            .map(|i| {
                let key = format!("host-{}", i % 37);
                let value = format!("{codec} event {i} {}", "x".repeat(i % 300));
                let p = p.clone();
                let topic = topic.clone();
                async move {
                    let r = p
                        .send(FutureRecord::to(&topic).key(&key).payload(&value), WAIT)
                        .await
                        .map_err(|(e, _)| e)
                        .expect("acknowledged");
                    (
                        (r.partition, r.offset),
                        (key.into_bytes(), value.into_bytes()),
                    )
                }
            })
            .collect();
        for (k, v) in futures::future::join_all(sends).await {
            assert!(
                acked.insert(k, v).is_none(),
                "two records acknowledged at one offset"
            );
        }
        let got = consume(&bootstrap, &topic, 8, acked.len());
        assert_eq!(
            got.len(),
            acked.len(),
            "{codec}: every acknowledged record is read back"
        );
        for (pos, (k, v)) in &acked {
            let (gk, gv, _) = &got[pos];
            assert_eq!(
                (gk, gv),
                (k, v),
                "{codec}: record at {pos:?} is the one acknowledged there"
            );
        }
        let partitions_used = acked
            .keys()
            .map(|(p, _)| *p)
            .collect::<std::collections::HashSet<_>>();
        assert!(
            partitions_used.len() >= 6,
            "keys spread over the partitions"
        );
        for p in 0..8 {
            let mut offsets: Vec<i64> = acked
                .keys()
                .filter(|(q, _)| *q == p)
                .map(|(_, o)| *o)
                .collect();
            offsets.sort();
            assert!(
                offsets.iter().enumerate().all(|(i, o)| *o == i as i64),
                "offsets of {p} are dense from 0"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_and_delete_records() {
    let (_dir, url) = temp_storage();
    // Checkpoint often so lookups cross segments and the in-memory tail.
    let broker = BrokerProcess::start(&url, &["--checkpoint-interval-ms", "300"]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "times", 1, &[]).await;
    let p = producer(&bootstrap, "lz4");
    let base = 1_700_000_000_000i64;
    for i in 0..100i64 {
        p.send(
            FutureRecord::to("times")
                .key("k")
                .payload(&format!("v{i}"))
                .timestamp(base + i * 1000),
            WAIT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
        if i == 50 {
            tokio::time::sleep(Duration::from_millis(800)).await; // let a checkpoint happen
        }
    }
    let c = consumer(&bootstrap);
    for (ts, expected) in [
        (base, 0),
        (base + 10_500, 11),
        (base + 70_000, 70),
        (base + 99_000, 99),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let r = c.offsets_for_times(tpl, WAIT).unwrap();
        assert_eq!(
            r.elements()[0].offset(),
            Offset::Offset(expected),
            "first offset at {ts}"
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(base + 200_000))
        .unwrap();
    let r = c.offsets_for_times(tpl, WAIT).unwrap();
    assert_eq!(
        r.elements()[0].offset(),
        Offset::End,
        "past the newest record: no offset"
    );

    let admin: AdminClient<DefaultClientContext> = client_config(&bootstrap).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(42))
        .unwrap();
    let r = admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(r.elements()[0].offset(), Offset::Offset(42));
    assert_eq!(c.fetch_watermarks("times", 0, WAIT).unwrap(), (42, 100));
    let got = consume(&bootstrap, "times", 1, 58);
    assert_eq!(got.len(), 58);
    assert_eq!(got.keys().map(|(_, o)| *o).min(), Some(42));
    // Deleting past the high watermark is refused.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(500))
        .unwrap();
    let r = admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .unwrap();
    assert!(r.elements()[0].error().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_and_bytes_moves_the_log_start() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(
        &url,
        &[
            "--checkpoint-interval-ms",
            "200",
            "--retention-check-interval-ms",
            "200",
        ],
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "by-time", 1, &[("retention.ms", "60000")]).await;
    create_topic(&bootstrap, "by-bytes", 1, &[("retention.bytes", "20000")]).await;
    let p = producer(&bootstrap, "none");
    let now = chrono_now_ms();
    for i in 0..20i64 {
        // Old events (two hours ago) first, then fresh ones, checkpointed separately.
        let ts = if i < 10 { now - 7_200_000 } else { now };
        p.send(
            FutureRecord::to("by-time")
                .key("k")
                .payload("v")
                .timestamp(ts),
            WAIT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
        p.send(
            FutureRecord::to("by-bytes")
                .key("k")
                .payload(&"x".repeat(5000)),
            WAIT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
        if i == 9 {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let c = consumer(&bootstrap);
    let deadline = Instant::now() + WAIT;
    loop {
        let (low_t, high_t) = c.fetch_watermarks("by-time", 0, WAIT).unwrap();
        let (low_b, high_b) = c.fetch_watermarks("by-bytes", 0, WAIT).unwrap();
        if low_t == 10 && low_b > 0 {
            assert_eq!(high_t, 20);
            assert_eq!(high_b, 20);
            let kept = (high_b - low_b) * 5000;
            assert!(
                kept >= 15_000,
                "retention.bytes keeps at least the limit's worth ({kept})"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention did not run: by-time low {low_t}, by-bytes low {low_b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_records_arrive_without_responses() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "fire-and-forget", 2, &[]).await;
    let p: FutureProducer = client_config(&bootstrap)
        .set("acks", "0")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..500 {
        // With acks=0 the delivery report carries no offset: the broker sends nothing back.
        p.send(
            FutureRecord::to("fire-and-forget")
                .key(&format!("k{i}"))
                .payload("v"),
            WAIT,
        )
        .await
        .map_err(|(e, _)| e)
        .expect("sent");
    }
    let got = consume(&bootstrap, "fire-and-forget", 2, 500);
    assert_eq!(got.len(), 500, "every acks=0 record was appended");
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// KIP-848 consumers naming the server assignor "range" (`group.remote.assignor`) get
/// contiguous ranges; a name the broker does not know is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_members_asking_for_range_get_contiguous_ranges() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "ranged", 4, &[]).await;
    let member = |assignor: &str| -> BaseConsumer {
        let c: BaseConsumer = client_config(&bootstrap)
            .set("group.id", "ranged-group")
            .set("group.protocol", "consumer")
            .set("group.remote.assignor", assignor)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        c.subscribe(&["ranged"]).unwrap();
        c
    };
    let members = [member("range"), member("range")];
    let deadline = Instant::now() + WAIT;
    let assigned = loop {
        for m in &members {
            m.poll(Duration::from_millis(100));
        }
        let now: Vec<Vec<i32>> = members
            .iter()
            .map(|m| {
                let mut ps: Vec<i32> = m
                    .assignment()
                    .unwrap()
                    .elements()
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                ps.sort_unstable();
                ps
            })
            .collect();
        if now.iter().all(|p| p.len() == 2) {
            break now;
        }
        assert!(Instant::now() < deadline, "assignments {now:?}");
    };
    let mut ranges = assigned.clone();
    ranges.sort();
    assert_eq!(ranges, vec![vec![0, 1], vec![2, 3]], "{assigned:?}");

    let unknown = member("sticky");
    let deadline = Instant::now() + WAIT;
    let error = loop {
        if let Some(Err(e)) = unknown.poll(Duration::from_millis(100)) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no error for an unknown assignor"
        );
    };
    assert!(
        error.to_string().to_lowercase().contains("assignor"),
        "{error}"
    );
}
