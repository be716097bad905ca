//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for topics;
//! broker configs are static (command line) and described read-only.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use super::topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use crate::coordination::topic_config::{self, ConfigType, TOPIC_CONFIGS};
use crate::coordination::topics::TopicError;
use crate::server::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

struct Entry {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    kind: ConfigType,
    doc: &'static str,
}

fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let a = &broker.args;
    let e = |name: &str, value: String, kind, doc| Entry {
        name: name.into(),
        value,
        source: SOURCE_STATIC_BROKER,
        read_only: true,
        kind,
        doc,
    };
    vec![
        e(
            "auto.create.topics.enable",
            a.auto_create_topics.to_string(),
            ConfigType::Boolean,
            "--auto-create-topics",
        ),
        e(
            "broker.id",
            a.node_id.to_string(),
            ConfigType::Int,
            "--node-id",
        ),
        e(
            "num.partitions",
            a.default_partitions.to_string(),
            ConfigType::Int,
            "--default-partitions",
        ),
        e(
            "socket.request.max.bytes",
            a.max_request_bytes.to_string(),
            ConfigType::Int,
            "--max-request-bytes",
        ),
    ]
}

fn topic_entries(configs: &BTreeMap<String, String>) -> Vec<Entry> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| Entry {
            name: d.name.into(),
            value: topic_config::value(configs, d.name).into(),
            source: if configs.contains_key(d.name) {
                SOURCE_TOPIC
            } else {
                SOURCE_DEFAULT
            },
            read_only: false,
            kind: d.kind,
            doc: d.doc,
        })
        .collect()
}

pub fn describe(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let meta = broker.metadata.current();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match meta.topics.get(r.resource_name.as_str()) {
                    Some(t) => topic_entries(&t.configs),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    }
                },
                RESOURCE_BROKER
                    if r.resource_name.is_empty()
                        || r.resource_name.as_str() == broker.args.node_id.to_string() =>
                {
                    broker_entries(broker)
                }
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes("unknown broker")))
                }
                _ => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes("unsupported resource type")))
                }
            };
            let keys = r
                .configuration_keys
                .map(|k| k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            let configs = entries
                .into_iter()
                .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                .map(|e| {
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(e.name))
                        .with_value(Some(str_bytes(e.value)))
                        .with_read_only(e.read_only)
                        .with_config_source(e.source)
                        .with_config_type(e.kind as i8)
                        .with_documentation(req.include_documentation.then(|| str_bytes(e.doc)))
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Replication throttles (broker and topic configs) accepted as no-ops.
const REPLICATION_THROTTLES: [&str; 5] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// What one resource's alteration came to: an error code and message (0: done).
type Outcome = (i16, Option<String>);

/// The resource of an alteration request, in either API.
trait Resource {
    fn kind(&self) -> i8;
    fn name(&self) -> &str;
}

impl Resource
    for kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource
{
    fn kind(&self) -> i8 {
        self.resource_type
    }
    fn name(&self) -> &str {
        self.resource_name.as_str()
    }
}

impl Resource for kafka_protocol::messages::alter_configs_request::AlterConfigsResource {
    fn kind(&self) -> i8 {
        self.resource_type
    }
    fn name(&self) -> &str {
        self.resource_name.as_str()
    }
}

/// A resource's response of either API (the two are the same fields in two types).
macro_rules! resource_response {
    ($response:ty, $resource:expr, $outcome:expr) => {
        <$response>::default()
            .with_resource_type($resource.resource_type)
            .with_resource_name($resource.resource_name.clone())
            .with_error_code($outcome.0)
            .with_error_message($outcome.1.map(str_bytes))
    };
}

/// Alters one resource's configs by `change` (refused unless it is a topic), the same
/// for both APIs.
async fn alter_resource(
    broker: &Broker,
    resource: &impl Resource,
    names: &[&str],
    validate_only: bool,
    change: impl Fn(&mut BTreeMap<String, String>) -> Result<(), TopicError>,
) -> Outcome {
    // kafka-reassign-partitions sets and clears replication throttles around a move;
    // moves copy no data here, so there is nothing to throttle.
    if !names.is_empty() && names.iter().all(|n| REPLICATION_THROTTLES.contains(n)) {
        return (0, None);
    }
    if resource.kind() != RESOURCE_TOPIC {
        return (
            ResponseError::InvalidRequest.code(),
            Some("only topic configs can be altered; broker configs are static".into()),
        );
    }
    match broker
        .topics
        .alter_configs(resource.name(), validate_only, change)
        .await
    {
        Ok(()) => (0, None),
        Err(TopicError::Unknown) => (ResponseError::UnknownTopicOrPartition.code(), None),
        Err(TopicError::Invalid(msg)) => (ResponseError::InvalidConfig.code(), Some(msg)),
        Err(e) => (ResponseError::KafkaStorageError.code(), Some(e.to_string())),
    }
}

/// IncrementalAlterConfigs: each config set or deleted, the others kept.
pub async fn alter(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
        let change = |configs: &mut BTreeMap<String, String>| -> Result<(), TopicError> {
            for c in &r.configs {
                let key = c.name.to_string();
                match c.config_operation {
                    OP_SET => {
                        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                        topic_config::validate(&key, &value).map_err(TopicError::Invalid)?;
                        configs.insert(key, value);
                    }
                    OP_DELETE => {
                        topic_config::definition(&key).ok_or_else(|| {
                            TopicError::Invalid(format!("unknown topic config {key:?}"))
                        })?;
                        configs.remove(&key);
                    }
                    op => {
                        return Err(TopicError::Invalid(format!(
                            "operation {op} is not valid for {key:?}: no list-type configs exist"
                        )))
                    }
                }
            }
            Ok(())
        };
        let outcome = alter_resource(broker, &r, &names, req.validate_only, change).await;
        responses.push(resource_response!(AlterConfigsResourceResponse, r, outcome));
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The legacy AlterConfigs (v0-2): the resource's configs become exactly the ones
/// given, every other one back to its default, as Kafka does (librdkafka's
/// `AlterConfigs` and older tools still send it).
pub async fn alter_legacy(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
        let change = |configs: &mut BTreeMap<String, String>| -> Result<(), TopicError> {
            let mut replaced = BTreeMap::new();
            for c in &r.configs {
                let (key, value) = (
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                );
                topic_config::validate(&key, &value).map_err(TopicError::Invalid)?;
                replaced.insert(key, value);
            }
            *configs = replaced;
            Ok(())
        };
        let outcome = alter_resource(broker, &r, &names, req.validate_only, change).await;
        responses.push(resource_response!(LegacyResourceResponse, r, outcome));
    }
    AlterConfigsResponse::default().with_responses(responses)
}
