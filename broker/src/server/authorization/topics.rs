//! Topic operations: Produce (WRITE), Fetch, ListOffsets, OffsetForLeaderEpoch and
//! Metadata (DESCRIBE; READ for Fetch), CreateTopics (CREATE on the cluster or the
//! topic), DeleteTopics and DeleteRecords (DELETE), CreatePartitions (ALTER). Refused
//! topics get TOPIC_AUTHORIZATION_FAILED; Metadata leaves out the topics a principal may
//! not describe when it asked for all of them, as Kafka does.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::ResponseError;

use super::{narrow, patch, take_denied, Check, Ctx};
use crate::security::acl::{Operation, ResourceType};

const DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

pub fn check(ctx: &Ctx<'_>, request: &mut RequestKind) -> Option<Check> {
    Some(match request {
        RequestKind::Produce(r) => {
            narrow!(
                &mut r.topic_data,
                |t| { ctx.allows_topic(Operation::Write, &t.name) },
                Produce.responses,
                |t| {
                    TopicProduceResponse::default()
                        .with_name(t.name)
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|d| {
                                    PartitionProduceResponse::default()
                                        .with_index(d.index)
                                        .with_error_code(DENIED.code())
                                        .with_base_offset(-1)
                                        .with_log_start_offset(-1)
                                        .with_log_append_time_ms(-1)
                                })
                                .collect(),
                        )
                }
            )
        }
        RequestKind::Fetch(r) => {
            let meta = ctx.broker.metadata.current();
            let name_of = |t: &kafka_protocol::messages::fetch_request::FetchTopic| {
                if t.topic.is_empty() {
                    meta.topic_by_id(t.topic_id).map(|(n, _)| n.clone())
                } else {
                    Some(t.topic.to_string())
                }
            };
            // An unknown topic id is the handler's to answer (UNKNOWN_TOPIC_ID).
            narrow!(
                &mut r.topics,
                |t| { name_of(t).is_none_or(|n| ctx.allows_topic(Operation::Read, &n)) },
                Fetch.responses,
                |t| {
                    FetchableTopicResponse::default()
                        .with_topic(t.topic)
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(DENIED.code())
                                        .with_high_watermark(-1)
                                        .with_last_stable_offset(-1)
                                        .with_log_start_offset(-1)
                                })
                                .collect(),
                        )
                }
            )
        }
        RequestKind::ListOffsets(r) => {
            narrow!(
                &mut r.topics,
                |t| { ctx.allows_topic(Operation::Describe, &t.name) },
                ListOffsets.topics,
                |t| {
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(DENIED.code())
                                        .with_timestamp(-1)
                                        .with_offset(-1)
                                })
                                .collect(),
                        )
                }
            )
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            narrow!(
                &mut r.topics,
                |t| { ctx.allows_topic(Operation::Describe, &t.topic) },
                OffsetForLeaderEpoch.topics,
                |t| {
                    OffsetForLeaderTopicResult::default()
                        .with_topic(t.topic)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    EpochEndOffset::default()
                                        .with_partition(p.partition)
                                        .with_error_code(DENIED.code())
                                        .with_leader_epoch(-1)
                                        .with_end_offset(-1)
                                })
                                .collect(),
                        )
                }
            )
        }
        RequestKind::Metadata(r) => metadata(ctx, r),
        RequestKind::CreateTopics(r) => {
            let cluster = ctx.allows_cluster(Operation::Create);
            let denied = take_denied(&mut r.topics, |t| {
                cluster || ctx.allows_topic(Operation::Create, &t.name)
            });
            let names: Vec<TopicName> = denied.into_iter().map(|t| t.name).collect();
            if names.is_empty() {
                return Some(Check::Allow);
            }
            patch!(CreateTopics, |c| c.topics.extend(names.into_iter().map(
                |n| {
                    CreatableTopicResult::default()
                        .with_name(n)
                        .with_error_code(DENIED.code())
                        .with_error_message(Some(denied_message()))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            )))
        }
        RequestKind::DeleteTopics(r) => {
            let meta = ctx.broker.metadata.current();
            let names = take_denied(&mut r.topic_names, |n| {
                ctx.allows_topic(Operation::Delete, n)
            });
            let states = take_denied(&mut r.topics, |t| {
                let name = match &t.name {
                    Some(n) => Some(n.to_string()),
                    None => meta.topic_by_id(t.topic_id).map(|(n, _)| n.clone()),
                };
                name.is_none_or(|n| ctx.allows_topic(Operation::Delete, &n))
            });
            if names.is_empty() && states.is_empty() {
                return Some(Check::Allow);
            }
            let results: Vec<DeletableTopicResult> = names
                .into_iter()
                .map(|n| DeletableTopicResult::default().with_name(Some(n)))
                .chain(states.into_iter().map(|s| {
                    DeletableTopicResult::default()
                        .with_name(s.name)
                        .with_topic_id(s.topic_id)
                }))
                .map(|d| {
                    d.with_error_code(DENIED.code())
                        .with_error_message(Some(denied_message()))
                })
                .collect();
            patch!(DeleteTopics, |d| d.responses.extend(results))
        }
        RequestKind::CreatePartitions(r) => {
            narrow!(
                &mut r.topics,
                |t| { ctx.allows_topic(Operation::Alter, &t.name) },
                CreatePartitions.results,
                |t| {
                    CreatePartitionsTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(DENIED.code())
                        .with_error_message(Some(denied_message()))
                }
            )
        }
        RequestKind::DeleteRecords(r) => {
            narrow!(
                &mut r.topics,
                |t| { ctx.allows_topic(Operation::Delete, &t.name) },
                DeleteRecords.topics,
                |t| {
                    DeleteRecordsTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    DeleteRecordsPartitionResult::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(DENIED.code())
                                        .with_low_watermark(-1)
                                })
                                .collect(),
                        )
                }
            )
        }
        _ => return None,
    })
}

