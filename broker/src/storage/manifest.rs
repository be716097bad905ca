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
}

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
        }
    }

    pub fn segment_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.data_len).sum()
    }
}

pub fn manifest_prefix(topic_id: Uuid, partition: i32) -> object_store::path::Path {
    super::segment::partition_prefix(topic_id, partition).join("manifest")
}
