//! Topic management and offsets through the Kafka admin APIs.
//! Long because: one concern, the operator's Kafka admin client (topics, configs, offsets, groups, reassignments); each call is short and they share the routing to controller, leaders and coordinators.
//!
//! Requests go where Kafka sends them: topic changes to the controller, ListOffsets to
//! each partition's leader, OffsetFetch to the group's coordinator, ListGroups to every
//! broker. Broker addresses come from Metadata, as a Kafka client's do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, FindCoordinatorRequest,
    GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::conn::{connect, ClientSecurity, Conn};
use super::AdminError;

/// Kafka's resource type for topics in DescribeConfigs / IncrementalAlterConfigs.
const TOPIC_RESOURCE: i8 = 2;
/// `config_source` of a value that is the broker's default.
const DEFAULT_CONFIG_SOURCE: i8 = 5;
/// ListOffsets timestamps for "latest" and "earliest".
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// How long the broker may take for a topic change.
const TOPIC_CHANGE_TIMEOUT_MS: i32 = 30_000;

/// A topic as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// The topic id, when the broker reports one.
    pub id: Option<String>,
    /// Leader node of each partition, by partition index.
    pub leaders: BTreeMap<i32, i32>,
}

impl TopicDescription {
    pub fn partitions(&self) -> i32 {
        self.leaders.len() as i32
    }
}

/// One topic config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub value: Option<String>,
    /// True when the value is the broker's default (not set on the topic).
    pub is_default: bool,
}

/// One IncrementalAlterConfigs operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    /// Back to the broker's default.
    Delete(String),
}

/// The committed offsets of one consumer group: (topic, partition) → offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffsets {
    pub group: String,
    pub offsets: BTreeMap<(String, i32), i64>,
}

/// An admin connection to one cluster.
pub struct AdminClient {
    /// Cluster-wide requests (ACLs, SCRAM credentials) go here too: any broker serves
    /// them, and the one that wrote a change reads it back at once.
    pub(super) bootstrap: Conn,
    timeout: Duration,
    /// How every broker of the cluster is reached, the bootstrap as the others.
    security: ClientSecurity,
    brokers: BTreeMap<i32, String>,
    controller: Option<i32>,
    conns: HashMap<i32, Conn>,
}

