//! The evidence report (`docs/replay.md`, "Evidence"): what the system recorded about one
//! feed over one time window, each figure checked against another source where one
//! exists. A broker builds it at `GET /v1/evidence` (asking its peers for the
//! partitions they lead); `sluice evidence` prints it as a table, JSON or Markdown.
//! Fields are only ever added, so readers of another version understand each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::replay::{ReplaySpec, ReplayStatus};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Report {
    pub topic: String,
    /// `namespace.name` of the feed's table (None: the topic writes no table).
    pub table: Option<String>,
    /// The owning team (`sluice.feed.owner`).
    pub owner: Option<String>,
    /// The window asked for: records with a timestamp in `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// One entry per partition of the topic.
    pub partitions: Vec<PartitionEvidence>,
    /// Schema ids seen in the window's record values (Confluent framing).
    pub schemas: Vec<SchemaEvidence>,
    /// Table snapshots whose recorded ranges overlap the window's offsets.
    pub snapshots: Vec<SnapshotEvidence>,
    pub dead_letters: Option<DeadLetterEvidence>,
    /// Replays whose window overlaps this one: as approved, and how they went.
    pub replays: Vec<ReplayEvidence>,
    /// Producing principals and their record counts (empty until authentication is on).
    pub principals: BTreeMap<String, u64>,
    /// Mismatches between sources, and gaps (offsets not in the table yet).
    pub findings: Vec<String>,
    /// When the report was built and how long it took.
    pub generated_ms: i64,
    pub elapsed_ms: u64,
}

/// One partition's part of the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PartitionEvidence {
    pub partition: i32,
    /// The window's offsets `[first, last]` (None: no record of the partition in it).
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
    /// Data records in that range (control records and gaps left by dead-lettered
    /// records are not records).
    pub records: u64,
    /// Rows the table holds for that range.
    pub table_rows: Option<u64>,
    /// The table's position for the partition: offsets at or after it are not in the
    /// table yet.
    pub table_position: Option<i64>,
    /// Which broker answered for the partition (its leader).
    pub node_id: Option<i32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SchemaEvidence {
    pub id: i32,
    /// The subject and version the registry has for the id (None: not registered).
    pub subject: Option<String>,
    pub version: Option<i32>,
    pub records: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SnapshotEvidence {
    pub snapshot_id: i64,
    pub timestamp_ms: i64,
    /// `append`, `replace` (compaction) or `overwrite` (replay).
    pub operation: String,
    /// Per partition, the offsets `[first, last]` the snapshot added
    /// (`sluice.offsets.*`) or replaced (`sluice.replaced.*`).
    pub ranges: BTreeMap<i32, (i64, i64)>,
    pub added_files: u64,
    pub added_rows: u64,
    pub deleted_rows: u64,
    /// The replay that made it, if one did.
    pub replay_id: Option<String>,
    /// The broker incarnation that committed it (`sluice.writer`).
    pub writer: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DeadLetterEvidence {
    pub topic: String,
    /// Dead-letter records of this feed whose timestamp is in the window.
    pub count: u64,
    /// Count per reason (`sluice.dlq.reason`).
    pub reasons: BTreeMap<String, u64>,
    /// Their places (at most [`MAX_LISTED_DEAD_LETTERS`]).
    pub records: Vec<DeadLetterRecord>,
}

/// Dead-letter records listed one by one in a report; the count covers all.
pub const MAX_LISTED_DEAD_LETTERS: usize = 1000;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DeadLetterRecord {
    /// The record's place in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// The source partition it was produced to.
    pub source_partition: Option<i32>,
    pub reason: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ReplayEvidence {
    pub spec: Option<ReplaySpec>,
    /// Progress summed over the brokers.
    pub status: Option<ReplayStatus>,
}
