//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::ResponseError;
use tracing::warn;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::coordination::groups::offsets::OFFSETS_TOPIC;
use crate::coordination::topic_config::{self, TOPIC_CONFIGS};
use crate::coordination::topics::{TopicError, MAX_PARTITIONS};
use crate::server::{fleet, Broker};

/// Config sources as DescribeConfigs and CreateTopics report them.
pub(crate) const SOURCE_TOPIC: i8 = 1;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

fn fail(name: &str, e: ResponseError, msg: impl Into<String>) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(topic_name(name))
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(msg)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

pub async fn create(broker: &Broker, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        if let Err(msg) = topic_config::validate_topic_name(&name) {
            results.push(fail(&name, ResponseError::InvalidTopicException, msg));
            continue;
        }
        let partitions = if t.num_partitions == -1 {
            broker.args.default_partitions
        } else {
            t.num_partitions
        };
        if partitions <= 0 || partitions > MAX_PARTITIONS {
            results.push(fail(
                &name,
                ResponseError::InvalidPartitions,
                format!("{partitions} partitions"),
            ));
            continue;
        }
        // Durability comes from the object store, so any replication factor is served by
        // one leader; 0 and below -1 are invalid as in Kafka.
        if t.replication_factor == 0 || t.replication_factor < -1 {
            results.push(fail(
                &name,
                ResponseError::InvalidReplicationFactor,
                "replication factor must be -1 or positive",
            ));
            continue;
        }
        if !t.assignments.is_empty() {
            results.push(fail(
                &name,
                ResponseError::InvalidReplicaAssignment,
                "manual replica assignment is not supported; placement is automatic",
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut bad = None;
        for c in &t.configs {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            match topic_config::validate(&c.name, &value) {
                Ok(()) => {
                    configs.insert(c.name.to_string(), value);
                }
                Err(msg) => bad = Some(msg),
            }
        }
        if let Some(msg) = bad {
            results.push(fail(&name, ResponseError::InvalidConfig, msg));
            continue;
        }
        let describe_configs = |configs: &BTreeMap<String, String>| {
            TOPIC_CONFIGS
                .iter()
                .map(|d| {
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(d.name))
                        .with_value(Some(str_bytes(topic_config::value(configs, d.name))))
                        .with_config_source(if configs.contains_key(d.name) {
                            SOURCE_TOPIC
                        } else {
                            SOURCE_DEFAULT
                        })
                })
                .collect::<Vec<_>>()
        };
        if req.validate_only {
            if broker.metadata.current().topics.contains_key(&name) {
                results.push(fail(
                    &name,
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name} already exists"),
                ));
            } else {
                results.push(
                    CreatableTopicResult::default()
                        .with_name(topic_name(&name))
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(describe_configs(&configs))),
                );
            }
            continue;
        }
        let created = broker
            .topics
            .create(
                &name,
                Uuid::new_v4(),
                partitions,
                configs.clone(),
                fleet::lead_new_topic(broker, &name),
            )
            .await;
        results.push(match created {
            Ok(topic) => CreatableTopicResult::default()
                .with_name(topic_name(&name))
                .with_topic_id(topic.id)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(Some(describe_configs(&configs))),
            Err(TopicError::Exists) => fail(
                &name,
                ResponseError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ),
            Err(TopicError::NoBroker(e)) => fail(
                &name,
                ResponseError::InvalidReplicationFactor,
                e.to_string(),
            ),
            Err(TopicError::Storage(e)) => {
                warn!(topic = %name, error = %e, "topic creation failed");
                fail(&name, ResponseError::KafkaStorageError, e.to_string())
            }
            Err(e @ (TopicError::Invalid(_) | TopicError::Unknown | TopicError::UnknownId)) => {
                fail(&name, ResponseError::InvalidTopicException, e.to_string())
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete(broker: &Broker, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`, v6 in `topics` by name or id.
    let mut wanted: Vec<(Option<String>, Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), Uuid::nil()))
        .collect();
    wanted.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        if name.as_deref() == Some(OFFSETS_TOPIC) {
            responses.push(
                DeletableTopicResult::default()
                    .with_name(name.map(topic_name))
                    .with_error_code(ResponseError::InvalidTopicException.code())
                    .with_error_message(Some(str_bytes("internal topics cannot be deleted"))),
            );
            continue;
        }
        let removed = broker.topics.delete(name.as_deref(), id).await;
        let r = DeletableTopicResult::default()
            .with_name(name.clone().map(topic_name))
            .with_topic_id(id);
        responses.push(match removed {
            Ok((key, t)) => r.with_name(Some(topic_name(key))).with_topic_id(t.id),
            Err(TopicError::UnknownId) => r.with_error_code(ResponseError::UnknownTopicId.code()),
            Err(TopicError::Unknown) => {
                r.with_error_code(ResponseError::UnknownTopicOrPartition.code())
            }
            Err(e) => r
                .with_error_code(ResponseError::KafkaStorageError.code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let outcome = broker
            .topics
            .add_partitions(&name, t.count, req.validate_only, fleet::reconcile(broker))
            .await;
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(None | Some(Ok(()))) => r,
            Ok(Some(Err(e))) => r
                .with_error_code(ResponseError::KafkaStorageError.code())
                .with_error_message(Some(str_bytes(format!("{e:#}")))),
            Err(TopicError::Invalid(msg)) => r
                .with_error_code(ResponseError::InvalidPartitions.code())
                .with_error_message(Some(str_bytes(msg))),
            Err(TopicError::Unknown) => {
                r.with_error_code(ResponseError::UnknownTopicOrPartition.code())
            }
            Err(e) => r
                .with_error_code(ResponseError::KafkaStorageError.code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
