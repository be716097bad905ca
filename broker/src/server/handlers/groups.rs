//! Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups, DeleteGroups.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::coordination::groups::group::JoinRequest;
use crate::coordination::groups::offsets::{CommittedOffset, OffsetKey, OFFSETS_TOPIC};
use crate::coordination::groups::MAX_METADATA_BYTES;
use crate::server::Broker;

const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator v4 batches keys.
const BATCHED_VERSION: i16 = 4;
/// JoinGroup v4 asks new members to rejoin with the id it hands out (KIP-394).
const MEMBER_ID_REQUIRED_VERSION: i16 = 4;
/// OffsetFetch v8 batches groups.
const BATCHED_FETCH_VERSION: i16 = 8;

/// A committed offset as OffsetFetch reports it: partition, offset, leader epoch, metadata.
type CommittedRow = (i32, i64, i32, Option<String>);
/// Per topic, per partition: the offset to write or the error to answer.
type PlannedCommits = Vec<(String, Vec<(i32, Result<CommittedOffset, ResponseError>)>)>;

fn code(r: Result<(), ResponseError>) -> i16 {
    r.err().map_or(0, |e| e.code())
}

pub async fn find_coordinator(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let created = if req.key_type == KEY_TYPE_GROUP {
        broker.ensure_offsets_topic().await.map(|_| ())
    } else {
        Ok(())
    };
    let answer = |key: StrBytesLike| -> Coordinator {
        let c = Coordinator::default().with_key(key.0);
        if req.key_type != KEY_TYPE_GROUP {
            return c
                .with_node_id((-1).into())
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("transactions are not supported yet")));
        }
        if let Err(e) = &created {
            return c
                .with_node_id((-1).into())
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes(format!("offsets topic: {e}"))));
        }
        // The coordinator is the leader of the group's offsets partition.
        let meta = broker.metadata.current();
        let p = broker.groups().partition_for(&c.key);
        let leader = meta
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(p as usize))
            .and_then(|a| meta.live_leader(a));
        match leader {
            Some((id, n)) => c
                .with_node_id(id.into())
                .with_host(str_bytes(n.host.clone()))
                .with_port(n.port),
            None => c
                .with_node_id((-1).into())
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("the group's coordinator is moving"))),
        }
    };
    if version >= BATCHED_VERSION {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| answer(StrBytesLike(k.clone())))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = answer(StrBytesLike(req.key.clone()));
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

struct StrBytesLike(kafka_protocol::protocol::StrBytes);

fn opt_string(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub async fn join(
    broker: &Broker,
    version: i16,
    client: super::Client,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    // Before v1 there is no rebalance timeout: Kafka uses the session timeout.
    let rebalance_ms = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let outcome = broker
        .groups()
        .join(
            &req.group_id.0,
            JoinRequest {
                member_id: req.member_id.to_string(),
                instance_id: opt_string(&req.group_instance_id),
                client_id: client.id,
                client_host: client.host,
                session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
                rebalance_timeout: Duration::from_millis(rebalance_ms.max(0) as u64),
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
            },
            version >= MEMBER_ID_REQUIRED_VERSION,
        )
        .await;
    JoinGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |e| e.code()))
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        // Before v7 the name is not nullable: Kafka sends "" when there is none.
        .with_protocol_name(match outcome.protocol {
            None if version < 7 => Some(str_bytes("")),
            p => p.map(str_bytes),
        })
        .with_leader(str_bytes(outcome.leader))
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

pub async fn sync(broker: &Broker, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let group = req.group_id.0.to_string();
    let result = broker
        .groups()
        .sync(
            &group,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            assignments,
        )
        .await;
    let (protocol_type, protocol_name) = broker
        .groups()
        .with_group(&group, |g| (g.protocol_type.clone(), g.protocol.clone()))
        .unwrap_or_default();
    let resp = SyncGroupResponse::default()
        .with_protocol_type(protocol_type.map(str_bytes))
        .with_protocol_name(protocol_name.map(str_bytes));
    match result {
        Ok(assignment) => resp.with_assignment(assignment),
        Err(e) => resp.with_error_code(e.code()),
    }
}

