//! `Feed`: one source onboarded onto a cluster: its topic, retention, owner,
//! dead-letter topic, schema validation and Iceberg table.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::access::{AccessSpec, AccessStatus};
use super::DeletionPolicy;

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]` (and neither `.` nor `..`).
pub const TOPIC_NAME_PATTERN: &str = r"^[a-zA-Z0-9._-]{1,249}$";

/// An RFC 3339 timestamp with its offset (`Z` or `±hh:mm`), as replay windows are written.
pub const RFC3339_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$";

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
    printcolumn(name = "Rejected", type_ = "integer", json_path = ".status.rejectedRecords", description = "Records the brokers rejected or dead-lettered for failing schema validation"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.maxConsumerLag", description = "Largest consumer group lag, in records"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name", priority = 1),
    printcolumn(name = "Table", type_ = "string", json_path = ".status.table.name", priority = 1),
    printcolumn(name = "Rows", type_ = "integer", json_path = ".status.table.rows", priority = 1, description = "Rows committed to the table since the brokers started"),
    printcolumn(name = "Topic", type_ = "string", json_path = ".status.topic", priority = 1),
    printcolumn(name = "Team", type_ = "string", json_path = ".spec.owner.team", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("has(self.spec.topicName) || size(self.metadata.name) <= 249").message("a Feed named longer than 249 characters needs spec.topicName (Kafka's limit)"),
    validation = Rule::new("(has(self.spec.topicName) ? self.spec.topicName : self.metadata.name) == (has(oldSelf.spec.topicName) ? oldSelf.spec.topicName : oldSelf.metadata.name)").message("the topic name is immutable: create a new Feed for a new topic"),
    validation = Rule::new("!has(self.spec.deadLetter) || !has(self.spec.deadLetter.topicName) || self.spec.deadLetter.topicName != (has(self.spec.topicName) ? self.spec.topicName : self.metadata.name)").message("the dead-letter topic must differ from the feed's topic"),
    validation = Rule::new("!has(self.spec.schema) || !has(self.spec.schema.mode) || self.spec.schema.mode != 'deadLetter' || has(self.spec.deadLetter)").message("schema.mode deadLetter needs spec.deadLetter: the dead-letter topic the broker writes invalid records to"),
    validation = Rule::new("!has(self.spec.table) || !has(self.spec.table.mode) || self.spec.table.mode != 'schema' || has(self.spec.schema)").message("table.mode schema needs spec.schema: the table's columns come from the feed's schema"),
    validation = Rule::new("!has(self.spec.replays) || size(self.spec.replays) == 0 || has(self.spec.table)").message("spec.replays needs spec.table: a replay replaces rows of the feed's table")
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
    /// Schema validation of the records produced to the topic, by the brokers against
    /// their schema registry. Removing this section turns validation off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaSpec>,
    /// An Apache Iceberg table the brokers write the topic's records to (topic configs
    /// `sluice.table.*`), committed every `commitInterval`. Removing this section stops
    /// writing; it never drops the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableSpec>,
    /// Replays of time windows of the table (needs `spec.table`): the brokers read each
    /// window again from the topic and replace its rows in the table. Only replays
    /// approved under the cluster's `replayPolicy` are handed to the brokers; the others
    /// are refused (condition `ReplayRefused`). Removing one stops it; what it did to the
    /// table stays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(s, s.id == r.id))").message("replay ids must be unique"))]
    pub replays: Vec<Replay>,
    /// Who may write and read the topic (Kafka ACLs the operator owns), on a cluster
    /// whose kafka listener authenticates clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
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

/// Schema validation of a feed's records (topic configs `sluice.schema.*`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSpec {
    /// Registry subject the records are validated against. Default: `<topic>-value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub subject: Option<String>,
    /// How records carry their data: `avro` and `json-schema` with Confluent framing
    /// (magic byte and schema id), `json` plain JSON validated against the subject's
    /// schema.
    pub format: SchemaFormat,
    /// `id`: the framing names a schema of the subject; `full`: the record also decodes
    /// and validates against it. Default `full`.
    #[serde(default)]
    pub level: ValidationLevel,
    /// What the broker does with an invalid record: refuse the produce (`reject`), write
    /// it to the dead-letter topic (`deadLetter`, needs `spec.deadLetter`), or accept it
    /// and count it (`observe`). Default `reject`.
    #[serde(default)]
    pub mode: ValidationMode,
    /// Validate against this version of the subject instead of the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i32>,
    /// A schema to register under the subject (idempotent) before validation is turned
    /// on: Avro schema JSON for `avro`, a JSON Schema otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub schema: Option<String>,
    /// The subject's compatibility level, set before the schema is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,
    /// A Warning Event naming the owner when more records than `threshold` are rejected
    /// or dead-lettered within `windowSeconds`.
    #[serde(default)]
    pub rejection_alert: RejectionAlert,
}