impl AdminClient {
    /// Connects to `bootstrap` (`host:port`) and reads the cluster's brokers. Every call
    /// on the client, connects included, is bounded by `timeout`; every connection is
    /// secured as `security` says.
    pub async fn connect(
        bootstrap: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<AdminClient, AdminError> {
        let conn = connect(bootstrap, timeout, security).await?;
        let mut client = AdminClient {
            bootstrap: conn,
            timeout,
            security: security.clone(),
            brokers: BTreeMap::new(),
            controller: None,
            conns: HashMap::new(),
        };
        client.metadata(Some(Vec::new())).await?;
        Ok(client)
    }

    /// Node ids of the brokers, from the last Metadata.
    pub fn brokers(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    async fn metadata(
        &mut self,
        topics: Option<Vec<String>>,
    ) -> Result<MetadataResponse, AdminError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .into_iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(&n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let (response, _) = self.bootstrap.call(&request).await?;
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.controller = (response.controller_id.0 >= 0).then_some(response.controller_id.0);
        Ok(response)
    }

    /// The connection to `node`, opened on first use.
    async fn node(&mut self, node: i32) -> Result<&mut Conn, AdminError> {
        if !self.conns.contains_key(&node) {
            let addr = self.brokers.get(&node).cloned().ok_or_else(|| {
                AdminError::Metadata(format!("node {node} is not in the cluster's metadata"))
            })?;
            let conn = connect(&addr, self.timeout, &self.security).await?;
            self.conns.insert(node, conn);
        }
        Ok(self.conns.get_mut(&node).expect("inserted above"))
    }

    /// The controller's connection (the bootstrap broker when none is known).
    async fn controller(&mut self) -> Result<&mut Conn, AdminError> {
        match self.controller {
            Some(node) if self.brokers.contains_key(&node) => self.node(node).await,
            _ => Ok(&mut self.bootstrap),
        }
    }

    /// The topic, or `None` when the cluster does not have it.
    pub async fn describe_topic(
        &mut self,
        name: &str,
    ) -> Result<Option<TopicDescription>, AdminError> {
        let response = self.metadata(Some(vec![name.to_string()])).await?;
        let Some(topic) = response.topics.into_iter().next() else {
            return Err(AdminError::Metadata(format!(
                "Metadata for {name} returned no topic"
            )));
        };
        match ResponseError::try_from_code(topic.error_code) {
            None => {}
            Some(ResponseError::UnknownTopicOrPartition) => return Ok(None),
            Some(_) => {
                return Err(AdminError::kafka(
                    ApiKey::Metadata,
                    name,
                    topic.error_code,
                    None,
                ))
            }
        }
        let id = (!topic.topic_id.is_nil()).then(|| topic.topic_id.to_string());
        Ok(Some(TopicDescription {
            name: name.to_string(),
            id,
            leaders: topic
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect(),
        }))
    }

    /// Every topic of the cluster, internal ones included, with its partitions' leaders.
    pub async fn describe_all_topics(&mut self) -> Result<Vec<TopicDescription>, AdminError> {
        let response = self.metadata(None).await?;
        Ok(response
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                Some(TopicDescription {
                    name: t.name?.0.to_string(),
                    id: (!t.topic_id.is_nil()).then(|| t.topic_id.to_string()),
                    leaders: t
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, p.leader_id.0))
                        .collect(),
                })
            })
            .collect())
    }

    /// Asks the controller to move each `(topic, partition)` to the broker named with it
    /// (AlterPartitionReassignments with a one-broker replica list: in Sluice the bucket
    /// is the only replica, so this moves leadership, metadata only). Returns the
    /// partitions the controller refused, with its reason.
    pub async fn move_partitions(
        &mut self,
        moves: &[(String, i32, i32)],
    ) -> Result<Vec<String>, AdminError> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for (topic, partition, to) in moves {
            by_topic.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(Some(vec![BrokerId(*to)])),
            );
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(TOPIC_CHANGE_TIMEOUT_MS)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ReassignableTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let (response, _) = self.controller().await?.call(&request).await?;
        if response.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::AlterPartitionReassignments,
                "cluster",
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        let mut refused = Vec::new();
        for t in response.responses {
            for p in t.partitions {
                if p.error_code != 0 {
                    refused.push(
                        AdminError::kafka(
                            ApiKey::AlterPartitionReassignments,
                            &format!("{}-{}", t.name.as_str(), p.partition_index),
                            p.error_code,
                            p.error_message.map(|m| m.to_string()),
                        )
                        .to_string(),
                    );
                }
            }
        }
        Ok(refused)
    }

    /// Creates `name` with `partitions` partitions and `configs`; returns its topic id.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<Option<String>, AdminError> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(TOPIC_CHANGE_TIMEOUT_MS);
        let (response, _) = self.controller().await?.call(&request).await?;
        let result = response.topics.into_iter().next().ok_or_else(|| {
            AdminError::Metadata(format!("CreateTopics for {name} returned no result"))
        })?;
        if result.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::CreateTopics,
                name,
                result.error_code,
                result.error_message.map(|m| m.to_string()),
            ));
        }
        Ok((!result.topic_id.is_nil()).then(|| result.topic_id.to_string()))
    }

    /// Grows `name` to `count` partitions.
    pub async fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), AdminError> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)])
            .with_timeout_ms(TOPIC_CHANGE_TIMEOUT_MS);
        let (response, _) = self.controller().await?.call(&request).await?;
        for r in response.results {
            if r.error_code != 0 {
                return Err(AdminError::kafka(
                    ApiKey::CreatePartitions,
                    name,
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Every config of topic `name`.
    pub async fn describe_topic_configs(
        &mut self,
        name: &str,
    ) -> Result<BTreeMap<String, ConfigEntry>, AdminError> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(name))
                .with_configuration_keys(None),
        ]);
        let (response, _) = self.controller().await?.call(&request).await?;
        let result = response.results.into_iter().next().ok_or_else(|| {
            AdminError::Metadata(format!("DescribeConfigs for {name} returned no result"))
        })?;
        if result.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::DescribeConfigs,
                name,
                result.error_code,
                result.error_message.map(|m| m.to_string()),
            ));
        }
        Ok(result
            .configs
            .into_iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    ConfigEntry {
                        value: c.value.map(|v| v.to_string()),
                        is_default: c.config_source == DEFAULT_CONFIG_SOURCE,
                    },
                )
            })
            .collect())
    }

    /// Applies `ops` to topic `name` (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(
        &mut self,
        name: &str,
        ops: &[ConfigOp],
    ) -> Result<(), AdminError> {
        if ops.is_empty() {
            return Ok(());
        }
        let configs = ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(str_bytes(k))
                    .with_config_operation(0)
                    .with_value(Some(str_bytes(v))),
                ConfigOp::Delete(k) => AlterableConfig::default()
                    .with_name(str_bytes(k))
                    .with_config_operation(1)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(name))
                .with_configs(configs),
        ]);
        let (response, _) = self.controller().await?.call(&request).await?;
        for r in response.responses {
            if r.error_code != 0 {
                return Err(AdminError::kafka(
                    ApiKey::IncrementalAlterConfigs,
                    name,
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Deletes the topics; one that does not exist counts as deleted.
    pub async fn delete_topics(&mut self, names: &[String]) -> Result<(), AdminError> {
        if names.is_empty() {
            return Ok(());
        }
        let conn = self.controller().await?;
        let version = conn.version(ApiKey::DeleteTopics)?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(TOPIC_CHANGE_TIMEOUT_MS);
        if version >= 6 {
            request.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect();
        } else {
            request.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let (response, _) = conn.call(&request).await?;
        for r in response.responses {
            if r.error_code != 0 && r.error_code != ResponseError::UnknownTopicOrPartition.code() {
                let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
                return Err(AdminError::kafka(
                    ApiKey::DeleteTopics,
                    &name,
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// The end offset (high watermark) of every partition of `topic`.
    pub async fn end_offsets(
        &mut self,
        topic: &TopicDescription,
    ) -> Result<BTreeMap<i32, i64>, AdminError> {
        self.list_offsets(topic, LATEST).await
    }

    /// The log start offset of every partition of `topic`.
    pub async fn start_offsets(
        &mut self,
        topic: &TopicDescription,
    ) -> Result<BTreeMap<i32, i64>, AdminError> {
        self.list_offsets(topic, EARLIEST).await
    }

    async fn list_offsets(
        &mut self,
        topic: &TopicDescription,
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, AdminError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (partition, leader) in &topic.leaders {
            by_leader.entry(*leader).or_default().push(*partition);
        }
        let mut out = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let conn = if leader >= 0 && self.brokers.contains_key(&leader) {
                self.node(leader).await?
            } else {
                &mut self.bootstrap
            };
            let (response, _) = conn.call(&request).await?;
            for t in response.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(AdminError::kafka(
                            ApiKey::ListOffsets,
                            &format!("{}-{}", topic.name, p.partition_index),
                            p.error_code,
                            None,
                        ));
                    }
                    out.insert(p.partition_index, p.offset);
                }
            }
        }
        Ok(out)
    }

    /// Every consumer group of the cluster (ListGroups on each broker).
    pub async fn list_groups(&mut self) -> Result<Vec<String>, AdminError> {
        let mut groups = BTreeSet::new();
        for node in self.brokers() {
            let (response, _) = self
                .node(node)
                .await?
                .call(&ListGroupsRequest::default())
                .await?;
            if response.error_code != 0 {
                return Err(AdminError::kafka(
                    ApiKey::ListGroups,
                    &format!("node {node}"),
                    response.error_code,
                    None,
                ));
            }
            groups.extend(
                response
                    .groups
                    .into_iter()
                    .map(|g| g.group_id.0.to_string()),
            );
        }
        Ok(groups.into_iter().collect())
    }

    /// The committed offsets of `group` on every topic.
    pub async fn committed_offsets(&mut self, group: &str) -> Result<GroupOffsets, AdminError> {
        let find = FindCoordinatorRequest::default()
            .with_key(str_bytes(group))
            .with_key_type(0);
        let (coordinator, _) = self.bootstrap.call(&find).await?;
        if coordinator.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::FindCoordinator,
                group,
                coordinator.error_code,
                coordinator.error_message.map(|m| m.to_string()),
            ));
        }
        let node = coordinator.node_id.0;
        self.brokers
            .entry(node)
            .or_insert_with(|| format!("{}:{}", coordinator.host.as_str(), coordinator.port));
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(None);
        let (response, _) = self.node(node).await?.call(&request).await?;
        if response.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::OffsetFetch,
                group,
                response.error_code,
                None,
            ));
        }
        let mut offsets = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    offsets.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(GroupOffsets {
            group: group.to_string(),
            offsets,
        })
    }
}