pub fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code(broker.groups().heartbeat(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    )))
}

pub fn leave(broker: &Broker, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let groups = broker.groups();
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(code(groups.leave(
            &req.group_id.0,
            &req.member_id,
            None,
        )));
    }
    let members = req
        .members
        .iter()
        .map(|m| {
            let r = groups.leave(
                &req.group_id.0,
                &m.member_id,
                m.group_instance_id.as_deref(),
            );
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code(r))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub async fn commit(broker: &Broker, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let meta = broker.metadata.current();
    let auth = broker.groups().authorize_commit(
        &group,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id_or_member_epoch,
    );
    // Per partition: Ok(change) to write, or the error to answer.
    let mut planned: PlannedCommits = Vec::new();
    let mut changes = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let topic = meta.topics.get(&name);
        let mut parts = Vec::new();
        for p in &t.partitions {
            let r = auth
                .and_then(|_| match topic {
                    Some(m) if (0..m.partitions.len() as i32).contains(&p.partition_index) => {
                        Ok(())
                    }
                    _ => Err(ResponseError::UnknownTopicOrPartition),
                })
                .and_then(|_| {
                    let metadata = opt_string(&p.committed_metadata);
                    if metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                    {
                        Err(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        Ok(CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata,
                        })
                    }
                });
            if let Ok(v) = &r {
                changes.push((
                    OffsetKey {
                        group: group.clone(),
                        topic: name.clone(),
                        partition: p.partition_index,
                    },
                    Some(v.clone()),
                ));
            }
            parts.push((p.partition_index, r));
        }
        planned.push((name, parts));
    }
    let written = broker
        .groups()
        .write(&group, changes)
        .await
        .map_err(|e| e.kafka_error());
    let topics = planned
        .into_iter()
        .map(|(name, parts)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(index, r)| {
                            let r = r.and(written);
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(r.err().map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Committed offsets of a group for the requested (topic, partitions), or all of them.
fn fetch_group(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<CommittedRow>)> {
    let groups = broker.groups();
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(t, parts)| {
                let rows = parts
                    .into_iter()
                    .map(|p| match groups.committed(group, &t, p) {
                        Some(c) => (p, c.offset, c.leader_epoch, c.metadata),
                        None => (p, -1, -1, None),
                    })
                    .collect();
                (t, rows)
            })
            .collect(),
        None => {
            let mut by_topic: HashMap<String, Vec<CommittedRow>> = HashMap::new();
            for (t, p, c) in groups.committed_all(group) {
                by_topic
                    .entry(t)
                    .or_default()
                    .push((p, c.offset, c.leader_epoch, c.metadata));
            }
            let mut v: Vec<_> = by_topic.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
    }
}

/// Whether this broker still coordinates `group` as far as the bucket knows: its
/// offsets partition is loaded here and that partition's manifest still names this
/// incarnation. A deposed coordinator that has not noticed yet (stalled, or cut off
/// from the bucket but not from its clients) would otherwise answer OffsetFetch from
/// memory with offsets older than those its successor acknowledged (found by the
/// simulation, seeds 1030, 1419, 1699). One manifest read per group fetched. The
/// caller checks `GroupCoordinator::check` again after this await, with no await
/// before it reads the offsets: the partition may be unloaded meanwhile (seed 2542).
async fn confirm_coordinator(broker: &Broker, group: &str) -> Result<(), ResponseError> {
    let groups = broker.groups();
    groups.check(group)?;
    let p = groups.partition_for(group);
    match crate::storage::manifest::read_latest(&broker.store, groups.offsets_topic_id(), p).await {
        Ok((_, m))
            if m.leader_node == broker.args.node_id
                && m.leader_incarnation == broker.engine.incarnation() =>
        {
            Ok(())
        }
        Ok(_) => Err(ResponseError::NotCoordinator),
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}

pub async fn fetch_offsets(
    broker: &Broker,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version < BATCHED_FETCH_VERSION {
        let confirmed = confirm_coordinator(broker, &req.group_id.0).await;
        if let Err(e) = confirmed.and_then(|()| broker.groups().check(&req.group_id.0)) {
            return OffsetFetchResponse::default().with_error_code(e.code());
        }
        let topics = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let rows = fetch_group(broker, &req.group_id.0, topics);
        return OffsetFetchResponse::default().with_topics(
            rows.into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, o, e, m)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(e)
                                        .with_metadata(Some(str_bytes(m.unwrap_or_default())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    }
    let mut confirmed = Vec::with_capacity(req.groups.len());
    for g in &req.groups {
        confirmed.push(confirm_coordinator(broker, &g.group_id.0).await);
    }
    let groups = req
        .groups
        .into_iter()
        .zip(confirmed)
        .map(|(g, confirmed)| {
            if let Err(e) = confirmed.and_then(|()| broker.groups().check(&g.group_id.0)) {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(e.code());
            }
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let rows = fetch_group(broker, &g.group_id.0, topics);
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_topics(
                    rows.into_iter()
                        .map(|(t, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, o, e, m)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(e)
                                                .with_metadata(Some(str_bytes(
                                                    m.unwrap_or_default(),
                                                )))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

pub async fn delete_offsets(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let groups = broker.groups();
    if let Err(e) = groups.check(&group) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let known = groups.has_offsets(&group)
        || groups
            .with_group(&group, |g| g.is_active())
            .unwrap_or(false);
    if !known {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    }
    // An active group may still be consuming: refuse rather than pull offsets from under it.
    let active = groups
        .with_group(&group, |g| g.is_active())
        .unwrap_or(false)
        || groups
            .with_consumer_group(&group, |g| !g.members.is_empty())
            .unwrap_or(false);
    let mut changes = Vec::new();
    let mut topics = Vec::new();
    for t in req.topics {
        let mut parts = Vec::new();
        for p in t.partitions {
            let err = if active {
                ResponseError::GroupSubscribedToTopic.code()
            } else {
                0
            };
            if !active {
                changes.push((
                    OffsetKey {
                        group: group.clone(),
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                    },
                    None,
                ));
            }
            parts.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(err),
            );
        }
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    match groups.write(&group, changes).await {
        Ok(()) => OffsetDeleteResponse::default().with_topics(topics),
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.kafka_error().code()),
    }
}

pub fn describe(broker: &Broker, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = broker.groups();
    let described = req
        .groups
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if let Err(e) = groups.check(&id.0) {
                return d.with_error_code(e.code());
            }
            let state = groups.with_group(&id.0, |g| {
                (
                    g.state.name(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.protocol.clone().unwrap_or_default(),
                    g.describe_members(),
                )
            });
            match state {
                Some((state, ptype, proto, members)) => d
                    .with_group_state(str_bytes(state))
                    .with_protocol_type(str_bytes(ptype))
                    .with_protocol_data(str_bytes(proto))
                    .with_members(
                        members
                            .into_iter()
                            .map(|(mid, instance, client, host, metadata, assignment)| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(mid))
                                    .with_group_instance_id(instance.map(str_bytes))
                                    .with_client_id(str_bytes(client))
                                    .with_client_host(str_bytes(host))
                                    .with_member_metadata(metadata)
                                    .with_member_assignment(assignment)
                            })
                            .collect(),
                    ),
                None if groups.has_offsets(&id.0) => d
                    .with_group_state(str_bytes("Empty"))
                    .with_protocol_type(str_bytes("consumer")),
                None => d.with_group_state(str_bytes("Dead")),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

pub fn list(broker: &Broker, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let matches = |filter: &[String], v: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(v))
    };
    let groups = broker
        .groups()
        .list()
        .into_iter()
        .filter(|(_, _, state, kind)| matches(&states, state) && matches(&types, kind))
        .map(|(id, ptype, state, kind)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(ptype))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for id in req.groups_names {
        let r = broker.groups().delete_group(&id.0).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code(r)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
