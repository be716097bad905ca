//! Record batch v2 headers: parsing, validation and the two fields a leader rewrites.
//!
//! Batches are stored verbatim as the client sent them. The leader only rewrites the
//! base offset and the partition leader epoch, both of which sit before the CRC'd range,
//! so the client's CRC stays valid (this is what Kafka does too).

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Size of the fixed v2 batch header (up to and including the records count).
pub const HEADER_LEN: usize = 61;
/// Bytes before the batch length field is counted (base offset + length).
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LEADER_EPOCH_OFFSET: usize = 12;

const COMPRESSION_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: {0} bytes")]
    Truncated(usize),
    #[error("unsupported record batch magic {0}; only v2 is accepted")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record batch length {declared} does not match the {actual} bytes present")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("record batch declares {count} records for offset delta {delta}")]
    BadRecordCount { count: i32, delta: i32 },
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    #[error("a produce request must carry exactly one record batch per partition, found {0}")]
    NotExactlyOne(usize),
}

/// The fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` without checking the CRC.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated(buf.len()));
        }
        let mut b = &buf[..HEADER_LEN];
        let header = BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            records_count: b.get_i32(),
        };
        if header.magic != 2 {
            return Err(BatchError::UnsupportedMagic(header.magic));
        }
        Ok(header)
    }

    /// Total size of the batch on the wire, including offset and length fields.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset just past this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Sequence number of the last record, wrapping like Kafka's.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// Validates one complete batch as a producer sent it: magic, length, record count, codec
/// and CRC-32C.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_len() != buf.len() {
        return Err(BatchError::LengthMismatch {
            declared: header.total_len(),
            actual: buf.len(),
        });
    }
    if header.records_count <= 0
        || Some(header.records_count) != header.last_offset_delta.checked_add(1)
    {
        return Err(BatchError::BadRecordCount {
            count: header.records_count,
            delta: header.last_offset_delta,
        });
    }
    if header.compression() > 4 {
        return Err(BatchError::UnknownCodec(header.compression()));
    }
    let actual = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Validates the `records` field of one produce partition: exactly one v2 batch.
pub fn validate_produce_records(records: &[u8]) -> Result<BatchHeader, BatchError> {
    let batches = split(records).count();
    if batches != 1 {
        return Err(BatchError::NotExactlyOne(batches));
    }
    validate(records)
}

/// Returns a copy of `batch` with the leader's base offset and leader epoch written in.
pub fn assign(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut out = BytesMut::from(batch);
    out[..8].copy_from_slice(&base_offset.to_be_bytes());
    out[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    debug_assert_eq!(out[MAGIC_OFFSET], 2);
    debug_assert!(out.len() >= CRC_OFFSET + 4);
    out.freeze()
}

/// One record to put into a new batch.
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp: i64,
}

/// The idempotent-producer fields of a new batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// Encodes records as exactly one v2 batch (offsets from 0), the way a client does; the
/// broker uses it for its own internal records.
pub fn encode_batch(
    records: impl IntoIterator<Item = NewRecord>,
    producer: Option<ProducerFields>,
    compression: kafka_protocol::records::Compression,
) -> Bytes {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let (producer_id, epoch, base_sequence) =
        producer.map_or((-1, -1, -1), |p| (p.producer_id, p.epoch, p.base_sequence));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes and keeps
            // the first record's sequence as the batch's: count up from the base (-1 for
            // a batch without idempotence).
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding records into a buffer cannot fail");
    debug_assert_eq!(split(&buf).count(), 1, "one batch");
    buf.freeze()
}

/// Iterates over the complete batches in a buffer of concatenated batches, stopping at
/// the first partial or unparsable one.
pub fn split(buf: &[u8]) -> impl Iterator<Item = (BatchHeader, std::ops::Range<usize>)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(&buf[pos..]).ok()?;
        let end = pos.checked_add(header.total_len())?;
        if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || end > buf.len() {
            return None;
        }
        let range = pos..end;
        pos = end;
        Some((header, range))
    })
}

/// Like [`split`] but over shared bytes, yielding zero-copy slices.
pub fn split_bytes(buf: &Bytes) -> impl Iterator<Item = (BatchHeader, Bytes)> + '_ {
    split(buf).map(move |(h, r)| (h, buf.slice(r)))
}

/// Batches for tests, here and in the crates that store them (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    use super::*;
    use kafka_protocol::records::Compression;

    /// Encodes a real v2 batch with the kafka-protocol encoder, as a client would.
    pub fn make_batch(count: usize, compression: Compression, ts: i64) -> Bytes {
        make_batch_with_producer(count, compression, ts, -1, -1, -1)
    }

    pub fn make_batch_with_producer(
        count: usize,
        compression: Compression,
        ts: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Bytes {
        let producer = (producer_id >= 0).then_some(ProducerFields {
            producer_id,
            epoch: producer_epoch,
            base_sequence,
        });
        let records = (0..count).map(|i| NewRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            timestamp: ts + i as i64,
        });
        encode_batch(records, producer, compression)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{make_batch, make_batch_with_producer};
    use super::*;
    use kafka_protocol::records::Compression;

    #[test]
    fn validates_batches_of_every_codec() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = make_batch(10, c, 1_000);
            let h = validate_produce_records(&batch).expect("valid batch");
            assert_eq!(h.records_count, 10);
            assert_eq!(h.last_offset_delta, 9);
            assert_eq!(h.max_timestamp, 1_009);
        }
    }

    #[test]
    fn rejects_corrupted_crc() {
        let mut batch = BytesMut::from(&make_batch(3, Compression::None, 0)[..]);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(matches!(
            validate(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn rejects_truncated_and_trailing_bytes() {
        let batch = make_batch(3, Compression::None, 0);
        assert!(matches!(
            validate(&batch[..30]),
            Err(BatchError::Truncated(30))
        ));
        assert!(matches!(
            validate(&batch[..batch.len() - 1]),
            Err(BatchError::LengthMismatch { .. })
        ));
        let mut two = BytesMut::from(&batch[..]);
        two.extend_from_slice(&batch);
        assert_eq!(
            validate_produce_records(&two),
            Err(BatchError::NotExactlyOne(2))
        );
    }

    #[test]
    fn assigning_offsets_keeps_the_crc_valid() {
        let batch = make_batch(5, Compression::Lz4, 0);
        let assigned = assign(&batch, 1234, 7);
        let h = validate(&assigned).expect("crc still valid");
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 1238);
    }

    #[test]
    fn split_stops_at_partial_batch() {
        let a = make_batch(2, Compression::None, 0);
        let mut buf = BytesMut::from(&a[..]);
        buf.extend_from_slice(&a[..a.len() - 3]);
        assert_eq!(split(&buf).count(), 1);
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        let batch = make_batch_with_producer(3, Compression::None, 0, 1, 0, i32::MAX - 1);
        let h = validate(&batch).unwrap();
        assert_eq!(h.last_sequence(), 0);
    }
}
