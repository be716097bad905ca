//! The storage engine passes the same tests on the memory backend, the file backend and
//! a real S3-compatible server (moto) on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use sluice_broker::metrics::Metrics;
use sluice_broker::storage::engine::Claim;
use sluice_broker::storage::{EngineConfig, LogEngine, PartitionLog, ReadLimit, Store};
use sluice_protocol::record_batch::{self, encode_batch, BatchHeader, NewRecord, ProducerFields};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(30);

fn batch(count: usize, ts: i64, producer: Option<(i64, i32)>) -> Bytes {
    let records = (0..count).map(|i| NewRecord {
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::from(vec![b'x'; 100])),
        timestamp: ts + i as i64,
    });
    let producer = producer.map(|(producer_id, base_sequence)| ProducerFields {
        producer_id,
        epoch: 0,
        base_sequence,
    });
    encode_batch(records, producer, Compression::Lz4)
}

fn config(node_id: i32) -> EngineConfig {
    EngineConfig {
        node_id,
        wal_linger: Duration::from_millis(2),
        checkpoint_interval: Duration::from_secs(3600),
        segment_max_bytes: 64 * 1024,
        cache_bytes: 4 * 1024 * 1024,
        ..EngineConfig::default()
    }
}

async fn append(
    engine: &LogEngine,
    part: &Arc<sluice_broker::storage::PartitionLog>,
    b: &Bytes,
) -> i64 {
    let h = record_batch::validate_produce_records(b).unwrap();
    let a = engine.append(part, b, h, TIMEOUT).await.unwrap();
    engine
        .wait_durable(part, a.durable_at, TIMEOUT)
        .await
        .unwrap();
    a.base_offset
}

/// Reads every batch from `from` to the high watermark.
async fn read_all(
    engine: &LogEngine,
    part: &sluice_broker::storage::PartitionLog,
    from: i64,
) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut offset = from;
    let hw = part.high_watermark();
    while offset < hw {
        let data = engine
            .read(part, offset, ReadLimit::at_least_one(100_000))
            .await
            .unwrap();
        assert!(!data.is_empty(), "no data at {offset} below hw {hw}");
        for (h, _) in record_batch::split(&data) {
            if h.next_offset() <= offset {
                continue;
            }
            if out.is_empty() {
                assert!(
                    h.base_offset <= offset,
                    "first batch holds the start offset"
                );
            } else {
                assert_eq!(h.base_offset, offset, "offsets dense and in order");
            }
            offset = h.next_offset();
            out.push(h);
        }
    }
    out
}

