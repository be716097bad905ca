//! Group operations: joining, syncing, heartbeats, leaving and committing need READ on
//! the group (and READ on each committed topic); offset fetches, descriptions and
//! FindCoordinator need DESCRIBE; deletions DELETE. Refusals are
//! GROUP_AUTHORIZATION_FAILED, or TOPIC_AUTHORIZATION_FAILED for a topic of an allowed
//! group; ListGroups shows only the groups a principal may describe.

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as Kip848Group;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatResponse, FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, OffsetDeleteResponse, RequestKind, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::ResponseError;

use super::{narrow, patch, refuse, take_denied, Check, Ctx};
use crate::security::acl::{Operation, ResourceType};

const GROUP: ResponseError = ResponseError::GroupAuthorizationFailed;
const TOPIC: ResponseError = ResponseError::TopicAuthorizationFailed;
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator v4 batches keys.
const BATCHED: i16 = 4;

pub fn check(ctx: &Ctx<'_>, version: i16, request: &mut RequestKind) -> Option<Check> {
    let read = |g: &str| ctx.allows_group(Operation::Read, g);
    Some(match request {
        RequestKind::JoinGroup(r) if !read(&r.group_id) => {
            refuse!(JoinGroup, JoinGroupResponse, GROUP)
        }
        RequestKind::SyncGroup(r) if !read(&r.group_id) => {
            refuse!(SyncGroup, SyncGroupResponse, GROUP)
        }
        RequestKind::Heartbeat(r) if !read(&r.group_id) => {
            refuse!(Heartbeat, HeartbeatResponse, GROUP)
        }
        RequestKind::LeaveGroup(r) if !read(&r.group_id) => {
            refuse!(LeaveGroup, LeaveGroupResponse, GROUP)
        }
        RequestKind::ConsumerGroupHeartbeat(r) if !read(&r.group_id) => {
            refuse!(
                ConsumerGroupHeartbeat,
                ConsumerGroupHeartbeatResponse,
                GROUP
            )
        }
        RequestKind::OffsetDelete(r) => {
            if !ctx.allows_group(Operation::Delete, &r.group_id) {
                return Some(refuse!(OffsetDelete, OffsetDeleteResponse, GROUP));
            }
            let denied = take_denied(&mut r.topics, |t| {
                ctx.allows_topic(Operation::Read, &t.name)
            });
            if denied.is_empty() {
                return Some(Check::Allow);
            }
            patch!(OffsetDelete, |o| {
                o.topics.extend(denied.into_iter().map(|t| {
                kafka_protocol::messages::offset_delete_response::OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                kafka_protocol::messages::offset_delete_response::OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC.code())
                            })
                            .collect(),
                    )
            }))
            })
        }
        RequestKind::OffsetCommit(r) => {
            let group_denied = !read(&r.group_id);
            let denied = take_denied(&mut r.topics, |t| {
                !group_denied && ctx.allows_topic(Operation::Read, &t.name)
            });
            if denied.is_empty() {
                return Some(Check::Allow);
            }
            let code = if group_denied { GROUP } else { TOPIC };
            patch!(OffsetCommit, |o| o.topics.extend(denied.into_iter().map(
                |t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code.code())
                                })
                                .collect(),
                        )
                }
            )))
        }
        RequestKind::OffsetFetch(r) => offset_fetch(ctx, r),
        RequestKind::DescribeGroups(r) => {
            let ops = r.include_authorized_operations;
            let decided: Vec<(String, bool, i32)> = r
                .groups
                .iter()
                .map(|g| {
                    let ops = if ops {
                        ctx.authorized_operations(ResourceType::Group, g)
                    } else {
                        i32::MIN
                    };
                    (g.to_string(), ctx.allows_group(Operation::Describe, g), ops)
                })
                .collect();
            let denied = take_denied(&mut r.groups, |g| ctx.allows_group(Operation::Describe, g));
            patch!(DescribeGroups, |d| {
                for g in &mut d.groups {
                    if let Some((_, _, ops)) = decided
                        .iter()
                        .find(|(n, ..)| n.as_str() == g.group_id.as_str())
                    {
                        g.authorized_operations = *ops;
                    }
                }
                d.groups.extend(denied.into_iter().map(|g| {
                    DescribedGroup::default()
                        .with_group_id(g)
                        .with_error_code(GROUP.code())
                        .with_authorized_operations(i32::MIN)
                }))
            })
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            narrow!(
                &mut r.group_ids,
                |g| { ctx.allows_group(Operation::Describe, g) },
                ConsumerGroupDescribe.groups,
                |g| {
                    Kip848Group::default()
                        .with_group_id(g)
                        .with_error_code(GROUP.code())
                        .with_authorized_operations(i32::MIN)
                }
            )
        }
        RequestKind::DeleteGroups(r) => {
            narrow!(
                &mut r.groups_names,
                |g| { ctx.allows_group(Operation::Delete, g) },
                DeleteGroups.results,
                |g| {
                    DeletableGroupResult::default()
                        .with_group_id(g)
                        .with_error_code(GROUP.code())
                }
            )
        }
        RequestKind::ListGroups(_) => {
            if ctx.allows_cluster(Operation::Describe) {
                return Some(Check::Allow);
            }
            let groups: std::collections::HashSet<String> = ctx
                .broker
                .groups()
                .list()
                .into_iter()
                .map(|(id, ..)| id)
                .filter(|g| ctx.allows_group(Operation::Describe, g))
                .collect();
            patch!(ListGroups, |l| l
                .groups
                .retain(|g| groups.contains(g.group_id.as_str())))
        }
        RequestKind::FindCoordinator(r) => {
            let allowed = |key: &str| match r.key_type {
                KEY_TYPE_GROUP => ctx.allows_group(Operation::Describe, key),
                _ => ctx.allows(Operation::Describe, ResourceType::TransactionalId, key),
            };
            let code = if r.key_type == KEY_TYPE_GROUP {
                GROUP
            } else {
                ResponseError::TransactionalIdAuthorizationFailed
            };
            if version < BATCHED {
                if allowed(&r.key) {
                    return Some(Check::Allow);
                }
                return Some(Check::Deny(Box::new(ResponseKind::FindCoordinator(
                    FindCoordinatorResponse::default()
                        .with_error_code(code.code())
                        .with_node_id((-1).into())
                        .with_port(-1),
                ))));
            }
            narrow!(
                &mut r.coordinator_keys,
                |k| allowed(k),
                FindCoordinator.coordinators,
                |k| {
                    Coordinator::default()
                        .with_key(k)
                        .with_node_id((-1).into())
                        .with_port(-1)
                        .with_error_code(code.code())
                }
            )
        }
        _ => return None,
    })
}

