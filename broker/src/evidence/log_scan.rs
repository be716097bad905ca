//! This broker's part of an evidence report: for the partitions of the feed's topic it
//! leads, the offsets covering the window (Kafka's ListOffsets by time), their records
//! counted, with the schema ids and producing principals they carry; for the
//! partitions of the dead-letter topic it leads, the feed's dead-letter records of the
//! window. Read from the log engine, exactly as a consumer would see the records.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::records::RecordBatchDecoder;
use serde::{Deserialize, Serialize};
use sluice_protocol::record_batch;
use sluice_schema::evidence::{DeadLetterRecord, PartitionEvidence, MAX_LISTED_DEAD_LETTERS};
use sluice_schema::replay::ReplayStatus;
use sluice_schema::validate::Format;

use super::{EvidenceError, Window};
use crate::coordination::topic_config::{schema_policy, DEAD_LETTER_TOPIC};
use crate::coordination::ClusterMetadata;
use crate::governance::rewrite::header;
use crate::lake::records;
use crate::storage::{LogEngine, PartitionLog, ReadLimit};

/// Bytes read per step of a scan.
const READ_BYTES: usize = 4 * 1024 * 1024;

/// What one broker contributes to a report (`GET /v1/evidence/local`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LocalPart {
    pub node_id: i32,
    pub partitions: Vec<PartitionEvidence>,
    /// Records per schema id.
    pub schemas: BTreeMap<i32, u64>,
    pub principals: BTreeMap<String, u64>,
    pub dead_letter_count: u64,
    pub dead_letter_reasons: BTreeMap<String, u64>,
    pub dead_letters: Vec<DeadLetterRecord>,
    /// This broker's progress of the topic's replays.
    pub replays: Vec<ReplayStatus>,
}

impl LocalPart {
    /// Adds a peer's part.
    pub fn merge(&mut self, other: LocalPart) {
        self.partitions.extend(other.partitions);
        for (id, n) in other.schemas {
            *self.schemas.entry(id).or_default() += n;
        }
        for (p, n) in other.principals {
            *self.principals.entry(p).or_default() += n;
        }
        self.dead_letter_count += other.dead_letter_count;
        for (r, n) in other.dead_letter_reasons {
            *self.dead_letter_reasons.entry(r).or_default() += n;
        }
        self.dead_letters.extend(other.dead_letters);
        self.dead_letters.truncate(MAX_LISTED_DEAD_LETTERS);
        self.replays.extend(other.replays);
    }
}

/// Scans the partitions of the window's topic, and of its dead-letter topic, led here.
pub async fn local_part(
    engine: &LogEngine,
    meta: &ClusterMetadata,
    node_id: i32,
    window: &Window,
) -> Result<LocalPart, EvidenceError> {
    let topic = meta
        .topics
        .get(&window.topic)
        .ok_or_else(|| EvidenceError::UnknownTopic(window.topic.clone()))?;
    let framing = schema_policy(&topic.configs)
        .ok()
        .flatten()
        .map(|p| p.format)
        .filter(|f| *f != Format::Json);
    let mut part = LocalPart {
        node_id,
        ..Default::default()
    };
    for log in led(engine, topic.id) {
        let scan = scan_partition(engine, &log, window, framing).await?;
        part.partitions.push(PartitionEvidence {
            node_id: Some(node_id),
            ..scan.evidence
        });
        for (id, n) in scan.schemas {
            *part.schemas.entry(id).or_default() += n;
        }
    }
    let dlq = topic
        .configs
        .get(DEAD_LETTER_TOPIC)
        .filter(|t| !t.is_empty());
    if let Some(dlq) = dlq.and_then(|name| meta.topics.get(name)) {
        for log in led(engine, dlq.id) {
            scan_dead_letters(engine, &log, window, &mut part).await?;
        }
    }
    Ok(part)
}

fn led(engine: &LogEngine, topic_id: uuid::Uuid) -> Vec<Arc<PartitionLog>> {
    let mut parts: Vec<_> = engine
        .partitions()
        .into_iter()
        .filter(|p| p.topic_id == topic_id && !p.is_closed())
        .collect();
    parts.sort_by_key(|p| p.partition);
    parts
}

