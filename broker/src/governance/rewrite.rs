//! Rewriting a batch that holds invalid records, in dead-letter mode: the valid records
//! become the batch that lands (same producer, compression, offsets and sequences as
//! the client gave them: the invalid ones leave gaps, as Kafka's log cleaner leaves
//! them), the invalid ones become a batch for the dead-letter topic with headers saying
//! why. So every record lands at the offset its producer was acknowledged with.
//!
//! Both are deterministic functions of the client's batch, which is what makes an
//! idempotent retry safe: the retry is checked and rewritten the same way, and each
//! rewritten batch is found as a duplicate by its own sequence range
//! (`docs/schema-validation.md`, "Exactly once through retries").

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_protocol::record_batch::BatchHeader;
use uuid::Uuid;

use super::check::CheckedBatch;
use crate::storage::producer::INTERNAL_PRODUCER_BIT;

/// Where the dead-lettered records came from, for their headers.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub topic_id: Uuid,
    pub partition: i32,
    pub subject: &'a str,
    pub client_id: &'a str,
}

/// Headers added to every dead-lettered record (its own headers are kept before them).
pub mod header {
    pub const REASON: &str = "sluice.dlq.reason";
    pub const ERROR: &str = "sluice.dlq.error";
    pub const TOPIC: &str = "sluice.dlq.topic";
    pub const PARTITION: &str = "sluice.dlq.partition";
    pub const SUBJECT: &str = "sluice.dlq.subject";
    pub const SCHEMA_ID: &str = "sluice.dlq.schema.id";
    pub const BATCH_INDEX: &str = "sluice.dlq.batch.index";
    pub const PRODUCER_ID: &str = "sluice.dlq.producer.id";
    pub const CLIENT_ID: &str = "sluice.dlq.client.id";
}

/// Sequence `n` steps after `seq`, wrapping like Kafka's (at `i32::MAX` back to 0).
fn seq_add(seq: i32, n: i64) -> i32 {
    if seq < 0 {
        return -1;
    }
    (i64::from(seq) + n).rem_euclid(i64::from(i32::MAX) + 1) as i32
}

fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding records into a buffer cannot fail");
    buf.freeze()
}

/// Renumbers records from offset 0 with sequences from `base`, as one batch.
fn renumber(records: impl Iterator<Item = Record>, producer_id: i64, base: i32) -> Vec<Record> {
    records
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            producer_id,
            // The encoder keeps one batch while offset - sequence is constant.
            sequence: base.wrapping_add(i as i32),
            ..r
        })
        .collect()
}

/// `records` as one batch spanning exactly the client's offsets and sequences: each
/// record keeps its offset delta, and the batch's base sequence and last offset delta
/// are the client's whatever records are missing.
fn encode_in_place(client: &BatchHeader, records: &[Record], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .map(|r| {
            let delta = r.offset - client.base_offset;
            Record {
                offset: delta,
                producer_id: client.producer_id,
                // The encoder derives the base sequence from the first record's: without
                // a producer id it must come out -1.
                sequence: if client.producer_id >= 0 {
                    seq_add(client.base_sequence, delta)
                } else {
                    delta as i32 - 1
                },
                ..r.clone()
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_spanning(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
        0,
        i64::from(client.last_offset_delta),
    )
    .expect("records of one client batch encode as one batch");
    buf.freeze()
}

/// The valid records of `checked` as one batch occupying the client's offsets and
/// sequence range: the producer's next batch follows it, and each record is where the
/// producer's acknowledgement says.
pub fn valid_batch(client: &BatchHeader, checked: &CheckedBatch) -> Option<Bytes> {
    let kept: Vec<Record> = checked
        .records
        .iter()
        .enumerate()
        .filter(|(i, _)| !checked.is_invalid(*i))
        .map(|(_, r)| r.clone())
        .collect();
    if kept.is_empty() {
        return None;
    }
    Some(encode_in_place(client, &kept, checked.compression))
}

/// For a batch with no valid record: a control batch with one COMMIT marker (what
/// Kafka writes at the end of a transaction, which every consumer skips) spanning the
/// client's offsets and sequence range, so the producer's next batch is in order on
/// this partition, survives a move like any batch, and lands where the producer's
/// offsets say.
pub fn sequence_marker(client: &BatchHeader) -> Bytes {
    let marker = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: client.producer_id,
        producer_epoch: client.producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: client.base_offset,
        sequence: client.base_sequence,
        timestamp: client.max_timestamp,
        // Control record key: version 0, type 1 (COMMIT); value: version 0,
        // coordinator epoch 0.
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Default::default(),
    };
    encode_in_place(client, &[marker], Compression::None)
}

/// The broker's own producer id for dead-lettering the records of `producer_id` that
/// were sent to `topic_id`/`partition`: one per source, so its sequences (the client's)
/// only grow on the dead-letter partition.
pub fn internal_producer_id(topic_id: Uuid, partition: i32, producer_id: i64) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = topic_id
        .as_bytes()
        .iter()
        .copied()
        .chain(partition.to_be_bytes())
        .chain(producer_id.to_be_bytes());
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    INTERNAL_PRODUCER_BIT | (h as i64 & (INTERNAL_PRODUCER_BIT - 1))
}

/// The invalid records of `checked` as one batch for the dead-letter topic: key, value,
/// timestamp and headers as the client sent them, plus headers saying why and whence.
/// With an idempotent client the batch is idempotent too: the broker's producer id for
/// this source, the client's epoch, and the client's sequence of the first invalid record.
pub fn dead_letter_batch(client: &BatchHeader, checked: &CheckedBatch, origin: &Origin) -> Bytes {
    let text = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
    let records = checked.invalid.iter().map(|(index, why)| {
        let mut r = checked.records[*index].clone();
        let mut add = |name: &'static str, value: Option<Bytes>| {
            r.headers.insert(StrBytes::from_static_str(name), value);
        };
        add(header::REASON, text(why.reason.label()));
        add(header::ERROR, text(&why.detail));
        add(header::TOPIC, text(origin.topic));
        add(header::PARTITION, text(&origin.partition.to_string()));
        add(header::SUBJECT, text(origin.subject));
        if let Some(id) = why.schema_id {
            add(header::SCHEMA_ID, text(&id.to_string()));
        }
        add(header::BATCH_INDEX, text(&index.to_string()));
        add(header::PRODUCER_ID, text(&client.producer_id.to_string()));
        add(header::CLIENT_ID, text(origin.client_id));
        r.transactional = false;
        r.control = false;
        r.producer_epoch = client.producer_epoch;
        r
    });
    let (producer_id, base) = match checked.invalid.first() {
        Some((first, _)) if client.producer_id >= 0 => (
            internal_producer_id(origin.topic_id, origin.partition, client.producer_id),
            seq_add(client.base_sequence, *first as i64),
        ),
        _ => (-1, -1),
    };
    let mut records = renumber(records, producer_id, base);
    if producer_id < 0 {
        for r in &mut records {
            r.producer_epoch = -1;
        }
    }
    encode(&records, checked.compression)
}