/// Record encoding, as `sluice.schema.format` names it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SchemaFormat {
    #[serde(rename = "avro")]
    Avro,
    #[serde(rename = "json-schema")]
    JsonSchema,
    #[serde(rename = "json")]
    Json,
}

/// How deep validation goes (`sluice.schema.level`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValidationLevel {
    Id,
    #[default]
    Full,
}

/// The fate of an invalid record (`sluice.schema.mode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValidationMode {
    #[default]
    Reject,
    DeadLetter,
    Observe,
}

/// A subject's compatibility level in the schema registry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// When rejections are worth a Warning Event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionAlert {
    /// Records rejected or dead-lettered within the window above which the Event fires.
    /// Default 100.
    #[serde(default = "default_alert_threshold")]
    #[schemars(range(min = 0))]
    pub threshold: i64,
    /// The window, in seconds. Default 300.
    #[serde(default = "default_alert_window")]
    #[schemars(range(min = 1, max = 604800))]
    pub window_seconds: i64,
}

impl Default for RejectionAlert {
    fn default() -> Self {
        RejectionAlert {
            threshold: default_alert_threshold(),
            window_seconds: default_alert_window(),
        }
    }
}

fn default_alert_threshold() -> i64 {
    100
}

fn default_alert_window() -> i64 {
    300
}

/// The feed's Iceberg table. Every default is the brokers' own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    /// Write the table. `false` stops writing and keeps the other settings. Default
    /// `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The catalog namespace. Default `sluice`.
    #[serde(default = "default_table_namespace")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"))]
    pub namespace: String,
    /// The table name. Default: the topic with every other character than letters and
    /// digits as `_` (`cloudtrail.raw-v1` → `cloudtrail_raw_v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"))]
    pub name: Option<String>,
    /// Table partitions: by the hour or day of the record's timestamp, one per value of a
    /// column (`identity:<column>`, e.g. `identity:sluice_partition`), or `none`.
    #[serde(default = "default_table_partitioning")]
    #[schemars(regex(pattern = r"^(hour|day|none|identity:[A-Za-z_][A-Za-z0-9_]{0,254})$"))]
    pub partitioning: String,
    /// How often each broker commits what it wrote: a number and a unit (`ms`, `s`, `m`,
    /// `h`, `d`, `w`), at least `1s`. Default `1m`.
    #[serde(default = "default_commit_interval")]
    #[schemars(regex(pattern = r"^([1-9][0-9]{0,9}(s|m|h|d|w)|[1-9][0-9]{3,9}ms)$"))]
    pub commit_interval: String,
    /// How often the table's upkeep runs (small files compacted, old snapshots expired
    /// and the files only they reached deleted), like `commitInterval`. Default `1h`.
    #[serde(default = "default_maintenance_interval")]
    #[schemars(regex(pattern = r"^([1-9][0-9]{0,9}(s|m|h|d|w)|[1-9][0-9]{3,9}ms)$"))]
    pub maintenance_interval: String,
    /// Bytes at which a data file is closed and the next one begun. Default 128 MiB.
    #[serde(default = "default_target_file_size")]
    #[schemars(range(min = 1048576))]
    pub target_file_size: i64,
    /// The table's columns: `raw` (key, value and headers as bytes, with offset
    /// lineage) or `schema` (a column per field of `spec.schema`'s subject, evolving
    /// with it). Default `raw`.
    #[serde(default)]
    pub mode: TableMode,
}

fn default_true() -> bool {
    true
}
fn default_table_namespace() -> String {
    sluice_schema::table_config::DEFAULT_NAMESPACE.into()
}
fn default_table_partitioning() -> String {
    "hour".into()
}
fn default_commit_interval() -> String {
    "1m".into()
}
fn default_maintenance_interval() -> String {
    "1h".into()
}
fn default_target_file_size() -> i64 {
    sluice_schema::table_config::DEFAULT_TARGET_FILE_BYTES as i64
}

/// A table's columns (`sluice.table.mode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TableMode {
    #[default]
    Raw,
    Schema,
}

