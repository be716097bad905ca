//! Which groups this broker coordinates: those of the offsets partitions it has loaded.
//! A partition is loaded (its committed offsets replayed) when this broker takes it over
//! and forgotten when it moves away, so groups move with their partition (clients see
//! NOT_COORDINATOR and look the coordinator up again). The bucket has the last word.

use std::time::Instant;

use kafka_protocol::ResponseError;
use sluice_protocol::record_batch;
use tracing::info;

use super::offsets::{self, OffsetTable, OFFSETS_TOPIC};
use super::GroupCoordinator;
use crate::storage::{manifest, ReadLimit, StorageError};

impl GroupCoordinator {
    /// Starts coordinating the groups of offsets partition `p` (just taken over):
    /// replays its committed offsets.
    pub async fn load_partition(&self, p: i32) -> Result<(), StorageError> {
        let started = Instant::now();
        let part = self
            .engine
            .partition(self.topic_id, p)
            .ok_or_else(|| StorageError::NotLeader(format!("{OFFSETS_TOPIC}-{p}")))?;
        let _exclusive = self.write_locks[p as usize].write().await;
        let mut table = OffsetTable::default();
        let mut records = 0usize;
        let o = part.offsets();
        let mut offset = o.log_start_offset;
        while offset < o.high_watermark {
            let data = self
                .engine
                .read(&part, offset, ReadLimit::at_least_one(4 * 1024 * 1024))
                .await?;
            if data.is_empty() {
                break;
            }
            for (h, batch) in record_batch::split_bytes(&data) {
                if h.next_offset() <= offset {
                    continue;
                }
                let changes = offsets::decode(&batch);
                records += changes.len();
                table.apply(changes, h.base_offset);
                offset = h.next_offset();
            }
        }
        {
            let mut all = self.offsets.write();
            all.drop_partition(p, self.partitions);
            all.absorb(table);
            self.loaded.write().insert(p);
        }
        info!(
            partition = p,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "coordinating the groups of an offsets partition"
        );
        Ok(())
    }

    /// Stops coordinating the groups of offsets partition `p` (it is moving away):
    /// their members are told to find the new coordinator.
    pub async fn unload_partition(&self, p: i32) {
        if !self.loaded.write().remove(&p) {
            return;
        }
        // Commits in flight finish first; later ones see NOT_COORDINATOR.
        let _exclusive = self.write_locks[p as usize].write().await;
        self.offsets.write().drop_partition(p, self.partitions);
        self.forget_groups(p);
        info!(
            partition = p,
            "no longer coordinating the groups of an offsets partition"
        );
    }

    /// NOT_COORDINATOR unless this broker coordinates `group_id`.
    pub fn check(&self, group_id: &str) -> Result<(), ResponseError> {
        if self.loaded.read().contains(&self.partition_for(group_id)) {
            Ok(())
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    /// The offsets partition holding `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        offsets::partition_for(group_id, self.partitions)
    }

    /// Whether this broker still coordinates `group_id` as far as the bucket knows: its
    /// offsets partition is loaded here and that partition's manifest still names this
    /// incarnation. A deposed coordinator that has not noticed yet (stalled, or cut off
    /// from the bucket but not from its clients) would otherwise answer OffsetFetch from
    /// memory with offsets older than those its successor acknowledged (found by the
    /// simulation, seeds 1030, 1419, 1699). One manifest read per call. Callers check
    /// [`GroupCoordinator::check`] again after this await, with no await before they
    /// read the offsets: the partition may be unloaded meanwhile (seed 2542). Keeps
    /// `docs/storage-protocol.md` I12.
    pub async fn confirm(&self, group_id: &str) -> Result<(), ResponseError> {
        self.check(group_id)?;
        let p = self.partition_for(group_id);
        match manifest::read_latest(self.engine.store(), self.topic_id, p).await {
            Ok((_, m))
                if m.leader_node == self.engine.node_id()
                    && m.leader_incarnation == self.engine.incarnation() =>
            {
                Ok(())
            }
            Ok(_) => Err(ResponseError::NotCoordinator),
            Err(_) => Err(ResponseError::CoordinatorNotAvailable),
        }
    }
}
