//! The group coordinator: classic consumer-group membership ([`group`]) and committed
//! offsets stored in `__consumer_offsets` ([`offsets`]). A broker coordinates the groups
//! whose offsets partition it leads: it loads a partition's offsets when it takes the
//! partition over and forgets its groups when the partition moves away, so groups move
//! with their partition (clients see NOT_COORDINATOR and look the coordinator up again).

pub mod assignor;
pub mod consumer;
pub mod group;
pub mod offsets;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use self::consumer::{ConsumerGroup, Heartbeat, HeartbeatReply};
use self::group::{Group, GroupState, JoinOutcome, JoinRequest};
use self::offsets::{CommittedOffset, OffsetChange, OffsetKey, OffsetTable};
use crate::clock::now_ms;
use crate::protocol::record_batch;
use crate::storage::{LogEngine, StorageError};

/// Records in an offsets partition before its live offsets are rewritten and the rest
/// dropped.
const COMPACT_AFTER_RECORDS: i64 = 50_000;
/// Changes per snapshot batch.
const SNAPSHOT_BATCH: usize = 1_000;
/// Longest committed metadata string accepted (Kafka's offset.metadata.max.bytes).
pub const MAX_METADATA_BYTES: usize = 4096;
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout bounds (Kafka's group.min/max.session.timeout.ms defaults).
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(6);
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(1800);

/// Timing of KIP-848 consumer groups, decided by the coordinator.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupTiming {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
}

pub struct GroupCoordinator {
    engine: Arc<LogEngine>,
    pub consumer_timing: ConsumerGroupTiming,
    /// KIP-848 groups; a group id is either classic or consumer while it has members.
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    topic_id: Uuid,
    partitions: usize,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    offsets: RwLock<OffsetTable>,
    /// Offsets partitions loaded here: the groups this broker coordinates.
    loaded: RwLock<HashSet<i32>>,
    /// Per offsets partition: commits share it, compaction takes it alone.
    write_locks: Vec<tokio::sync::RwLock<()>>,
}

impl GroupCoordinator {
    /// A coordinator of no group yet: offsets partitions are loaded as this broker
    /// takes them over.
    pub fn new(
        engine: Arc<LogEngine>,
        topic_id: Uuid,
        partitions: usize,
        consumer_timing: ConsumerGroupTiming,
    ) -> Arc<Self> {
        Arc::new(GroupCoordinator {
            engine,
            consumer_timing,
            consumer_groups: Mutex::new(HashMap::new()),
            topic_id,
            partitions,
            groups: Mutex::new(HashMap::new()),
            offsets: RwLock::new(OffsetTable::default()),
            loaded: RwLock::new(HashSet::new()),
            write_locks: (0..partitions)
                .map(|_| tokio::sync::RwLock::new(()))
                .collect(),
        })
    }

    pub fn offsets_topic_id(&self) -> Uuid {
        self.topic_id
    }

    pub fn offsets_partitions(&self) -> usize {
        self.partitions
    }

