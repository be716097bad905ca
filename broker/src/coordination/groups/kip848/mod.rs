//! A KIP-848 consumer group: membership by ConsumerGroupHeartbeat, assignment computed
//! here (see [`assignor`](super::assignor)), and incremental reconciliation: a member
//! gives up partitions before anyone else gets them, and moves to the new member epoch
//! once it has. Pure state; the coordinator holds the lock and the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Assignor, MemberSpec, TopicPartition};

/// A compiled subscription pattern, kept with its source text for comparison.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub pattern: String,
    regex: regex::Regex,
}

impl Subscription {
    /// Compiles a pattern the way Kafka matches it: against the whole topic name.
    pub fn new(pattern: &str) -> Result<Option<Self>, ResponseError> {
        if pattern.is_empty() {
            return Ok(None);
        }
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|_| ResponseError::InvalidRegularExpression)?;
        Ok(Some(Subscription {
            pattern: pattern.to_string(),
            regex,
        }))
    }

    fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

impl ConsumerMember {
    /// Whether the member subscribes to `topic`, by name or by pattern.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscribed.contains(topic)
            || self
                .subscribed_regex
                .as_ref()
                .is_some_and(|r| r.matches(topic))
    }
}

/// Epochs a heartbeat may carry besides a real one.
const JOIN: i32 = 0;
const LEAVE: i32 = -1;
const STATIC_LEAVE: i32 = -2;

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub subscribed: BTreeSet<String>,
    /// A regular-expression subscription (KIP-848), matched against topic names.
    pub subscribed_regex: Option<Subscription>,
    /// The server assignor this member asked for, if any.
    pub server_assignor: Option<Assignor>,
    rebalance_timeout: Duration,
    /// Partitions the member owns as far as the coordinator knows.
    pub assigned: BTreeSet<TopicPartition>,
    /// Partitions the member was told to give up and has not confirmed yet.
    pub revoking: BTreeSet<TopicPartition>,
    last_sent: Option<BTreeSet<TopicPartition>>,
    last_seen: Instant,
    revoke_deadline: Option<Instant>,
    /// Left with epoch -2 (a static member restarting): kept until its session expires.
    static_left: bool,
}

/// A heartbeat as the group needs it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed: Option<Vec<String>>,
    /// `None`: unchanged; `Some("")`: no pattern.
    pub subscribed_regex: Option<String>,
    /// `None`: unchanged since the last heartbeat (or never named).
    pub server_assignor: Option<Assignor>,
    /// `None`: unchanged since the last heartbeat.
    pub owned: Option<Vec<TopicPartition>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    /// `None`: the assignment did not change since the last reply.
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

#[derive(Debug, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// The subscribed topics' metadata the target was computed from.
    topics_seen: BTreeMap<String, (Uuid, i32)>,
}