/// Takes over partitions 0 and 1 of topic `t` at `epoch`.
async fn lead(
    engine: &LogEngine,
    topic: Uuid,
    epoch: i32,
) -> (Arc<PartitionLog>, Arc<PartitionLog>) {
    let claims = (0..2)
        .map(|partition| Claim {
            topic: "t".into(),
            topic_id: topic,
            partition,
            epoch,
        })
        .collect();
    let mut parts = engine
        .take_over(claims)
        .await
        .into_iter()
        .map(|(_, r)| r.unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

async fn exercise(url: &str) {
    let metrics = Arc::new(Metrics::new());
    let store = Store::from_url(url, metrics.clone()).unwrap();
    let topic = Uuid::new_v4();

    // Node 0: append across two partitions, checkpoint half, then stall (a zombie).
    let engine = LogEngine::open(store.clone(), config(0), metrics.clone())
        .await
        .unwrap();
    let (p0, p1) = lead(&engine, topic, 0).await;
    for i in 0..20 {
        assert_eq!(
            append(&engine, &p0, &batch(10, 1_000 + i * 10, None)).await,
            i * 10
        );
    }
    engine.checkpoint_all().await.unwrap();
    for i in 20..40 {
        append(&engine, &p0, &batch(10, 1_000 + i * 10, None)).await;
        append(
            &engine,
            &p1,
            &batch(5, 5_000, Some((7, (i as i32 - 20) * 5))),
        )
        .await;
    }
    assert_eq!(p0.high_watermark(), 400);
    assert_eq!(p1.high_watermark(), 100);
    // Timestamp lookups cross segments and the tail.
    assert_eq!(
        engine.offset_for_timestamp(&p0, 1_055).await.unwrap(),
        Some((55, 1_055))
    );
    assert_eq!(
        engine.offset_for_timestamp(&p0, 1_350).await.unwrap(),
        Some((350, 1_350))
    );
    assert_eq!(engine.offset_for_timestamp(&p0, 9_999).await.unwrap(), None);
    assert_eq!(engine.max_timestamp(&p0).await.unwrap(), Some((399, 1_399)));
    let (zombie, zp0) = (engine, p0);

    // Failover: node 1 fences node 0's WAL stream and recovers the tail, with producer
    // state, into segments.
    let engine = LogEngine::open(store.clone(), config(1), metrics.clone())
        .await
        .unwrap();
    let (p0, p1) = lead(&engine, topic, 1).await;
    assert_eq!(p0.high_watermark(), 400);
    assert_eq!(p1.high_watermark(), 100);
    assert_eq!(read_all(&engine, &p0, 0).await.len(), 40);
    assert_eq!(read_all(&engine, &p1, 0).await.len(), 20);
    // A retried batch of producer 7 is a duplicate with its original offsets.
    let dup = batch(5, 5_000, Some((7, 95)));
    let h = record_batch::validate_produce_records(&dup).unwrap();
    let a = engine.append(&p1, &dup, h, TIMEOUT).await.unwrap();
    assert!(a.duplicate);
    assert_eq!(a.base_offset, 95);
    // A gap is refused.
    let gap = batch(5, 5_000, Some((7, 200)));
    let h = record_batch::validate_produce_records(&gap).unwrap();
    assert!(engine.append(&p1, &gap, h, TIMEOUT).await.is_err());
    // The zombie can never acknowledge again: its next WAL object hits the fence.
    let late = batch(1, 9_000, None);
    let h = record_batch::validate_produce_records(&late).unwrap();
    let a = zombie.append(&zp0, &late, h, TIMEOUT).await.unwrap();
    assert!(zombie
        .wait_durable(&zp0, a.durable_at, TIMEOUT)
        .await
        .is_err());
    assert!(zombie.is_fenced());
    assert!(zombie.checkpoint_partition(&zp0).await.is_err());
    assert_eq!(p0.high_watermark(), 400, "the zombie's record is nowhere");

    engine.checkpoint_all().await.unwrap();
    // Record deletion and retention move the log start offset.
    assert_eq!(engine.delete_records(&p0, 123).await.unwrap(), 123);
    assert!(
        engine
            .read(&p0, 100, ReadLimit::at_least_one(1000))
            .await
            .is_err(),
        "below log start is out of range"
    );
    assert_eq!(
        read_all(&engine, &p0, 123)
            .await
            .first()
            .unwrap()
            .base_offset,
        120
    );
    let dropped = engine
        .enforce_retention(&p0, 0, -1, 1_000_000)
        .await
        .unwrap();
    assert!(dropped > 0);
    assert_eq!(p0.offsets().log_start_offset, 400);
    // A graceful hand-over: the tail is released into a segment, no fence needed.
    append(&engine, &p1, &batch(5, 6_000, Some((7, 100)))).await;
    engine.release_partition(topic, 0).await.unwrap();
    engine.release_partition(topic, 1).await.unwrap();
    assert!(engine.partition(topic, 0).is_none());
    let h = record_batch::validate_produce_records(&late).unwrap();
    assert!(
        engine.append(&p0, &late, h, TIMEOUT).await.is_err(),
        "released: no appends"
    );

    // Node 2 takes over the released partitions: state intact, node 1 is not fenced.
    let next = LogEngine::open(store.clone(), config(2), metrics.clone())
        .await
        .unwrap();
    let (p0, p1) = lead(&next, topic, 2).await;
    assert!(!engine.is_fenced(), "a released partition needs no fence");
    assert_eq!(p0.offsets().log_start_offset, 400);
    assert_eq!(p1.high_watermark(), 105);
    let dup = batch(5, 6_000, Some((7, 100)));
    let h = record_batch::validate_produce_records(&dup).unwrap();
    assert!(next.append(&p1, &dup, h, TIMEOUT).await.unwrap().duplicate);
    engine.shutdown().await.unwrap();
    let engine = next;
    assert_eq!(p0.high_watermark(), 400);
    assert_eq!(read_all(&engine, &p1, 0).await.len(), 21);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn memory_backend() {
    exercise("memory://").await;
}

#[tokio::test]
async fn file_backend() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!("file://{}", dir.path().display())).await;
}

#[tokio::test]
async fn s3_compatible_backend() {
    let moto = sluice_testkit::Moto::start();
    moto.create_bucket("sluice-test");
    // Safety: set before any thread reads the environment in this test process's S3 use.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
    }
    exercise("s3://sluice-test/cluster-a").await;
}

/// Found by the simulation (sim/, seed 10): a broker acting on a stale assignment (its
/// metadata behind after a partition from the bucket) took a partition over from its
/// newer leader, fencing that leader and writing the manifest at the older epoch. A
/// claim older than the manifest's epoch is refused before anything is fenced.
#[tokio::test]
async fn a_stale_claim_never_fences_the_newer_leader() {
    let metrics = Arc::new(Metrics::new());
    let store = Store::from_url("memory://", metrics.clone()).unwrap();
    let topic = Uuid::new_v4();
    let newer = LogEngine::open(store.clone(), config(1), metrics.clone())
        .await
        .unwrap();
    let (p0, _) = lead(&newer, topic, 3).await;
    assert_eq!(append(&newer, &p0, &batch(10, 1_000, None)).await, 0);
    let stale = LogEngine::open(store.clone(), config(2), metrics.clone())
        .await
        .unwrap();
    let claim = Claim {
        topic: "t".into(),
        topic_id: topic,
        partition: 0,
        epoch: 2,
    };
    let (_, refused) = stale.take_over(vec![claim]).await.pop().unwrap();
    assert!(refused.is_err(), "a claim at an older epoch is refused");
    // The newer leader was not fenced: it still acknowledges and checkpoints.
    assert_eq!(append(&newer, &p0, &batch(10, 2_000, None)).await, 10);
    assert!(!newer.is_fenced());
    newer.checkpoint_all().await.unwrap();
}
