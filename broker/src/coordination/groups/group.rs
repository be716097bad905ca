//! One consumer group under the classic rebalance protocol (JoinGroup / SyncGroup /
//! Heartbeat / LeaveGroup): members, generations, the chosen protocol and assignments.
//! Pure state: callers hold the group's lock and deliver the responses it produces.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka tools print.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup caller receives once the rebalance completes.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: String) -> Self {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
        }
    }
}

pub type SyncOutcome = Result<Bytes, ResponseError>;

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen: Instant,
    pending_join: Option<oneshot::Sender<JoinOutcome>>,
    pending_sync: Option<oneshot::Sender<SyncOutcome>>,
}

/// A join request as the group needs it.
#[derive(Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Bumped at every rebalance start so a stale timer does nothing.
    pub rebalance_id: u64,
    pub rebalance_deadline: Option<Instant>,
}

impl Group {
    pub fn new(id: String) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            rebalance_id: 0,
            rebalance_deadline: None,
        }
    }

    fn new_member_id(client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    /// Handles a JoinGroup. Returns the receiver of the eventual answer, or an immediate
    /// answer. `require_known_member_id` is true from JoinGroup v4 (KIP-394).
    pub fn join(
        &mut self,
        req: JoinRequest,
        require_known_member_id: bool,
        now: Instant,
    ) -> Result<oneshot::Receiver<JoinOutcome>, Box<JoinOutcome>> {
        if self.state == GroupState::Dead {
            return Err(Box::new(JoinOutcome::error(
                ResponseError::CoordinatorNotAvailable,
                req.member_id,
            )));
        }
        if req.protocols.is_empty()
            || (!self.members.is_empty()
                && self.protocol_type.as_deref() != Some(req.protocol_type.as_str()))
        {
            return Err(Box::new(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                req.member_id,
            )));
        }
        if !self.members.is_empty() && !self.supports_any(&req.protocols) {
            return Err(Box::new(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                req.member_id,
            )));
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            member_id = Self::new_member_id(&req.client_id);
            match &req.instance_id {
                Some(instance) => {
                    // A static member restarting with nothing changed takes its old
                    // place and assignment without a rebalance (KIP-345).
                    if let Some(outcome) = self.rejoin_static(instance, &member_id, &req, now) {
                        return Err(Box::new(outcome));
                    }
                    // Otherwise it replaces (fences) its old member id and rebalances.
                    if let Some(old) = self
                        .static_members
                        .insert(instance.clone(), member_id.clone())
                    {
                        if let Some(mut m) = self.members.remove(&old) {
                            if let Some(tx) = m.pending_join.take() {
                                let _ = tx.send(JoinOutcome::error(
                                    ResponseError::FencedInstanceId,
                                    old.clone(),
                                ));
                            }
                            if self.leader.as_deref() == Some(old.as_str()) {
                                self.leader = Some(member_id.clone());
                            }
                        }
                    }
                }
                None if require_known_member_id => {
                    return Err(Box::new(JoinOutcome::error(
                        ResponseError::MemberIdRequired,
                        member_id,
                    )));
                }
                None => {}
            }
        } else if !self.members.contains_key(&member_id) {
            let known_static = req
                .instance_id
                .as_ref()
                .and_then(|i| self.static_members.get(i))
                .is_some_and(|m| *m == member_id);
            if !(known_static || require_known_member_id) {
                return Err(Box::new(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    member_id,
                )));
            }
        }
        if let Some(instance) = &req.instance_id {
            if self
                .static_members
                .get(instance)
                .is_some_and(|m| *m != member_id)
            {
                return Err(Box::new(JoinOutcome::error(
                    ResponseError::FencedInstanceId,
                    member_id,
                )));
            }
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let (tx, rx) = oneshot::channel();
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                member_id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_seen: now,
                pending_join: None,
                pending_sync: None,
            });
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.last_seen = now;
        if let Some(old) = member.pending_join.replace(tx) {
            let _ = old.send(JoinOutcome::error(
                ResponseError::RebalanceInProgress,
                member_id.clone(),
            ));
        }
        self.protocol_type = Some(req.protocol_type);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join();
        Ok(rx)
    }

    /// Swaps a returning static follower's new member id in for its old one when the
    /// group is stable and its protocols are unchanged; answers like Kafka: the current
    /// generation, the assignment kept for the following SyncGroup.
    fn rejoin_static(
        &mut self,
        instance: &str,
        new_id: &str,
        req: &JoinRequest,
        now: Instant,
    ) -> Option<JoinOutcome> {
        let old_id = self.static_members.get(instance)?.clone();
        let old = self.members.get(&old_id)?;
        if self.state != GroupState::Stable
            || self.leader.as_deref() == Some(old_id.as_str())
            || old.protocols != req.protocols
        {
            return None;
        }
        let mut m = self.members.remove(&old_id).expect("checked above");
        if let Some(tx) = m.pending_sync.take() {
            let _ = tx.send(Err(ResponseError::FencedInstanceId));
        }
        m.member_id = new_id.to_string();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.last_seen = now;
        self.members.insert(new_id.to_string(), m);
        self.static_members
            .insert(instance.to_string(), new_id.to_string());
        Some(JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: new_id.to_string(),
            members: Vec::new(),
        })
    }

    fn supports_any(&self, protocols: &[(String, Bytes)]) -> bool {
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Starts a rebalance: members must rejoin before the deadline.
    pub fn prepare_rebalance(&mut self, now: Instant) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.pending_sync.take() {
                let _ = tx.send(Err(ResponseError::RebalanceInProgress));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        self.state = GroupState::PreparingRebalance;
        self.rebalance_id += 1;
        self.rebalance_deadline = Some(now + timeout);
    }

    /// Completes the join phase once every member has rejoined.
    pub fn maybe_complete_join(&mut self) {
        if self.state == GroupState::PreparingRebalance
            && !self.members.is_empty()
            && self.members.values().all(|m| m.pending_join.is_some())
        {
            self.complete_join();
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, a new generation
    /// starts, the protocol is chosen and every joined member is answered.
    pub fn complete_join(&mut self) {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.pending_join.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.pending_join.take() {
                let _ = tx.send(JoinOutcome {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: m.member_id.clone(),
                    members: if m.member_id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// Kafka's vote: each member votes for its most preferred protocol that every member
    /// supports; the most votes win (ties go to the first candidate).
    fn choose_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == name) {
                    v.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| (*c).clone())
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut m = self.members.remove(member_id)?;
        if let Some(instance) = &m.instance_id {
            if self
                .static_members
                .get(instance)
                .is_some_and(|id| id == member_id)
            {
                self.static_members.remove(instance);
            }
        }
        if let Some(tx) = m.pending_join.take() {
            let _ = tx.send(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                member_id.to_string(),
            ));
        }
        if let Some(tx) = m.pending_sync.take() {
            let _ = tx.send(Err(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(m)
    }

    /// Checks a member id (or static instance id) and generation.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            if let Some(current) = self.static_members.get(instance) {
                if current != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles a SyncGroup: the leader's assignments complete the rebalance.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<oneshot::Receiver<SyncOutcome>, ResponseError> {
        self.validate_member(member_id, instance_id, generation)?;
        let (tx, rx) = oneshot::channel();
        match self.state {
            GroupState::PreparingRebalance => return Err(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let _ = tx.send(Ok(self.members[member_id].assignment.clone()));
            }
            GroupState::CompletingRebalance => {
                self.members
                    .get_mut(member_id)
                    .expect("validated")
                    .pending_sync = Some(tx);
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                        if let Some(tx) = m.pending_sync.take() {
                            let _ = tx.send(Ok(m.assignment.clone()));
                        }
                    }
                    self.state = GroupState::Stable;
                }
            }
            GroupState::Empty | GroupState::Dead => return Err(ResponseError::UnknownMemberId),
        }
        Ok(rx)
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id, generation)?;
        self.members
            .get_mut(member_id)
            .expect("validated")
            .last_seen = now;
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes leaving members (by member id, or by static instance id).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return Err(ResponseError::FencedInstanceId),
                None => return Err(ResponseError::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        self.remove_member(&id)
            .ok_or(ResponseError::UnknownMemberId)?;
        self.after_membership_change(now);
        Ok(())
    }

    fn after_membership_change(&mut self, now: Instant) {
        match self.state {
            _ if self.members.is_empty() && self.state != GroupState::Dead => {
                self.state = GroupState::Empty;
                self.generation += 1;
                self.protocol = None;
                self.leader = None;
                self.rebalance_deadline = None;
            }
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance => self.maybe_complete_join(),
            _ => {}
        }
    }

    /// Drops members whose session expired; returns their ids.
    pub fn expire_members(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.pending_join.is_none() && now.duration_since(m.last_seen) > m.session_timeout
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.after_membership_change(now);
        }
        expired
    }

    /// Called when the join deadline passes.
    pub fn rebalance_timed_out(&mut self, rebalance_id: u64) {
        if self.state == GroupState::PreparingRebalance && self.rebalance_id == rebalance_id {
            self.complete_join();
        }
    }

    /// Members for DescribeGroups: (id, instance, client id, host, metadata, assignment).
    pub fn describe_members(&self) -> Vec<(String, Option<String>, String, String, Bytes, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.instance_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    m.metadata_for(&protocol),
                    m.assignment.clone(),
                )
            })
            .collect()
    }

    pub fn is_active(&self) -> bool {
        !self.members.is_empty()
    }
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::new()),
            ],
        }
    }

    fn joined(rx: &mut oneshot::Receiver<JoinOutcome>) -> JoinOutcome {
        rx.try_recv().expect("join answered")
    }

    #[test]
    fn two_members_join_sync_and_rebalance_when_one_leaves() {
        let now = Instant::now();
        let mut g = Group::new("g".into());
        let first = g.join(req("", None), true, now).unwrap_err();
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let a = first.member_id;
        let mut rx_a = g.join(req(&a, None), true, now).unwrap();
        let out_a = joined(&mut rx_a);
        assert_eq!(out_a.generation, 1);
        assert_eq!(out_a.leader, a);
        assert_eq!(out_a.protocol.as_deref(), Some("range"));
        let mut s = g
            .sync(&a, None, 1, vec![(a.clone(), Bytes::from_static(b"all"))])
            .unwrap();
        assert_eq!(s.try_recv().unwrap().unwrap(), Bytes::from_static(b"all"));
        assert_eq!(g.state, GroupState::Stable);

        // A second member triggers a rebalance; the first learns it from its heartbeat.
        let b = g.join(req("", None), true, now).unwrap_err().member_id;
        let mut rx_b = g.join(req(&b, None), true, now).unwrap();
        assert_eq!(
            g.heartbeat(&a, None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(
            rx_b.try_recv().is_err(),
            "waits for the first member to rejoin"
        );
        let mut rx_a = g.join(req(&a, None), true, now).unwrap();
        let (oa, ob) = (joined(&mut rx_a), joined(&mut rx_b));
        assert_eq!((oa.generation, ob.generation), (2, 2));
        assert_eq!(oa.members.len(), 2, "the leader sees every member");
        assert!(ob.members.is_empty());
        let mut sb = g.sync(&b, None, 2, vec![]).unwrap();
        assert!(sb.try_recv().is_err(), "followers wait for the leader");
        g.sync(&a, None, 2, vec![(b.clone(), Bytes::from_static(b"half"))])
            .unwrap();
        assert_eq!(sb.try_recv().unwrap().unwrap(), Bytes::from_static(b"half"));
        assert_eq!(
            g.heartbeat(&b, None, 1, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 2, now),
            Err(ResponseError::UnknownMemberId)
        );

        g.leave(&b, None, now).unwrap();
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let mut rx_a = g.join(req(&a, None), true, now).unwrap();
        assert_eq!(joined(&mut rx_a).generation, 3);
    }

    #[test]
    fn expired_members_are_dropped_and_the_group_rebalances() {
        let now = Instant::now();
        let mut g = Group::new("g".into());
        let mut rx = g.join(req("", None), false, now).unwrap();
        let m1 = joined(&mut rx).member_id;
        g.sync(&m1, None, 1, vec![]).unwrap();
        let later = now + Duration::from_secs(11);
        assert_eq!(g.expire_members(later), vec![m1]);
        assert_eq!(g.state, GroupState::Empty);
    }

    #[test]
    fn a_restarted_static_follower_keeps_its_assignment_without_a_rebalance() {
        let now = Instant::now();
        let mut g = Group::new("g".into());
        let mut ra = g.join(req("", Some("host-a")), true, now).unwrap();
        let a = joined(&mut ra).member_id;
        g.sync(&a, Some("host-a"), 1, vec![]).unwrap();
        let mut rb = g.join(req("", Some("host-b")), true, now).unwrap();
        let mut ra = g.join(req(&a, Some("host-a")), true, now).unwrap();
        let (oa, ob) = (joined(&mut ra), joined(&mut rb));
        let b = ob.member_id.clone();
        g.sync(&b, Some("host-b"), 2, vec![]).unwrap();
        g.sync(
            &a,
            Some("host-a"),
            2,
            vec![(b.clone(), Bytes::from_static(b"b-parts"))],
        )
        .unwrap();
        assert_eq!(g.state, GroupState::Stable);
        let leader = oa.leader.clone();
        let follower = if leader == a {
            ("host-b", b, Bytes::from_static(b"b-parts"))
        } else {
            ("host-a", a, Bytes::new())
        };

        // The follower restarts with a new member id and the same protocols.
        let again = *g.join(req("", Some(follower.0)), true, now).unwrap_err();
        assert_eq!(again.error, None);
        assert_eq!(again.generation, 2, "no new generation");
        assert_ne!(again.member_id, follower.1);
        assert_eq!(g.state, GroupState::Stable, "no rebalance");
        assert_eq!(
            g.heartbeat(&follower.1, Some(follower.0), 2, now),
            Err(ResponseError::FencedInstanceId),
            "the old id is fenced"
        );
        let mut s = g
            .sync(&again.member_id, Some(follower.0), 2, vec![])
            .unwrap();
        assert_eq!(s.try_recv().unwrap(), Ok(follower.2), "the kept assignment");
    }

    #[test]
    fn static_member_rejoining_fences_its_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g".into());
        let mut rx = g.join(req("", Some("host-1")), true, now).unwrap();
        let old = joined(&mut rx).member_id;
        g.sync(&old, Some("host-1"), 1, vec![]).unwrap();
        let mut rx = g.join(req("", Some("host-1")), true, now).unwrap();
        let new = joined(&mut rx).member_id;
        assert_ne!(old, new);
        assert_eq!(
            g.heartbeat(&old, Some("host-1"), 2, now),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(g.members.len(), 1);
    }

    #[test]
    fn rebalance_deadline_drops_members_that_did_not_rejoin() {
        let now = Instant::now();
        let mut g = Group::new("g".into());
        let mut ra = g.join(req("", None), false, now).unwrap();
        joined(&mut ra);
        let mut rb = g.join(req("", None), false, now).unwrap();
        let id = g.rebalance_id;
        g.rebalance_timed_out(id);
        let out = joined(&mut rb);
        assert_eq!(out.generation, 2);
        assert_eq!(g.members.len(), 1);
        assert_eq!(out.leader, out.member_id, "the member that rejoined leads");
    }
}