impl ConsumerGroup {
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat. `topics` is the cluster's topics (name → id, partitions).
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &BTreeMap<String, (Uuid, i32)>,
        now: Instant,
    ) -> Result<HeartbeatReply, ResponseError> {
        let epoch_before = self.epoch;
        let member_id = match hb.member_epoch {
            STATIC_LEAVE
                if self
                    .members
                    .get(&hb.member_id)
                    .is_some_and(|m| m.instance_id.is_some()) =>
            {
                // A static member leaving temporarily (a restart) keeps its partitions
                // until its session times out, so its successor can take them over.
                let m = self.members.get_mut(&hb.member_id).expect("checked above");
                m.static_left = true;
                m.last_seen = now;
                return Ok(HeartbeatReply {
                    member_id: hb.member_id,
                    member_epoch: hb.member_epoch,
                    assignment: None,
                });
            }
            LEAVE | STATIC_LEAVE => {
                self.members
                    .remove(&hb.member_id)
                    .ok_or(ResponseError::UnknownMemberId)?;
                self.target.remove(&hb.member_id);
                self.epoch += 1;
                return Ok(HeartbeatReply {
                    member_id: hb.member_id,
                    member_epoch: hb.member_epoch,
                    assignment: None,
                });
            }
            JOIN => self.join(&hb, now)?,
            e => {
                let m = self
                    .members
                    .get_mut(&hb.member_id)
                    .ok_or(ResponseError::UnknownMemberId)?;
                // The previous epoch is fine after a lost response, as long as the member
                // does not claim partitions it no longer has (Kafka's rule).
                let owns_only_assigned = hb.owned.as_ref().is_none_or(|owned| {
                    owned
                        .iter()
                        .all(|tp| m.assigned.contains(tp) || m.revoking.contains(tp))
                });
                if e != m.epoch && !(e == m.previous_epoch && owns_only_assigned) {
                    return Err(ResponseError::FencedMemberEpoch);
                }
                if let Some(subscribed) = &hb.subscribed {
                    let subscribed: BTreeSet<String> = subscribed.iter().cloned().collect();
                    if subscribed != m.subscribed {
                        m.subscribed = subscribed;
                        self.epoch += 1;
                    }
                }
                if hb.server_assignor.is_some() && hb.server_assignor != m.server_assignor {
                    m.server_assignor = hb.server_assignor;
                    self.epoch += 1;
                }
                if let Some(pattern) = &hb.subscribed_regex {
                    let current = m
                        .subscribed_regex
                        .as_ref()
                        .map_or("", |r| r.pattern.as_str());
                    if pattern != current {
                        m.subscribed_regex = Subscription::new(pattern)?;
                        self.epoch += 1;
                    }
                }
                hb.member_id.clone()
            }
        };
        self.members
            .get_mut(&member_id)
            .expect("member present")
            .last_seen = now;
        self.refresh_target(topics, epoch_before);
        // A full request (a join, or one carrying everything, as a client sends after a
        // lost response) always gets the assignment back.
        let full = hb.member_epoch == JOIN
            || (hb.rebalance_timeout_ms != -1 && hb.subscribed.is_some() && hb.owned.is_some());
        Ok(self.reconcile(&member_id, hb.owned.as_deref(), full, now))
    }

    fn join(&mut self, hb: &Heartbeat, now: Instant) -> Result<String, ResponseError> {
        let regex = Subscription::new(hb.subscribed_regex.as_deref().unwrap_or_default())?;
        if hb.subscribed.is_none() && regex.is_none() {
            return Err(ResponseError::InvalidRequest);
        }
        let subscribed = hb.subscribed.clone().unwrap_or_default();
        if hb.rebalance_timeout_ms < 0 {
            return Err(ResponseError::InvalidRequest);
        }
        let member_id = if hb.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        // A static member that left for a restart is taken over with its partitions and
        // epoch, without a new assignment; one still active cannot be replaced.
        let predecessor = hb.instance_id.as_ref().and_then(|i| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(i) && m.member_id != member_id)
                .map(|m| (m.member_id.clone(), m.static_left))
        });
        let mut inherited = None;
        match predecessor {
            Some((_, false)) => return Err(ResponseError::UnreleasedInstanceId),
            Some((old, true)) => {
                let old_member = self.members.remove(&old).expect("found above");
                if let Some(target) = self.target.remove(&old) {
                    self.target.insert(member_id.clone(), target);
                }
                inherited = Some(old_member);
            }
            None => {}
        }
        // A member rejoining after being fenced starts over: what it held is released.
        if self.members.remove(&member_id).is_some() {
            self.target.remove(&member_id);
        }
        let subscriptions_changed = inherited.as_ref().is_none_or(|old| {
            old.subscribed != subscribed.iter().cloned().collect::<BTreeSet<_>>()
                || old.subscribed_regex.as_ref().map(|r| r.pattern.as_str())
                    != regex.as_ref().map(|r| r.pattern.as_str())
        });
        self.members.insert(
            member_id.clone(),
            ConsumerMember {
                member_id: member_id.clone(),
                instance_id: hb.instance_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                epoch: inherited.as_ref().map_or(0, |o| o.epoch),
                previous_epoch: inherited.as_ref().map_or(0, |o| o.previous_epoch),
                subscribed: subscribed.into_iter().collect(),
                subscribed_regex: regex,
                server_assignor: hb
                    .server_assignor
                    .or(inherited.as_ref().and_then(|o| o.server_assignor)),
                rebalance_timeout: Duration::from_millis(hb.rebalance_timeout_ms as u64),
                assigned: inherited
                    .as_ref()
                    .map(|o| o.assigned.clone())
                    .unwrap_or_default(),
                revoking: inherited
                    .as_ref()
                    .map(|o| o.revoking.clone())
                    .unwrap_or_default(),
                last_sent: None,
                last_seen: now,
                revoke_deadline: None,
                static_left: false,
            },
        );
        if subscriptions_changed {
            self.epoch += 1;
        }
        Ok(member_id)
    }

    /// The group's assignor: the one most members asked for (Kafka's rule), the default
    /// when none did; a tie goes to the first in [`Assignor::ALL`].
    pub fn assignor(&self) -> Assignor {
        let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
        for a in self.members.values().filter_map(|m| m.server_assignor) {
            *votes.entry(a).or_default() += 1;
        }
        let most = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, n)| *n == most)
            .map_or(Assignor::default(), |(a, _)| a)
    }

    /// Recomputes the target assignment when membership, subscriptions or the
    /// subscribed topics' partitions changed.
    fn refresh_target(&mut self, topics: &BTreeMap<String, (Uuid, i32)>, epoch_before: i32) {
        let relevant: BTreeMap<String, (Uuid, i32)> = topics
            .iter()
            .filter(|(name, _)| self.members.values().any(|m| m.subscribes_to(name)))
            .map(|(n, t)| (n.clone(), *t))
            .collect();
        if relevant != self.topics_seen {
            self.topics_seen = relevant;
            // One change of group epoch per heartbeat, as in Kafka.
            if self.epoch == epoch_before {
                self.epoch += 1;
            }
        }
        if self.assignment_epoch == self.epoch {
            return;
        }
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    MemberSpec {
                        subscribed: self
                            .topics_seen
                            .keys()
                            .filter(|t| m.subscribes_to(t))
                            .cloned()
                            .collect(),
                        current: m.assigned.clone(),
                    },
                )
            })
            .collect();
        self.target = assignor::assign(self.assignor(), &specs, &self.topics_seen);
        self.assignment_epoch = self.epoch;
    }

    /// Moves one member toward its target: revoke first, then take what is free.
    fn reconcile(
        &mut self,
        member_id: &str,
        owned: Option<&[TopicPartition]>,
        full: bool,
        now: Instant,
    ) -> HeartbeatReply {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.member_id != member_id)
            .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let m = self.members.get_mut(member_id).expect("member present");
        if let Some(owned) = owned {
            m.revoking.retain(|tp| owned.contains(tp));
        }
        let to_revoke: Vec<TopicPartition> = m.assigned.difference(&target).copied().collect();
        for tp in to_revoke {
            m.assigned.remove(&tp);
            m.revoking.insert(tp);
        }
        if m.revoking.is_empty() {
            m.revoke_deadline = None;
            m.assigned = target.difference(&held_by_others).copied().collect();
            if m.epoch != assignment_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = assignment_epoch;
            }
        } else if m.revoke_deadline.is_none() {
            m.revoke_deadline = Some(now + m.rebalance_timeout);
        }
        let changed = full || m.last_sent.as_ref() != Some(&m.assigned);
        if changed {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatReply {
            member_id: member_id.to_string(),
            member_epoch: m.epoch,
            assignment: changed.then(|| m.assigned.clone()),
        }
    }

    /// Removes members whose session expired or who did not revoke in time.
    pub fn expire(&mut self, session_timeout: Duration, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now.duration_since(m.last_seen) > session_timeout
                    || m.revoke_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.members.remove(id);
            self.target.remove(id);
        }
        if !expired.is_empty() {
            self.epoch += 1;
        }
        expired
    }

    /// Checks an OffsetCommit's member id and epoch (OffsetCommit v9+).
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch != m.epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