/// One replay of a time window of the feed's table, declared in Git and approved by
/// someone other than its requester.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("timestamp(self.from) < timestamp(self.to)").message("a replay's from must be before its to"))]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    /// Unique among the Feed's replays and for the table's lifetime: the brokers apply
    /// one id once (to replay a window again, add a replay with a new id). Lower-case
    /// letters, digits and `-`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9-]{1,63}$"))]
    pub id: String,
    /// Start of the window (inclusive), RFC 3339, e.g. `2026-12-01T10:00:00Z`.
    #[schemars(length(max = 64), regex(pattern = RFC3339_PATTERN))]
    pub from: String,
    /// End of the window (exclusive), RFC 3339.
    #[schemars(length(max = 64), regex(pattern = RFC3339_PATTERN))]
    pub to: String,
    /// Why the window is replayed, e.g. a ticket; recorded in the replay's snapshot.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Who asks for the replay (a user or a team).
    #[schemars(length(min = 1, max = 256))]
    pub requested_by: String,
    /// Who approved it: allowed by the cluster's `replayPolicy`, and not the requester.
    /// Absent: not approved, so not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub approved_by: Option<String>,
    /// Also check the window's dead-letter records against the current schema again, the
    /// valid ones becoming rows (the brokers record it but do not do it yet:
    /// `docs/replay.md`). Default `false`.
    #[serde(default)]
    pub dead_letters: bool,
    /// Read budget of the replay on each broker, so live ingestion keeps its latency.
    /// Default 33554432 (32 MiB/s).
    #[serde(default = "default_replay_bytes_per_second")]
    #[schemars(range(min = 1))]
    pub bytes_per_second: i64,
}

fn default_replay_bytes_per_second() -> i64 {
    sluice_schema::replay::DEFAULT_REPLAY_BYTES_PER_SECOND as i64
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
    /// The registry id of `spec.schema.schema`, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<i32>,
    /// Records of the topic the brokers rejected or dead-lettered for failing schema
    /// validation, summed over the brokers (their counters restart with them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_records: Option<i64>,
    /// `rejectedRecords` by reason (`no_value`, `framing`, `unknown_id`, `wrong_subject`,
    /// `decode`, `schema`, `not_json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected_by_reason: BTreeMap<String, i64>,
    /// The window of the rejection alert: where it started, kept here so that it
    /// survives operator restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_window: Option<RejectionWindow>,
    /// The Iceberg table, as the brokers writing it report it (with `spec.table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableStatus>,
    /// Every replay of `spec.replays`: refused, or how far the brokers got with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replays: Vec<ReplayStatus>,
    /// The ACLs and credentials made for `spec.access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessStatus>,
}

/// The feed's table, from every broker's `GET /v1/lake`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// `namespace.name`, as engines name it.
    pub name: String,
    /// The latest commit of any broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_time: Option<Time>,
    /// The snapshot that commit made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_id: Option<i64>,
    /// Rows the brokers committed to the table since each of them started, summed (a
    /// restarted broker counts from zero again): a sign of progress, not the table's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Records of the topic not in the table yet, summed over the partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
}

/// Where a replay is, over every broker.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReplayPhase {
    /// Not approved under the cluster's `replayPolicy`: not handed to the brokers.
    Refused,
    /// Handed to the brokers; none runs it yet (they wait until the table holds the
    /// whole window).
    #[default]
    Pending,
    /// Some broker replaces the window's rows.
    Running,
    /// Every broker that reports it is done.
    Succeeded,
    /// Some broker failed it.
    Failed,
}

/// One replay, summed over the brokers that report it at `GET /v1/lake`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayStatus {
    pub id: String,
    pub phase: ReplayPhase,
    /// Records of the window read from the topic.
    #[serde(default)]
    pub records_read: i64,
    /// Rows of the window the replay removed from the table.
    #[serde(default)]
    pub rows_removed: i64,
    /// Rows it wrote in their place.
    #[serde(default)]
    pub rows_added: i64,
    /// Dead-letter records that passed the current schema and became rows.
    #[serde(default)]
    pub dead_letters_added: i64,
    /// The snapshots that replaced the window's rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_ids: Vec<i64>,
    /// When the first broker started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_time: Option<Time>,
    /// When the last broker finished it (once it succeeded or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_time: Option<Time>,
    /// Why it was refused, or the brokers' errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The reading of `rejectedRecords` that opened the current alert window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionWindow {
    /// When the window opened.
    pub started_at: Time,
    /// `rejectedRecords` then.
    pub start_count: i64,
    /// The alert already fired in this window (at most one Event a window).
    #[serde(default)]
    pub alerted: bool,
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

    /// The registry subject of the feed's schema: `schema.subject` or `<topic>-value`.
    pub fn schema_subject(&self) -> Option<String> {
        let schema = self.spec.schema.as_ref()?;
        Some(
            schema
                .subject
                .clone()
                .unwrap_or_else(|| format!("{}-value", self.topic_name())),
        )
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
