//! The join phase of a classic group: members join (or rejoin, static members keeping
//! their place), a rebalance waits for every member until its deadline, then a new
//! generation starts with a chosen protocol and leader and every joined member is answered.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::{Group, GroupState, JoinOutcome, JoinRequest, Member};

impl Group {
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
}
