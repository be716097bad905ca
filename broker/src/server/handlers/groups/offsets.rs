//! Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete. OffsetFetch asks the
//! bucket whether this broker still coordinates the group before it answers.

use std::collections::HashMap;

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
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::ResponseError;

use super::{code, opt_string};
use crate::coordination::groups::offsets::{CommittedOffset, OffsetKey};
use crate::coordination::groups::MAX_METADATA_BYTES;
use crate::server::handlers::{str_bytes, topic_name};
use crate::server::Broker;

/// OffsetFetch v8 batches groups.
const BATCHED_FETCH_VERSION: i16 = 8;

/// A committed offset as OffsetFetch reports it: partition, offset, leader epoch, metadata.
type CommittedRow = (i32, i64, i32, Option<String>);
/// Per topic, per partition: the offset to write or the error to answer.
type PlannedCommits = Vec<(String, Vec<(i32, Result<CommittedOffset, ResponseError>)>)>;

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

pub async fn fetch(broker: &Broker, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if version < BATCHED_FETCH_VERSION {
        let confirmed = broker.groups().confirm(&req.group_id.0).await;
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
        confirmed.push(broker.groups().confirm(&g.group_id.0).await);
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

pub async fn delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let each = match broker
        .groups()
        .delete_offsets(&req.group_id.0, &wanted)
        .await
    {
        Ok(each) => code(each),
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(each)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(parts)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