/// Lag of a group on one topic: the records between its committed offset and the end of
/// each partition it has committed on, summed. Partitions without a commit do not count.
pub fn topic_lag(
    group: &GroupOffsets,
    topic: &str,
    end_offsets: &BTreeMap<i32, i64>,
) -> Option<i64> {
    partition_lags(group, topic, end_offsets)
        .map(|(_, lag, _)| lag)
        .reduce(|a, b| a + b)
}

/// `(partition, lag, committed offset)` of each partition of `topic` the group has
/// committed on. Lag is never negative: a commit past an end offset read a moment
/// earlier is no lag.
pub fn partition_lags<'a>(
    group: &'a GroupOffsets,
    topic: &'a str,
    end_offsets: &'a BTreeMap<i32, i64>,
) -> impl Iterator<Item = (i32, i64, i64)> + 'a {
    group
        .offsets
        .iter()
        .filter(move |((t, _), _)| t == topic)
        .map(move |((_, partition), committed)| {
            let end = end_offsets.get(partition).copied().unwrap_or(*committed);
            (*partition, (end - committed).max(0), *committed)
        })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub(super) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(offsets: &[(&str, i32, i64)]) -> GroupOffsets {
        GroupOffsets {
            group: "g".into(),
            offsets: offsets
                .iter()
                .map(|(t, p, o)| ((t.to_string(), *p), *o))
                .collect(),
        }
    }

    #[test]
    fn lag_sums_committed_partitions_of_the_topic_only() {
        let g = group(&[("a", 0, 5), ("a", 1, 10), ("b", 0, 0)]);
        let ends = BTreeMap::from([(0, 8), (1, 10), (2, 100)]);
        assert_eq!(topic_lag(&g, "a", &ends), Some(3));
        assert_eq!(
            topic_lag(&g, "c", &ends),
            None,
            "no commit on the topic: no lag figure"
        );
    }

    #[test]
    fn lag_is_never_negative() {
        // A commit past the end offset read a moment earlier is not negative lag.
        let g = group(&[("a", 0, 12)]);
        assert_eq!(topic_lag(&g, "a", &BTreeMap::from([(0, 10)])), Some(0));
    }
}
