//! Fetch's size limits as Kafka keeps them: a response holds whole batches within the
//! request's `max_bytes` and each partition's `partition_max_bytes`, except that the
//! response's first batch may exceed them (so a consumer always progresses). A larger
//! response makes librdkafka drop it and retry for ever, so a backlog bigger than the
//! limit across many partitions is the case that matters.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{temp_storage, BrokerProcess, KafkaConn};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_protocol::record_batch::{encode_batch, NewRecord};

const PARTITIONS: i32 = 8;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// One batch of `count` records of `size` bytes each into `partition`.
fn produce(conn: &mut KafkaConn, topic: &str, partition: i32, count: usize, size: usize) {
    let batch = encode_batch(
        (0..count).map(|_| NewRecord {
            key: None,
            value: Some(Bytes::from(vec![b'v'; size])),
            timestamp: 0,
        }),
        None,
        Compression::None,
    );
    let r = conn
        .try_produce(topic, partition, batch)
        .expect("an answer");
    assert_eq!(r.error_code, 0);
}

/// Fetch v12 of every partition from offset 0: the record bytes per partition.
fn fetch(
    conn: &mut KafkaConn,
    topic: &str,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Vec<usize> {
    let r: FetchResponse = conn.request(
        ApiKey::Fetch,
        12,
        &FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                )]),
    );
    r.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            p.records.as_ref().map_or(0, |r| r.len())
        })
        .collect()
}

#[test]
fn a_fetch_response_stays_within_max_bytes_but_for_its_first_batch() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &["--default-partitions", "8"]);
    let mut conn = broker.connect();
    conn.auto_create_topic("backlog");
    // Per partition: four batches of ~100 KB (10 records of 10 KB): 3.2 MB in all.
    for p in 0..PARTITIONS {
        for _ in 0..4 {
            produce(&mut conn, "backlog", p, 10, 10_000);
        }
    }
    let batch = 100_000..110_000;

    // The request's limit across partitions: whole batches, never above it.
    let sizes = fetch(&mut conn, "backlog", 1_000_000, 1_048_576);
    let total: usize = sizes.iter().sum();
    assert!(
        total <= 1_000_000,
        "{total} bytes for max_bytes 1000000: {sizes:?}"
    );
    assert!(total >= 900_000, "fills what fits: {sizes:?}");

    // Each partition's limit.
    let sizes = fetch(&mut conn, "backlog", 50_000_000, 250_000);
    for s in &sizes {
        assert!(
            batch.contains(&(s / 2)),
            "two batches of a partition fit in 250000: {sizes:?}"
        );
    }

    // A first batch larger than both limits is still returned, alone.
    let sizes = fetch(&mut conn, "backlog", 1_000, 1_000);
    assert!(batch.contains(&sizes[0]), "{sizes:?}");
    assert!(sizes[1..].iter().all(|s| *s == 0), "{sizes:?}");
}

#[test]
fn librdkafka_reads_a_backlog_larger_than_its_fetch_limit() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &["--default-partitions", "8"]);
    let mut conn = broker.connect();
    conn.auto_create_topic("backlog");
    for p in 0..PARTITIONS {
        for _ in 0..8 {
            produce(&mut conn, "backlog", p, 10, 10_000);
        }
    }
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "backlog-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1000000")
        .set("max.partition.fetch.bytes", "1048576")
        .set("receive.message.max.bytes", "1100000")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("backlog", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let want = (PARTITIONS * 8 * 10) as usize;
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < want {
        assert!(
            Instant::now() < deadline,
            "read {got} of {want} records: stalled"
        );
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            assert_eq!(
                m.expect("no error").payload().map(|p| p.len()),
                Some(10_000)
            );
            got += 1;
        }
    }
}