fn denied_message() -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_static_str("Authorization failed.")
}

/// Metadata: requested topics the principal may not describe are refused; so are
/// missing ones it may not create when auto-creation is asked for. Asked for all
/// topics, it sees only those it may describe. Authorized operations are filled in
/// when the client asks for them.
fn metadata(ctx: &Ctx<'_>, r: &mut kafka_protocol::messages::MetadataRequest) -> Check {
    let meta = ctx.broker.metadata.current();
    let may_create_all = ctx.allows_cluster(Operation::Create);
    let mut refused: Vec<MetadataResponseTopic> = Vec::new();
    if let Some(requested) = &mut r.topics {
        let auto = r.allow_auto_topic_creation;
        let denied = take_denied(requested, |t| {
            let name = match &t.name {
                Some(n) => Some(n.to_string()),
                None => meta.topic_by_id(t.topic_id).map(|(n, _)| n.clone()),
            };
            let Some(name) = name else { return true };
            ctx.allows_topic(Operation::Describe, &name)
                && (!auto
                    || meta.topics.contains_key(&name)
                    || may_create_all
                    || ctx.allows_topic(Operation::Create, &name))
        });
        refused = denied
            .into_iter()
            .map(|t| {
                MetadataResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_error_code(DENIED.code())
                    .with_topic_authorized_operations(i32::MIN)
            })
            .collect();
    }
    let filter_all = r.topics.is_none();
    let topic_ops = r.include_topic_authorized_operations;
    let cluster_ops = r.include_cluster_authorized_operations.then(|| {
        ctx.authorized_operations(ResourceType::Cluster, crate::security::acl::CLUSTER_NAME)
    });
    // The patch runs after the handler, without the context: decide per topic now
    // for every topic that can appear.
    let describable: std::collections::HashMap<String, i32> = meta
        .topics
        .keys()
        .filter(|n| !filter_all || ctx.allows_topic(Operation::Describe, n))
        .map(|n| {
            let ops = if topic_ops {
                ctx.authorized_operations(ResourceType::Topic, n)
            } else {
                i32::MIN
            };
            (n.clone(), ops)
        })
        .collect();
    patch!(Metadata, |m| {
        if filter_all {
            m.topics.retain(|t| {
                t.name
                    .as_ref()
                    .is_some_and(|n| describable.contains_key(n.as_str()))
            });
        }
        if topic_ops {
            for t in &mut m.topics {
                if let Some(ops) = t.name.as_ref().and_then(|n| describable.get(n.as_str())) {
                    t.topic_authorized_operations = *ops;
                }
            }
        }
        if let Some(ops) = cluster_ops {
            m.cluster_authorized_operations = ops;
        }
        m.topics.extend(refused);
    })
}
