//! Committed offsets as the coordinator keeps them: who may commit, making changes
//! durable in the group's offsets partition before they become visible (compacting the
//! partition when its log grows), reading them back, and OffsetDelete.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use sluice_protocol::record_batch;
use tracing::info;

use super::classic::GroupState;
use super::offsets::{self, CommittedOffset, OffsetChange, OffsetKey, OFFSETS_TOPIC};
use super::GroupCoordinator;
use crate::clock::now_ms;
use crate::storage::{PartitionLog, StorageError};

/// Records in an offsets partition before its live offsets are rewritten and the rest
/// dropped.
const COMPACT_AFTER_RECORDS: i64 = 50_000;
/// Changes per snapshot batch.
const SNAPSHOT_BATCH: usize = 1_000;
/// Longest committed metadata string accepted (Kafka's offset.metadata.max.bytes).
pub const MAX_METADATA_BYTES: usize = 4096;
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl GroupCoordinator {
    /// Checks who may commit: members of the current generation, or anyone when the
    /// group has no members (standalone consumers and admin tools use generation -1).
    pub fn authorize_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.check(group_id)?;
        let consumer = self.with_consumer_group(group_id, |g| {
            (!g.members.is_empty()).then(|| g.validate_commit(member_id, generation))
        });
        if let Some(Some(result)) = consumer {
            return result;
        }
        let Some(group) = self.existing(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        let g = group.lock();
        if generation < 0 && member_id.is_empty() {
            return if g.is_active() {
                Err(ResponseError::UnknownMemberId)
            } else {
                Ok(())
            };
        }
        if !g.is_active() {
            return Err(ResponseError::UnknownMemberId);
        }
        g.validate_member(member_id, instance_id, generation)?;
        if g.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Makes offset changes durable in the group's offsets partition, then visible.
    pub async fn write(
        &self,
        group_id: &str,
        changes: Vec<OffsetChange>,
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        let p = self.partition_for(group_id);
        let lock = &self.write_locks[p as usize];
        let part = {
            // Commits overlap, so many share one WAL object; compaction and moves wait
            // for them.
            let _in_flight = lock.read().await;
            if !self.loaded.read().contains(&p) {
                return Err(StorageError::NotLeader(format!("{OFFSETS_TOPIC}-{p}")));
            }
            let part = self
                .engine
                .partition(self.topic_id, p)
                .ok_or_else(|| StorageError::NotLeader(format!("{OFFSETS_TOPIC}-{p}")))?;
            let position = self.append(&part, &changes).await?;
            self.offsets.write().apply(changes, position);
            part
        };
        let o = part.offsets();
        if o.high_watermark - o.log_start_offset > COMPACT_AFTER_RECORDS {
            let _exclusive = lock.write().await;
            let o = part.offsets();
            if o.high_watermark - o.log_start_offset > COMPACT_AFTER_RECORDS {
                let live = self.offsets.write().compact(p, self.partitions);
                let start = o.high_watermark;
                for chunk in live.chunks(SNAPSHOT_BATCH) {
                    self.append(&part, chunk).await?;
                }
                self.engine.delete_records(&part, start).await?;
                info!(
                    partition = p,
                    live = live.len(),
                    "compacted committed offsets"
                );
            }
        }
        Ok(())
    }

    async fn append(
        &self,
        part: &Arc<PartitionLog>,
        changes: &[OffsetChange],
    ) -> Result<i64, StorageError> {
        let batch = offsets::encode(changes, now_ms());
        let header = record_batch::validate_produce_records(&batch)
            .map_err(|e| StorageError::corrupt("offsets batch", e))?;
        let appended = self
            .engine
            .append(part, &batch, header, WRITE_TIMEOUT)
            .await?;
        self.engine
            .wait_durable(part, appended.durable_at, WRITE_TIMEOUT)
            .await?;
        Ok(appended.base_offset)
    }

    pub fn committed(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        self.offsets.read().get(group_id, topic, partition).cloned()
    }

    /// Every committed (topic, partition, offset) of a group.
    pub fn committed_all(&self, group_id: &str) -> Vec<(String, i32, CommittedOffset)> {
        self.offsets
            .read()
            .group(group_id)
            .map(|((t, p), v)| (t.clone(), *p, v.clone()))
            .collect()
    }

    pub fn has_offsets(&self, group_id: &str) -> bool {
        self.offsets.read().has_group(group_id)
    }

    /// OffsetDelete of `partitions` (topic, partition) of a group. The outer error
    /// answers the whole request; the inner one each partition: an active group may
    /// still be consuming, so its offsets are not pulled from under it.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Result<(), ResponseError>, ResponseError> {
        self.check(group_id)?;
        let classic_active = self.is_active_classic_group(group_id);
        if !(self.has_offsets(group_id) || classic_active) {
            return Err(ResponseError::GroupIdNotFound);
        }
        if classic_active || self.is_active_consumer_group(group_id) {
            return Ok(Err(ResponseError::GroupSubscribedToTopic));
        }
        let changes = partitions
            .iter()
            .map(|(topic, partition)| {
                let key = OffsetKey {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key, None)
            })
            .collect();
        self.write(group_id, changes)
            .await
            .map_err(|e| e.kafka_error())?;
        Ok(Ok(()))
    }
}
