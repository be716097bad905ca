//! The group coordinator: the groups of the offsets partitions this broker leads, their
//! membership under either protocol (a group id is classic or KIP-848 while it has
//! members), the timers that expire sessions and end join phases, and group listing and
//! deletion. Which partitions it holds: [`super::ownership`]; committed offsets:
//! [`super::commits`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::classic::{Group, GroupState, JoinOutcome, JoinRequest};
use super::kip848::{ConsumerGroup, Heartbeat, HeartbeatReply};
use super::offsets::{OffsetChange, OffsetKey, OffsetTable};
use crate::storage::LogEngine;

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
    pub(super) engine: Arc<LogEngine>,
    pub consumer_timing: ConsumerGroupTiming,
    /// KIP-848 groups; a group id is either classic or consumer while it has members.
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    pub(super) topic_id: Uuid,
    pub(super) partitions: usize,
    pub(super) groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    pub(super) offsets: RwLock<OffsetTable>,
    /// Offsets partitions loaded here: the groups this broker coordinates.
    pub(super) loaded: RwLock<HashSet<i32>>,
    /// Per offsets partition: commits share it, compaction takes it alone.
    pub(super) write_locks: Vec<tokio::sync::RwLock<()>>,
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
                this.expire(Instant::now());
            }
        })
    }

    /// One round of the timers at `now`.
    pub(super) fn expire(&self, now: Instant) {
        for (id, g) in self.consumer_groups.lock().iter_mut() {
            let expired = g.expire(self.consumer_timing.session_timeout, now);
            if !expired.is_empty() {
                info!(group = %id, members = ?expired, "consumer group members expired");
            }
        }
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
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

    /// Forgets the membership of the groups held by offsets partition `p`.
    pub(super) fn forget_groups(&self, p: i32) {
        let owned = |g: &String| self.partition_for(g) == p;
        self.groups.lock().retain(|g, _| !owned(g));
        self.consumer_groups.lock().retain(|g, _| !owned(g));
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

    pub(super) fn existing(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().get(id).cloned()
    }

    pub(super) fn is_active_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups
            .lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    pub(super) fn is_active_classic_group(&self, group_id: &str) -> bool {
        self.existing(group_id)
            .is_some_and(|g| g.lock().is_active())
    }

    /// ConsumerGroupHeartbeat (KIP-848). `topics` maps every topic to (id, partitions).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        topics: &BTreeMap<String, (Uuid, i32)>,
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

    /// Runs `f` on the group's state, if it has any membership state.
    pub fn with_group<R>(&self, group_id: &str, f: impl FnOnce(&Group) -> R) -> Option<R> {
        self.existing(group_id).map(|g| f(&g.lock()))
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