/// The window's offsets in `log`: `[first, end)`, None when no record is in it.
pub async fn window_offsets(
    engine: &LogEngine,
    log: &PartitionLog,
    window: &Window,
) -> Result<Option<(i64, i64)>, EvidenceError> {
    let Some((first, _)) = engine.offset_for_timestamp(log, window.from_ms).await? else {
        return Ok(None);
    };
    let end = match engine.offset_for_timestamp(log, window.to_ms).await? {
        Some((end, _)) => end,
        None => log.offsets().high_watermark,
    };
    Ok((end > first).then_some((first, end)))
}

struct PartitionScan {
    evidence: PartitionEvidence,
    schemas: BTreeMap<i32, u64>,
}

async fn scan_partition(
    engine: &LogEngine,
    log: &PartitionLog,
    window: &Window,
    framing: Option<Format>,
) -> Result<PartitionScan, EvidenceError> {
    let mut scan = PartitionScan {
        evidence: PartitionEvidence {
            partition: log.partition,
            ..Default::default()
        },
        schemas: BTreeMap::new(),
    };
    let Some((first, end)) = window_offsets(engine, log, window).await? else {
        return Ok(scan);
    };
    scan.evidence.first_offset = Some(first);
    scan.evidence.last_offset = Some(end - 1);
    read_range(engine, log, first, end, |data| {
        let (rows, next) =
            records::rows(&data, log.partition, framing).map_err(EvidenceError::Log)?;
        for row in rows.iter().filter(|r| r.offset >= first && r.offset < end) {
            scan.evidence.records += 1;
            if let Some(id) = row.schema_id {
                *scan.schemas.entry(id).or_default() += 1;
            }
        }
        Ok(next)
    })
    .await?;
    Ok(scan)
}

/// Reads `[first, end)` of `log` a chunk of whole batches at a time; `each` takes a
/// chunk and answers the offset after it.
async fn read_range(
    engine: &LogEngine,
    log: &PartitionLog,
    first: i64,
    end: i64,
    mut each: impl FnMut(bytes::Bytes) -> Result<Option<i64>, EvidenceError>,
) -> Result<(), EvidenceError> {
    let mut offset = first;
    while offset < end {
        let data = engine
            .read(log, offset, ReadLimit::at_least_one(READ_BYTES))
            .await?;
        if data.is_empty() {
            break;
        }
        offset = each(data)?.unwrap_or(end).max(offset + 1);
    }
    Ok(())
}

/// The feed's dead-letter records in `log` whose timestamp is in the window.
async fn scan_dead_letters(
    engine: &LogEngine,
    log: &PartitionLog,
    window: &Window,
    part: &mut LocalPart,
) -> Result<(), EvidenceError> {
    let Some((first, end)) = window_offsets(engine, log, window).await? else {
        return Ok(());
    };
    read_range(engine, log, first, end, |data| {
        let mut next = None;
        for (h, bytes) in record_batch::split_bytes(&data) {
            next = Some(h.next_offset());
            if h.is_control() {
                continue;
            }
            let mut buf = bytes;
            let set = RecordBatchDecoder::decode(&mut buf)
                .map_err(|e| EvidenceError::Log(format!("a dead-letter batch: {e:#}")))?;
            for r in set.records.iter().filter(|r| {
                !r.control
                    && r.offset >= first
                    && r.offset < end
                    && (window.from_ms..window.to_ms).contains(&r.timestamp)
            }) {
                let get = |name: &str| {
                    r.headers
                        .iter()
                        .find(|(k, _)| k.as_str() == name)
                        .and_then(|(_, v)| v.as_deref())
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                if get(header::TOPIC).as_deref() != Some(window.topic.as_str()) {
                    continue;
                }
                let reason = get(header::REASON).unwrap_or_else(|| "unknown".into());
                part.dead_letter_count += 1;
                *part.dead_letter_reasons.entry(reason.clone()).or_default() += 1;
                if part.dead_letters.len() < MAX_LISTED_DEAD_LETTERS {
                    part.dead_letters.push(DeadLetterRecord {
                        partition: log.partition,
                        offset: r.offset,
                        timestamp_ms: r.timestamp,
                        source_partition: get(header::PARTITION).and_then(|p| p.parse().ok()),
                        reason,
                        error: get(header::ERROR),
                    });
                }
            }
        }
        Ok(next)
    })
    .await
}
