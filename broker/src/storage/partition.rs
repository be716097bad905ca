//! One partition's log as its leader holds it: the committed manifest (segments), the
//! durable-or-pending tail since the last checkpoint, offsets and producer state.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use sluice_protocol::record_batch::BatchHeader;
use uuid::Uuid;

use super::error::{Result, StorageError};
use super::manifest::Manifest;
use super::producer::ProducerTable;
use super::segment::SegmentInfo;
use super::wal::WalPosition;

/// A batch past the last checkpoint, and the WAL object that holds it.
#[derive(Debug, Clone)]
pub struct TailBatch {
    pub header: BatchHeader,
    pub bytes: Bytes,
    pub wal: WalPosition,
}

#[derive(Debug)]
pub struct PartitionState {
    pub leader_epoch: i32,
    pub manifest: Arc<Manifest>,
    pub manifest_version: u64,
    pub log_start_offset: i64,
    /// Next offset to assign (log end offset).
    pub next_offset: i64,
    /// Everything below is durable and visible to consumers.
    pub high_watermark: i64,
    /// Batches from `manifest.next_offset` on, in offset order.
    pub tail: VecDeque<TailBatch>,
    pub tail_bytes: usize,
    pub producers: ProducerTable,
    /// Set when the partition is deleted or moved away: no more appends.
    pub closed: bool,
}

/// Offsets of a partition at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
}

/// How much one read may return: whole batches while they fit in `max_bytes`, and a
/// first batch larger than that only if `first_may_exceed`. Kafka lets the first batch of
/// a fetch response exceed the request's limits, so that a consumer always progresses,
/// and nothing after it: clients refuse a larger response (librdkafka then retries for
/// ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimit {
    pub max_bytes: usize,
    pub first_may_exceed: bool,
}

impl ReadLimit {
    /// At least one batch, then more while under `max_bytes`.
    pub fn at_least_one(max_bytes: usize) -> Self {
        ReadLimit {
            max_bytes,
            first_may_exceed: true,
        }
    }

    /// Whether a batch of `next` bytes may follow `have` bytes already read.
    pub fn fits(&self, have: usize, next: usize) -> bool {
        (have == 0 && self.first_may_exceed) || have + next <= self.max_bytes
    }
}

/// Where a read at some offset must be served from.
#[derive(Debug)]
pub enum ReadPlan {
    /// Nothing new at this offset yet.
    Empty,
    /// Batches copied from the in-memory tail.
    Memory(Bytes),
    /// Batches in this segment object.
    Segment(SegmentInfo),
}

pub struct PartitionLog {
    pub topic_id: Uuid,
    pub partition: i32,
    pub topic: String,
    pub(crate) state: Mutex<PartitionState>,
    /// Serialises manifest writes (checkpoint, retention, record deletion).
    pub(crate) writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl PartitionLog {
    pub(crate) fn new(topic: String, manifest: Manifest, version: u64, epoch: i32) -> Arc<Self> {
        let producers = ProducerTable::from_snapshot(&manifest.producers);
        let state = PartitionState {
            leader_epoch: epoch,
            log_start_offset: manifest.log_start_offset,
            next_offset: manifest.next_offset,
            high_watermark: manifest.next_offset,
            tail: VecDeque::new(),
            tail_bytes: 0,
            producers,
            closed: false,
            manifest_version: version,
            manifest: Arc::new(manifest),
        };
        Arc::new(PartitionLog {
            topic_id: state.manifest.topic_id,
            partition: state.manifest.partition,
            topic,
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    pub fn offsets(&self) -> Offsets {
        let s = self.state.lock();
        Offsets {
            log_start_offset: s.log_start_offset,
            high_watermark: s.high_watermark,
            log_end_offset: s.next_offset,
            leader_epoch: s.leader_epoch,
        }
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `requested` this log knows
    /// and the offset where the next one starts (the high watermark for the current
    /// epoch: nothing past it is acknowledged).
    pub fn end_offset_for_epoch(&self, requested: i32) -> Option<(i32, i64)> {
        let s = self.state.lock();
        super::manifest::end_offset_for_epoch(&s.manifest.epochs, requested, s.high_watermark)
    }

    pub fn high_watermark(&self) -> i64 {
        self.state.lock().high_watermark
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }

    /// Called once the WAL object holding records below `end` is durable.
    pub(crate) fn advance_high_watermark(&self, end: i64) -> i64 {
        let mut s = self.state.lock();
        if end > s.high_watermark {
            s.high_watermark = end;
        }
        s.high_watermark
    }

    /// Decides where a read at `offset` comes from; copies what `limit` allows when the
    /// tail holds it.
    pub fn plan_read(&self, offset: i64, limit: ReadLimit) -> Result<ReadPlan> {
        let s = self.state.lock();
        if offset < s.log_start_offset || offset > s.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                partition: self.name(),
                offset,
                start: s.log_start_offset,
                end: s.high_watermark,
            });
        }
        if offset == s.high_watermark {
            return Ok(ReadPlan::Empty);
        }
        if offset >= s.manifest.next_offset {
            let first = s.tail.partition_point(|b| b.header.next_offset() <= offset);
            let mut out = BytesMut::new();
            for b in s.tail.range(first..) {
                if b.header.base_offset >= s.high_watermark || !limit.fits(out.len(), b.bytes.len())
                {
                    break;
                }
                out.extend_from_slice(&b.bytes);
            }
            return Ok(ReadPlan::Memory(out.freeze()));
        }
        let segs = &s.manifest.segments;
        let i = segs.partition_point(|seg| seg.end_offset <= offset);
        match segs.get(i) {
            Some(seg) => Ok(ReadPlan::Segment(seg.clone())),
            None => Err(StorageError::corrupt(
                self.name(),
                format!("no segment holds checkpointed offset {offset}"),
            )),
        }
    }

    /// Segments (oldest first) and tail batches, for timestamp searches.
    pub(crate) fn search_view(&self) -> (Vec<SegmentInfo>, Vec<TailBatch>, i64) {
        let s = self.state.lock();
        let hw = s.high_watermark;
        let tail = s
            .tail
            .iter()
            .filter(|b| b.header.base_offset < hw && b.header.next_offset() > s.log_start_offset)
            .cloned()
            .collect();
        let segs = s
            .manifest
            .segments
            .iter()
            .filter(|seg| seg.end_offset > s.log_start_offset)
            .cloned()
            .collect();
        (segs, tail, s.log_start_offset)
    }
}