/// OffsetFetch: the group needs DESCRIBE (refused: the group's error code, no topics);
/// topics the principal may not describe are left out when all were asked for, and
/// refused partition by partition when named.
fn offset_fetch(ctx: &Ctx<'_>, r: &mut kafka_protocol::messages::OffsetFetchRequest) -> Check {
    let describe_group = |g: &str| ctx.allows_group(Operation::Describe, g);
    let describe_topic = |t: &str| ctx.allows_topic(Operation::Describe, t);
    let single_denied = !r.group_id.is_empty() && !describe_group(&r.group_id);
    let single_all = r.topics.is_none();
    let denied_groups: Vec<String> = r
        .groups
        .iter()
        .filter(|g| !describe_group(&g.group_id))
        .map(|g| g.group_id.to_string())
        .collect();
    let all_topics_of: Vec<(String, bool)> = r
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.topics.is_none()))
        .collect();
    // Every topic name that can come back, decided now.
    let meta = ctx.broker.metadata.current();
    let visible: std::collections::HashSet<String> = meta
        .topics
        .keys()
        .filter(|n| describe_topic(n))
        .cloned()
        .collect();
    patch!(OffsetFetch, |o| {
        if single_denied {
            o.topics.clear();
            o.error_code = GROUP.code();
        } else {
            o.topics
                .retain(|t| !single_all || visible.contains(t.name.as_str()));
            for t in o
                .topics
                .iter_mut()
                .filter(|t| !visible.contains(t.name.as_str()))
            {
                for p in &mut t.partitions {
                    p.error_code = TOPIC.code();
                    p.committed_offset = -1;
                }
            }
        }
        for g in &mut o.groups {
            if denied_groups
                .iter()
                .any(|d| d.as_str() == g.group_id.as_str())
            {
                g.topics.clear();
                g.error_code = GROUP.code();
                continue;
            }
            let all = all_topics_of
                .iter()
                .any(|(id, all)| *all && id.as_str() == g.group_id.as_str());
            g.topics
                .retain(|t| !all || visible.contains(t.name.as_str()));
            for t in g
                .topics
                .iter_mut()
                .filter(|t| !visible.contains(t.name.as_str()))
            {
                for p in &mut t.partitions {
                    p.error_code = TOPIC.code();
                    p.committed_offset = -1;
                }
            }
        }
    })
}
