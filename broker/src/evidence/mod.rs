//! Evidence reports (`docs/replay.md`, "Evidence"): for one feed and one time window,
//! what the system recorded, from the sources that recorded it:
//! - the log (per partition, the offsets covering the window, their records, schema ids
//!   and principals; the feed's dead-letter records of the window): each broker scans
//!   the partitions it leads (`log_scan.rs`), the broker asked collects its peers' parts
//!   (`peers.rs`);
//! - the table (`table.rs`): the snapshots whose recorded ranges cover those offsets,
//!   its position and rows per partition;
//! - the registry (schema ids to subjects and versions), the topic's configs (owner,
//!   replays) and the replays' progress.
//!
//! Then every figure another source also knows is checked against it (`findings.rs`).
//! Served at `GET /v1/evidence`; printed by `sluice evidence`.

mod findings;
pub mod log_scan;
mod peers;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use sluice_lake::table::ident;
use sluice_lake::TableSpec;
use sluice_schema::evidence::{DeadLetterEvidence, ReplayEvidence, Report, SchemaEvidence};
use sluice_schema::replay::{ReplayPhase, ReplayStatus};
use sluice_schema::topic_configs::FEED_OWNER;

use crate::coordination::topic_config::DEAD_LETTER_TOPIC;
use crate::coordination::MetadataStore;
use crate::governance::SchemaRegistry;
use crate::lake::{LakeStatus, SharedCatalog};
use crate::storage::{LogEngine, StorageError};
use log_scan::{local_part, LocalPart};

/// What a report is asked for: records of `topic` with a timestamp in
/// `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub topic: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    /// From query values: times as epoch milliseconds or RFC 3339.
    pub fn parse(topic: &str, from: &str, to: &str) -> Result<Self, EvidenceError> {
        let window = Window {
            topic: topic.to_string(),
            from_ms: parse_time(from)?,
            to_ms: parse_time(to)?,
        };
        if window.from_ms >= window.to_ms {
            return Err(EvidenceError::BadRequest(format!(
                "the window's start ({from}) is not before its end ({to})"
            )));
        }
        Ok(window)
    }
}

fn parse_time(s: &str) -> Result<i64, EvidenceError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            EvidenceError::BadRequest(format!(
                "{s:?} is neither epoch milliseconds nor an RFC 3339 time: {e}"
            ))
        })
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no topic {0:?}")]
    UnknownTopic(String),
    #[error("reading the log: {0}")]
    Storage(#[from] StorageError),
    #[error("reading the log: {0}")]
    Log(String),
    #[error("reading the table: {0}")]
    Table(String),
}

impl From<iceberg::Error> for EvidenceError {
    fn from(e: iceberg::Error) -> Self {
        EvidenceError::Table(e.to_string())
    }
}

/// Where a report's figures come from, on this broker.
pub struct Sources {
    pub node_id: i32,
    pub engine: Arc<LogEngine>,
    pub metadata: Arc<MetadataStore>,
    pub schemas: Arc<SchemaRegistry>,
    pub catalog: Arc<SharedCatalog>,
    pub lake_status: LakeStatus,
}

impl Sources {
    /// This broker's part of a report (what its peers ask for).
    pub async fn local(&self, window: &Window) -> Result<LocalPart, EvidenceError> {
        let mut part =
            local_part(&self.engine, &self.metadata.current(), self.node_id, window).await?;
        part.replays = self.replay_progress(&window.topic);
        Ok(part)
    }