    /// Starts coordinating the groups of offsets partition `p` (just taken over):
    /// replays its committed offsets.
    pub async fn load_partition(&self, p: i32) -> Result<(), StorageError> {
        let started = Instant::now();
        let part = self
            .engine
            .partition(self.topic_id, p)
            .ok_or_else(|| StorageError::NotLeader(format!("{}-{p}", offsets::OFFSETS_TOPIC)))?;
        let _exclusive = self.write_locks[p as usize].write().await;
        let mut table = OffsetTable::default();
        let mut records = 0usize;
        let o = part.offsets();
        let mut offset = o.log_start_offset;
        while offset < o.high_watermark {
            let data = self.engine.read(&part, offset, 4 * 1024 * 1024).await?;
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
        let owned = |g: &String| offsets::partition_for(g, self.partitions) == p;
        self.offsets.write().drop_partition(p, self.partitions);
        self.groups.lock().retain(|g, _| !owned(g));
        self.consumer_groups.lock().retain(|g, _| !owned(g));
        info!(
            partition = p,
            "no longer coordinating the groups of an offsets partition"
        );
    }

    /// NOT_COORDINATOR unless this broker coordinates `group_id`.
    pub fn check(&self, group_id: &str) -> Result<(), ResponseError> {
        let p = offsets::partition_for(group_id, self.partitions);
        if self.loaded.read().contains(&p) {
            Ok(())
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    /// The offsets partition holding `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        offsets::partition_for(group_id, self.partitions)
    }

    /// Expires sessions and ends overdue join phases until `stop` changes.
    pub fn start_timers(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.changed() => return,
                }
                let Some(this) = this.upgrade() else { return };
                let now = Instant::now();
                for (id, g) in this.consumer_groups.lock().iter_mut() {
                    let expired = g.expire(this.consumer_timing.session_timeout, now);
                    if !expired.is_empty() {
                        info!(group = %id, members = ?expired, "consumer group members expired");
                    }
                }
                let groups: Vec<_> = this.groups.lock().values().cloned().collect();
                for g in groups {
                    let mut g = g.lock();
                    let expired = g.expire_members(now);
                    if !expired.is_empty() {
                        info!(group = %g.id, members = ?expired, "session expired");
                    }
                    if g.rebalance_deadline.is_some_and(|d| d <= now) {
                        let id = g.rebalance_id;
                        g.rebalance_timed_out(id);
                    }
                }
            }
        })
    }

    fn group(&self, id: &str) -> Arc<Mutex<Group>> {
        self.groups
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id.to_string()))))
            .clone()
    }

    /// The classic group a member request names; none means the member is unknown.
    fn member_group(&self, id: &str) -> Result<Arc<Mutex<Group>>, ResponseError> {
        self.existing(id).ok_or(ResponseError::UnknownMemberId)
    }

    fn existing(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().get(id).cloned()
    }

    fn is_active_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups
            .lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    fn is_active_classic_group(&self, group_id: &str) -> bool {
        self.existing(group_id)
            .is_some_and(|g| g.lock().is_active())
    }

    /// ConsumerGroupHeartbeat (KIP-848). `topics` maps every topic to (id, partitions).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        topics: &std::collections::BTreeMap<String, (Uuid, i32)>,
    ) -> Result<HeartbeatReply, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check(group_id)?;
        if self.is_active_classic_group(group_id) {
            return Err(ResponseError::GroupIdNotFound);
        }
        self.consumer_groups
            .lock()
            .entry(group_id.to_string())
            .or_default()
            .heartbeat(hb, topics, Instant::now())
    }

    /// Runs `f` on a KIP-848 group, if there is one.
    pub fn with_consumer_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> R,
    ) -> Option<R> {
        self.consumer_groups.lock().get(group_id).map(f)
    }

    pub async fn join(
        &self,
        group_id: &str,
        req: JoinRequest,
        require_known_member_id: bool,
    ) -> JoinOutcome {
        if let Err(e) = self.check(group_id) {
            return JoinOutcome::error(e, req.member_id);
        }
        if self.is_active_consumer_group(group_id) {
            return JoinOutcome::error(ResponseError::InconsistentGroupProtocol, req.member_id);
        }
        if req.session_timeout < MIN_SESSION_TIMEOUT || req.session_timeout > MAX_SESSION_TIMEOUT {
            return JoinOutcome::error(ResponseError::InvalidSessionTimeout, req.member_id);
        }
        let wait = req.rebalance_timeout + Duration::from_secs(5);
        let member_id = req.member_id.clone();
        let rx =
            match self
                .group(group_id)
                .lock()
                .join(req, require_known_member_id, Instant::now())
            {
                Ok(rx) => rx,
                Err(immediate) => return *immediate,
            };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(outcome)) => outcome,
            _ => JoinOutcome::error(ResponseError::RebalanceInProgress, member_id),
        }
    }

    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, bytes::Bytes)>,
    ) -> Result<bytes::Bytes, ResponseError> {
        self.check(group_id)?;
        let group = self.member_group(group_id)?;
        let rx = group
            .lock()
            .sync(member_id, instance_id, generation, assignments)?;
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(outcome)) => outcome,
            _ => Err(ResponseError::RebalanceInProgress),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.check(group_id)?;
        self.member_group(group_id)?.lock().heartbeat(
            member_id,
            instance_id,
            generation,
            Instant::now(),
        )
    }

    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        self.check(group_id)?;
        self.member_group(group_id)?
            .lock()
            .leave(member_id, instance_id, Instant::now())
    }

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
        let p = offsets::partition_for(group_id, self.partitions);
        let lock = &self.write_locks[p as usize];
        let part = {
            // Commits overlap, so many share one WAL object; compaction and moves wait
            // for them.
            let _in_flight = lock.read().await;
            if !self.loaded.read().contains(&p) {
                return Err(StorageError::NotLeader(format!(
                    "{}-{p}",
                    offsets::OFFSETS_TOPIC
                )));
            }
            let part = self.engine.partition(self.topic_id, p).ok_or_else(|| {
                StorageError::NotLeader(format!("{}-{p}", offsets::OFFSETS_TOPIC))
            })?;
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
        part: &Arc<crate::storage::PartitionLog>,
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

    /// (group, protocol type, state, group type) of every group known by membership or
    /// offsets; group type is "classic" or "consumer" (KIP-848).
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let mut out: HashMap<String, (String, &'static str, &'static str)> = self
            .offsets
            .read()
            .groups()
            .map(|g| {
                (
                    g.clone(),
                    ("consumer".to_string(), GroupState::Empty.name(), "classic"),
                )
            })
            .collect();
        // A KIP-848 group stays a consumer group, empty or not, until it is deleted.
        for (id, g) in self.consumer_groups.lock().iter() {
            out.insert(id.clone(), ("consumer".to_string(), g.state(), "consumer"));
        }
        for (id, g) in self.groups.lock().iter() {
            let g = g.lock();
            if g.state == GroupState::Dead
                || (g.state == GroupState::Empty && !out.contains_key(id))
            {
                continue;
            }
            out.insert(
                id.clone(),
                (
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                    "classic",
                ),
            );
        }
        let mut v: Vec<_> = out
            .into_iter()
            .map(|(id, (t, s, k))| (id, t, s, k))
            .collect();
        v.sort();
        v
    }

    /// Runs `f` on the group's state, if it has any membership state.
    pub fn with_group<R>(&self, group_id: &str, f: impl FnOnce(&Group) -> R) -> Option<R> {
        self.existing(group_id).map(|g| f(&g.lock()))
    }

    pub fn has_offsets(&self, group_id: &str) -> bool {
        self.offsets.read().has_group(group_id)
    }

    /// DeleteGroups: only groups without members; their offsets go with them.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        self.check(group_id)?;
        if self.is_active_consumer_group(group_id) {
            return Err(ResponseError::NonEmptyGroup);
        }
        let consumer = self.consumer_groups.lock().remove(group_id).is_some();
        let group = self.existing(group_id);
        let known = consumer || group.is_some() || self.has_offsets(group_id);
        if !known {
            return Err(ResponseError::GroupIdNotFound);
        }
        if let Some(g) = &group {
            let mut g = g.lock();
            if g.is_active() {
                return Err(ResponseError::NonEmptyGroup);
            }
            g.state = GroupState::Dead;
        }
        let changes: Vec<OffsetChange> = self
            .committed_all(group_id)
            .into_iter()
            .map(|(t, p, _)| {
                (
                    OffsetKey {
                        group: group_id.to_string(),
                        topic: t,
                        partition: p,
                    },
                    None,
                )
            })
            .collect();
        let result = self.write(group_id, changes).await;
        self.groups.lock().remove(group_id);
        result.map_err(|e| {
            warn!(group = group_id, error = %e, "could not delete group offsets");
            e.kafka_error()
        })
    }
}
