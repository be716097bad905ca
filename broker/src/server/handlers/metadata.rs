//! Metadata: live brokers, the controller and the topics asked for (all, by name or by
//! id), creating unknown ones when auto-creation is allowed.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::coordination::groups::offsets::OFFSETS_TOPIC;
use crate::coordination::topics::TopicError;
use crate::coordination::{ClusterMetadata, TopicMetadata};
use crate::server::{fleet, Broker};

/// `listener`: the one the client connected through; brokers are given by their
/// endpoints on it.
pub async fn handle(
    broker: &Broker,
    version: i16,
    listener: &str,
    req: MetadataRequest,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all.
    // Topics are asked for by name, or (v10+, KIP-516) by id with a null name.
    let mut unknown_ids = Vec::new();
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => {
            let meta = broker.metadata.current();
            let mut names = Vec::with_capacity(t.len());
            for topic in t {
                match topic.name {
                    Some(n) => names.push(n.0.to_string()),
                    None => match meta.topic_by_id(topic.topic_id) {
                        Some((name, _)) => names.push(name.clone()),
                        None => unknown_ids.push(topic.topic_id),
                    },
                }
            }
            Some(names)
        }
    };
    let allow_create =
        broker.args.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let mut errors = Vec::new();
    if let Some(names) = &requested {
        for name in names {
            if broker.metadata.current().topics.contains_key(name) {
                continue;
            }
            let err = if allow_create {
                let lead = fleet::lead_new_topic(broker, name);
                let partitions = broker.args.default_partitions;
                match broker.topics.auto_create(name, partitions, lead).await {
                    Ok(()) => continue,
                    Err(TopicError::Invalid(_)) => ResponseError::InvalidTopicException,
                    Err(_) => ResponseError::UnknownServerError,
                }
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            errors.push((name.clone(), err));
        }
    }
    let meta = broker.metadata.current();
    let mut topics: Vec<MetadataResponseTopic> = match &requested {
        None => meta
            .topics
            .iter()
            .map(|(n, t)| describe_topic(&meta, n, t))
            .collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| meta.topics.get(n).map(|t| describe_topic(&meta, n, t)))
            .collect(),
    };
    topics.extend(unknown_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code())
    }));
    topics.extend(errors.into_iter().map(|(name, e)| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(e.code())
    }));
    MetadataResponse::default()
        .with_brokers(
            meta.live_endpoints(listener)
                .map(|(id, e)| {
                    MetadataResponseBroker::default()
                        .with_node_id(id.into())
                        .with_host(str_bytes(e.host))
                        .with_port(e.port)
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(meta.cluster_id.clone())))
        .with_controller_id(meta.controller_id().into())
        .with_cluster_authorized_operations(i32::MIN)
        .with_topics(topics)
}

fn describe_topic(meta: &ClusterMetadata, name: &str, t: &TopicMetadata) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let r = MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_epoch(p.leader_epoch)
                // The bucket is the replica set: one leader serves a partition.
                .with_replica_nodes(vec![p.leader.into()]);
            match meta.live_leader(p) {
                Some((leader, _)) => r
                    .with_leader_id(leader.into())
                    .with_isr_nodes(vec![leader.into()]),
                // Failing over: clients wait and ask again.
                None => r
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id((-1).into()),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_topic_id(t.id)
        .with_is_internal(name == OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
