//! Partition manifests: `log/<topic-id>/<partition>/manifest/<version>`, one JSON document
//! per version, created with put-if-absent. Whoever creates version N+1 owns the
//! partition's log at that point; a writer holding a stale version learns it is fenced
//! when its write fails.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::producer::ProducerSnapshot;
use super::segment::SegmentInfo;
use super::wal::WalPosition;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_node: i32,
    /// The leader's incarnation: which WAL stream holds the un-checkpointed tail.
    #[serde(default)]
    pub leader_incarnation: u64,
    pub leader_epoch: i32,
    pub log_start_offset: i64,
    /// Offset just past the last checkpointed record: segments cover below it, the WAL
    /// holds the rest.
    pub next_offset: i64,
    pub segments: Vec<SegmentInfo>,
    /// The first WAL object that may hold records at or past `next_offset`.
    pub wal_start: Option<WalPosition>,
    /// Idempotent producer state as of `next_offset`.
    pub producers: Vec<ProducerSnapshot>,
    /// Set by a graceful hand-over: every record is in a segment and the leader writes
    /// nothing more, so the next leader needs no fence.
    #[serde(default)]
    pub released: bool,
    /// Leader epochs and the offset each started at, oldest first (Kafka's leader epoch
    /// cache, answering OffsetForLeaderEpoch).
    #[serde(default)]
    pub epochs: Vec<EpochStart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Epochs remembered; clients only ask about recent ones.
const MAX_EPOCHS: usize = 128;

impl Manifest {
    pub fn empty(topic_id: Uuid, partition: i32) -> Self {
        Manifest {
            topic_id,
            partition,
            leader_node: -1,
            leader_incarnation: 0,
            leader_epoch: 0,
            log_start_offset: 0,
            next_offset: 0,
            segments: Vec::new(),
            wal_start: None,
            producers: Vec::new(),
            released: false,
            epochs: Vec::new(),
        }
    }

    /// Records that `epoch` starts at the current end of the log. Epochs that started at
    /// the same offset or later had no records and are forgotten, as Kafka does.
    pub fn record_epoch(&mut self, epoch: i32) {
        let start = self.next_offset;
        if self.epochs.last().is_some_and(|e| e.epoch >= epoch) {
            return;
        }
        while self.epochs.last().is_some_and(|e| e.start_offset >= start) {
            self.epochs.pop();
        }
        self.epochs.push(EpochStart {
            epoch,
            start_offset: start,
        });
        if self.epochs.len() > MAX_EPOCHS {
            self.epochs.remove(0);
        }
    }

    pub fn segment_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.data_len).sum()
    }
}

pub fn manifest_prefix(topic_id: Uuid, partition: i32) -> object_store::path::Path {
    super::segment::partition_prefix(topic_id, partition).join("manifest")
}

/// The current manifest of a partition and its version (version 0 and an empty manifest
/// when it has none yet).
pub async fn read_latest(
    store: &super::Store,
    topic_id: Uuid,
    partition: i32,
) -> super::error::Result<(u64, Manifest)> {
    let versions =
        super::versioned::VersionedObject::new(store.clone(), manifest_prefix(topic_id, partition));
    match versions.latest().await? {
        None => Ok((0, Manifest::empty(topic_id, partition))),
        Some((v, d)) => serde_json::from_slice::<Manifest>(&d)
            .map(|m| (v, m))
            .map_err(|e| super::error::StorageError::corrupt(versions.prefix(), e)),
    }
}

/// Kafka's OffsetForLeaderEpoch answer from an epoch history: the largest known epoch at
/// or below `requested` and the offset where the next epoch starts (`log_end` for the
/// current epoch); `None` for an epoch newer than any known.
pub fn end_offset_for_epoch(
    epochs: &[EpochStart],
    requested: i32,
    log_end: i64,
) -> Option<(i32, i64)> {
    let current = epochs.last()?;
    if requested == current.epoch {
        return Some((requested, log_end));
    }
    let higher = epochs.iter().position(|e| e.epoch > requested)?;
    let floor = if higher == 0 {
        requested
    } else {
        epochs[higher - 1].epoch
    };
    Some((floor, epochs[higher].start_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(pairs: &[(i32, i64)]) -> Vec<EpochStart> {
        pairs
            .iter()
            .map(|&(epoch, start_offset)| EpochStart {
                epoch,
                start_offset,
            })
            .collect()
    }

    #[test]
    fn epochs_without_records_are_replaced() {
        let mut m = Manifest::empty(Uuid::nil(), 0);
        m.record_epoch(0);
        m.record_epoch(1);
        assert_eq!(m.epochs, history(&[(1, 0)]));
        m.next_offset = 10;
        m.record_epoch(3);
        m.record_epoch(2); // stale: ignored
        assert_eq!(m.epochs, history(&[(1, 0), (3, 10)]));
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let h = history(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(end_offset_for_epoch(&h, 4, 40), Some((4, 40)));
        assert_eq!(end_offset_for_epoch(&h, 3, 40), Some((3, 25)));
        assert_eq!(
            end_offset_for_epoch(&h, 2, 40),
            Some((1, 10)),
            "2 never led: 1 ended at 10"
        );
        assert_eq!(
            end_offset_for_epoch(&h, 0, 40),
            Some((0, 0)),
            "older than any known"
        );
        assert_eq!(
            end_offset_for_epoch(&h, 5, 40),
            None,
            "newer than any known"
        );
    }
}
