//! `Feed`: one source onboarded onto a cluster: its topic, retention, owner and
//! dead-letter topic.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DeletionPolicy;

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]` (and neither `.` nor `..`).
pub const TOPIC_NAME_PATTERN: &str = r"^[a-zA-Z0-9._-]{1,249}$";

/// A feed: a topic on a `SecurityLakeCluster`, created and altered through the Kafka admin
/// protocol.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Feed",
    namespaced,
    status = "FeedStatus",
    shortname = "feed",
    category = "sluice",
    doc = "A feed onboarded onto a Sluice cluster: its topic, retention, owner and dead-letter topic.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".status.partitions"),
    printcolumn(name = "Rate", type_ = "integer", json_path = ".status.recordsPerSecond", description = "Records produced per second"),
    printcolumn(name = "Rejected", type_ = "integer", json_path = ".status.deadLetterRecords", description = "Records in the dead-letter topic"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.maxConsumerLag", description = "Largest consumer group lag, in records"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name", priority = 1),
    printcolumn(name = "Topic", type_ = "string", json_path = ".status.topic", priority = 1),
    printcolumn(name = "Team", type_ = "string", json_path = ".spec.owner.team", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("has(self.spec.topicName) || size(self.metadata.name) <= 249").message("a Feed named longer than 249 characters needs spec.topicName (Kafka's limit)"),
    validation = Rule::new("(has(self.spec.topicName) ? self.spec.topicName : self.metadata.name) == (has(oldSelf.spec.topicName) ? oldSelf.spec.topicName : oldSelf.metadata.name)").message("the topic name is immutable: create a new Feed for a new topic"),
    validation = Rule::new("!has(self.spec.deadLetter) || !has(self.spec.deadLetter.topicName) || self.spec.deadLetter.topicName != (has(self.spec.topicName) ? self.spec.topicName : self.metadata.name)").message("the dead-letter topic must differ from the feed's topic")
)]
#[serde(rename_all = "camelCase")]
pub struct FeedSpec {
    /// The `SecurityLakeCluster` (same namespace) that holds the topic. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable: a topic does not move between clusters"))]
    pub cluster_ref: ClusterRef,
    /// Kafka topic name. Default: the Feed's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]{1,249}$"))]
    #[x_kube(validation = Rule::new("self != '.' && self != '..'").message("'.' and '..' are not valid topic names"))]
    pub topic_name: Option<String>,
    /// Partition count. Can grow, never shrink (Kafka cannot remove partitions).
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions can only grow: Kafka cannot remove partitions"))]
    pub partitions: i32,
    /// Retention of the topic. Unset fields take the broker's defaults (7 days, no size
    /// limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Who owns the feed. Named in the Feed's warning Events.
    pub owner: Owner,
    /// A dead-letter topic for records that fail processing. Removing this section stops
    /// managing the topic; it never deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterSpec>,
    /// What happens to the topic (and the dead-letter topic) when the Feed is deleted.
    /// Default `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_partitions() -> i32 {
    3
}

/// Reference to a `SecurityLakeCluster` in the Feed's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ClusterRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Topic retention (`retention.ms` and `retention.bytes`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// How long records are kept: a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`),
    /// e.g. `30d`, or `forever`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([1-9][0-9]{0,9}(ms|s|m|h|d|w)|forever)$"))]
    pub time: Option<String>,
    /// Largest size of one partition before its oldest segments are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub bytes_per_partition: Option<i64>,
}

/// The team that owns a feed and how to reach it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Owner {
    /// Team name, e.g. `detection-engineering`.
    #[schemars(length(min = 1, max = 128))]
    pub team: String,
    /// Contact: an e-mail address, a chat channel or a pager alias.
    #[schemars(length(min = 1, max = 256))]
    pub contact: String,
}

/// The dead-letter topic of a feed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSpec {
    /// Topic name. Default: `<topic>.dlq`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]{1,249}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("deadLetter.topicName is immutable"))]
    pub topic_name: Option<String>,
    /// Partition count. Default: 1. Can grow, never shrink.
    #[serde(default = "default_dead_letter_partitions")]
    #[schemars(range(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("deadLetter.partitions can only grow"))]
    pub partitions: i32,
    /// Retention of the dead-letter topic; unset fields take the broker's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

fn default_dead_letter_partitions() -> i32 {
    1
}

/// Observed state, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, and kstatus' `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Kafka topic name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The topic id the cluster gave the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions the topic has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Records produced per second, from the growth of the partitions' end offsets between
    /// two reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_second: Option<i64>,
    /// The dead-letter topic's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// Records in the dead-letter topic (end minus start offsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_records: Option<i64>,
    /// Lag of every consumer group with committed offsets on the topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_lag: Vec<GroupLag>,
    /// Largest of `consumerLag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consumer_lag: Option<i64>,
}

/// Lag of one consumer group on the feed's topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct GroupLag {
    pub group: String,
    /// Records between the group's committed offsets and the end of each partition,
    /// summed over the partitions.
    pub lag: i64,
}

impl Feed {
    /// The Kafka topic: `spec.topicName`, or the Feed's name.
    pub fn topic_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .unwrap_or_else(|| kube::ResourceExt::name_any(self))
    }

    /// The dead-letter topic, when the feed has one: `deadLetter.topicName` or
    /// `<topic>.dlq`.
    pub fn dead_letter_topic(&self) -> Option<String> {
        let dl = self.spec.dead_letter.as_ref()?;
        Some(
            dl.topic_name
                .clone()
                .unwrap_or_else(|| format!("{}.dlq", self.topic_name())),
        )
    }
}
