//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::coordination::groups::assignor::{Assignor, TopicPartition};
use crate::coordination::groups::kip848::Heartbeat;
use crate::coordination::groups::offsets::OFFSETS_TOPIC;
use crate::coordination::ClusterMetadata;
use crate::server::handlers::{str_bytes, topic_name, Client};
use crate::server::Broker;

/// Topic name → (id, partition count) of every user topic.
fn topic_index(meta: &ClusterMetadata) -> BTreeMap<String, (Uuid, i32)> {
    meta.topics
        .iter()
        .filter(|(name, _)| name.as_str() != OFFSETS_TOPIC)
        .map(|(name, t)| (name.clone(), (t.id, t.partitions.len() as i32)))
        .collect()
}

/// Groups (topic id, partition) pairs by topic, in order.
fn by_topic(set: &BTreeSet<TopicPartition>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        out.entry(*t).or_default().push(*p);
    }
    out
}

pub fn heartbeat(
    broker: &Broker,
    client: Client,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    tracing::debug!(?req, "consumer group heartbeat");
    let groups = broker.groups();
    let resp = ConsumerGroupHeartbeatResponse::default()
        .with_heartbeat_interval_ms(groups.consumer_timing.heartbeat_interval.as_millis() as i32)
        .with_member_id(Some(req.member_id.clone()))
        .with_member_epoch(req.member_epoch);
    let fail = |e: ResponseError, msg: &str| {
        resp.clone()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(msg)))
    };
    let server_assignor = match req.server_assignor.as_ref().map(|a| a.as_str()) {
        None => None,
        Some(name) => match Assignor::by_name(name) {
            Some(a) => Some(a),
            None => {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    "the server assignors are \"uniform\" and \"range\"",
                )
            }
        },
    };
    let meta = broker.metadata.current();
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        subscribed_regex: req.subscribed_topic_regex.as_ref().map(|r| r.to_string()),
        server_assignor,
        owned: req.topic_partitions.map(|tps| {
            tps.iter()
                .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic_id, *p)))
                .collect()
        }),
        client_id: client.id,
        client_host: client.host,
    };
    let result = groups.consumer_heartbeat(&req.group_id.0, hb, &topic_index(&meta));
    tracing::debug!(?result, "consumer group heartbeat answered");
    match result {
        Ok(reply) => resp
            .with_member_id(Some(str_bytes(reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_assignment(reply.assignment.map(|set| {
                Assignment::default().with_topic_partitions(
                    by_topic(&set)
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            })),
        Err(e) => fail(e, &e.to_string()),
    }
}

pub fn describe(
    broker: &Broker,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let meta = broker.metadata.current();
    let names: BTreeMap<Uuid, String> =
        meta.topics.iter().map(|(n, t)| (t.id, n.clone())).collect();
    let describe_assignment = |set: &BTreeSet<TopicPartition>| {
        DescribedAssignment::default().with_topic_partitions(
            by_topic(set)
                .into_iter()
                .map(|(t, ps)| {
                    DescribedTopicPartitions::default()
                        .with_topic_id(t)
                        .with_topic_name(topic_name(names.get(&t).cloned().unwrap_or_default()))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if let Err(e) = broker.groups().check(&id.0) {
                return d.with_error_code(e.code());
            }
            let found = broker.groups().with_consumer_group(&id.0, |g| {
                let members: Vec<Member> = g
                    .members
                    .values()
                    .map(|m| {
                        Member::default()
                            .with_member_id(str_bytes(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_rack_id(m.rack_id.clone().map(str_bytes))
                            .with_member_epoch(m.epoch)
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed.iter().map(|t| topic_name(t.clone())).collect(),
                            )
                            .with_assignment(describe_assignment(&m.assigned))
                            .with_target_assignment(describe_assignment(
                                &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                            ))
                    })
                    .collect();
                (
                    g.state(),
                    g.epoch,
                    g.assignment_epoch,
                    g.assignor(),
                    members,
                )
            });
            match found {
                Some((state, epoch, assignment_epoch, assignor, members)) => d
                    .with_group_state(str_bytes(state))
                    .with_group_epoch(epoch)
                    .with_assignment_epoch(assignment_epoch)
                    .with_assignor_name(str_bytes(assignor.name()))
                    .with_members(members),
                // Classic groups and unknown ids: clients fall back to DescribeGroups.
                None => d
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "group {} is not a consumer group",
                        id.0
                    )))),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