    /// The whole report: this broker's part, its peers', the table's and the registry's.
    pub async fn report(&self, window: &Window) -> Result<Report, EvidenceError> {
        let began = Instant::now();
        let meta = self.metadata.current();
        let topic = meta
            .topics
            .get(&window.topic)
            .ok_or_else(|| EvidenceError::UnknownTopic(window.topic.clone()))?
            .clone();
        let mut part = self.local(window).await?;
        let mut unreachable = Vec::new();
        for (id, node) in &meta.nodes {
            if *id == self.node_id || !node.alive {
                continue;
            }
            let Some(http_port) = node.http_port else {
                unreachable.push(format!("broker {id} does not say where its HTTP API is"));
                continue;
            };
            match peers::ask(&node.host, http_port, window).await {
                Ok(peer) => part.merge(peer),
                Err(e) => unreachable.push(format!("broker {id}: {e}")),
            }
        }
        part.partitions.sort_by_key(|p| p.partition);
        part.partitions.dedup_by_key(|p| p.partition);

        let mut report = Report {
            topic: window.topic.clone(),
            owner: topic
                .configs
                .get(FEED_OWNER)
                .cloned()
                .filter(|o| !o.is_empty()),
            from_ms: window.from_ms,
            to_ms: window.to_ms,
            principals: part.principals.clone(),
            generated_ms: chrono::Utc::now().timestamp_millis(),
            ..Default::default()
        };
        report.schemas = self.schemas_of(&part.schemas);
        report.dead_letters = topic
            .configs
            .get(DEAD_LETTER_TOPIC)
            .filter(|t| !t.is_empty())
            .map(|t| DeadLetterEvidence {
                topic: t.clone(),
                count: part.dead_letter_count,
                reasons: part.dead_letter_reasons.clone(),
                records: part.dead_letters.clone(),
            });
        let spec = TableSpec::from_configs(&window.topic, &topic.configs)
            .map_err(|e| EvidenceError::Table(e.to_string()))?;
        if let Some(spec) = &spec {
            report.table = Some(spec.qualified_name());
            let ranges: table::Ranges = part
                .partitions
                .iter()
                .filter_map(|p| Some((p.partition, (p.first_offset?, p.last_offset?))))
                .collect();
            match self.table_side(spec, &ranges).await {
                Ok((snapshots, positions, rows)) => {
                    report.snapshots = snapshots;
                    for p in &mut part.partitions {
                        p.table_position = positions.get(&p.partition).copied();
                        p.table_rows = rows.get(&p.partition).copied();
                    }
                }
                Err(e) => report
                    .findings
                    .push(format!("the table could not be read: {e}")),
            }
            report.replays = spec
                .replays
                .iter()
                .filter(|r| r.from_ms < window.to_ms && window.from_ms < r.to_ms)
                .map(|r| ReplayEvidence {
                    spec: Some(r.clone()),
                    status: sum_progress(part.replays.iter().filter(|s| s.id == r.id)),
                })
                .collect();
        }
        report.partitions = part.partitions;
        let mut findings = unreachable;
        findings.extend(findings::findings(&report, topic.partitions.len()));
        report.findings.extend(findings);
        report.elapsed_ms = began.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The table's snapshots, positions and rows for the window's ranges.
    async fn table_side(
        &self,
        spec: &TableSpec,
        ranges: &table::Ranges,
    ) -> Result<
        (
            Vec<sluice_schema::evidence::SnapshotEvidence>,
            sluice_lake::lineage::Positions,
            BTreeMap<i32, u64>,
        ),
        EvidenceError,
    > {
        let catalog = self
            .catalog
            .get()
            .await
            .map_err(|e| EvidenceError::Table(e.to_string()))?
            .ok_or_else(|| {
                EvidenceError::Table("no Iceberg catalog configured (--lake-catalog)".into())
            })?;
        let t = catalog.load_table(&ident(spec)).await?;
        Ok((
            table::snapshots(&t, ranges),
            sluice_lake::table::positions(&t),
            table::rows_in(&t, ranges).await?,
        ))
    }

    fn schemas_of(&self, counts: &BTreeMap<i32, u64>) -> Vec<SchemaEvidence> {
        let registry = self.schemas.current();
        counts
            .iter()
            .map(|(id, records)| {
                let found = registry
                    .versions_for_id(*id, true)
                    .ok()
                    .and_then(|v| v.into_iter().next());
                SchemaEvidence {
                    id: *id,
                    subject: found.as_ref().map(|(s, _)| s.clone()),
                    version: found.map(|(_, v)| v),
                    records: *records,
                }
            })
            .collect()
    }

    /// This broker's progress of the topic's replays.
    fn replay_progress(&self, topic: &str) -> Vec<ReplayStatus> {
        self.lake_status
            .snapshot()
            .into_iter()
            .filter(|t| t.topic == topic)
            .flat_map(|t| t.replays)
            .collect()
    }
}

/// One replay's progress summed over the brokers that report it.
pub fn sum_progress<'a>(parts: impl Iterator<Item = &'a ReplayStatus>) -> Option<ReplayStatus> {
    let mut sum: Option<ReplayStatus> = None;
    for p in parts {
        let s = sum.get_or_insert_with(|| ReplayStatus {
            id: p.id.clone(),
            phase: p.phase,
            ..Default::default()
        });
        s.phase = match (s.phase, p.phase) {
            (ReplayPhase::Failed, _) | (_, ReplayPhase::Failed) => ReplayPhase::Failed,
            (ReplayPhase::Running, _) | (_, ReplayPhase::Running) => ReplayPhase::Running,
            (ReplayPhase::Pending, _) | (_, ReplayPhase::Pending) => ReplayPhase::Pending,
            _ => ReplayPhase::Succeeded,
        };
        s.ranges.extend(p.ranges.iter().map(|(k, v)| (*k, *v)));
        s.records_read += p.records_read;
        s.rows_removed += p.rows_removed;
        s.rows_added += p.rows_added;
        s.dead_letters_added += p.dead_letters_added;
        for id in &p.snapshot_ids {
            if !s.snapshot_ids.contains(id) {
                s.snapshot_ids.push(*id);
            }
        }
        s.started_ms = match (s.started_ms, p.started_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        s.finished_ms = s.finished_ms.max(p.finished_ms);
        if p.error.is_some() {
            s.error = p.error.clone();
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_milliseconds_or_rfc3339_and_must_not_be_empty() {
        let w = Window::parse("dns", "2026-01-01T00:00:00Z", "1767229200000").unwrap();
        assert_eq!((w.from_ms, w.to_ms), (1_767_225_600_000, 1_767_229_200_000));
        assert!(matches!(
            Window::parse("dns", "5", "5"),
            Err(EvidenceError::BadRequest(m)) if m.contains("not before")
        ));
        assert!(Window::parse("dns", "yesterday", "5").is_err());
    }

    #[test]
    fn progress_sums_over_brokers() {
        let a = ReplayStatus {
            id: "r".into(),
            phase: ReplayPhase::Succeeded,
            rows_removed: 10,
            snapshot_ids: vec![1],
            started_ms: Some(5),
            finished_ms: Some(9),
            ..Default::default()
        };
        let b = ReplayStatus {
            phase: ReplayPhase::Running,
            rows_removed: 3,
            snapshot_ids: vec![2],
            started_ms: Some(4),
            ..a.clone()
        };
        let s = sum_progress([&a, &b].into_iter()).unwrap();
        assert_eq!(s.phase, ReplayPhase::Running);
        assert_eq!(s.rows_removed, 13);
        assert_eq!(s.snapshot_ids, vec![1, 2]);
        assert_eq!((s.started_ms, s.finished_ms), (Some(4), Some(9)));
        assert_eq!(
            sum_progress([&a].into_iter()).unwrap().phase,
            ReplayPhase::Succeeded
        );
    }
}
