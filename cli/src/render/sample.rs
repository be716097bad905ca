//! One report with something in every section, for the renderers' tests.

use std::collections::BTreeMap;

use sluice_schema::evidence::{
    DeadLetterEvidence, DeadLetterRecord, PartitionEvidence, ReplayEvidence, Report,
    SchemaEvidence, SnapshotEvidence,
};
use sluice_schema::replay::{ReplayPhase, ReplaySpec, ReplayStatus};

use super::document::Document;
use super::sections::document;

/// 2026-12-01T10:00:00Z
pub const FROM_MS: i64 = 1_796_119_200_000;
const HOUR_MS: i64 = 3_600_000;

pub const FINDING: &str = "partition 0: the table holds 88 rows for offsets 10-99, the log 90";

/// The sample report as one renderer (`text::render`, `markdown::render`) prints it.
pub fn printed(render: fn(&Document) -> String) -> String {
    render(&document(&report()))
}

/// Fails, showing the whole text, unless `line` is one of its lines exactly.
pub fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

pub fn report() -> Report {
    Report {
        topic: "dns-events".into(),
        table: Some("security.dns".into()),
        owner: Some("team-dns".into()),
        from_ms: FROM_MS,
        to_ms: FROM_MS + HOUR_MS,
        partitions: vec![
            PartitionEvidence {
                partition: 0,
                first_offset: Some(10),
                last_offset: Some(99),
                records: 90,
                table_rows: Some(88),
                table_position: Some(100),
                node_id: Some(1),
            },
            PartitionEvidence {
                partition: 1,
                records: 0,
                ..PartitionEvidence::default()
            },
        ],
        schemas: vec![
            SchemaEvidence {
                id: 7,
                subject: Some("dns-events-value".into()),
                version: Some(3),
                records: 80,
            },
            SchemaEvidence {
                id: 99,
                subject: None,
                version: None,
                records: 10,
            },
        ],
        snapshots: vec![
            SnapshotEvidence {
                snapshot_id: 7001,
                timestamp_ms: FROM_MS + HOUR_MS / 2,
                operation: "append".into(),
                ranges: BTreeMap::from([(0, (10, 99)), (1, (5, 50))]),
                added_files: 2,
                added_rows: 136,
                deleted_rows: 0,
                replay_id: None,
                writer: Some("1-4".into()),
            },
            SnapshotEvidence {
                snapshot_id: 7002,
                timestamp_ms: FROM_MS + 2 * HOUR_MS,
                operation: "overwrite".into(),
                ranges: BTreeMap::from([(0, (10, 99))]),
                added_files: 1,
                added_rows: 88,
                deleted_rows: 90,
                replay_id: Some("r-1".into()),
                writer: Some("1-4".into()),
            },
        ],
        dead_letters: Some(DeadLetterEvidence {
            topic: "dns-events.dlq".into(),
            count: 30,
            reasons: BTreeMap::from([
                ("invalid".to_string(), 5),
                ("schema-id-unknown".to_string(), 25),
            ]),
            records: (0..25)
                .map(|i| DeadLetterRecord {
                    partition: 0,
                    offset: 100 + i,
                    timestamp_ms: FROM_MS + i,
                    source_partition: Some(2),
                    reason: "schema-id-unknown".into(),
                    error: None,
                })
                .collect(),
        }),
        replays: vec![ReplayEvidence {
            spec: Some(ReplaySpec {
                id: "r-1".into(),
                from_ms: FROM_MS,
                to_ms: FROM_MS + HOUR_MS,
                reason: "parser bug | 42".into(),
                requested_by: "alice".into(),
                approved_by: "team-dns".into(),
                dead_letters: true,
                bytes_per_second: 1024,
            }),
            status: Some(ReplayStatus {
                id: "r-1".into(),
                phase: ReplayPhase::Failed,
                rows_removed: 90,
                rows_added: 88,
                snapshot_ids: vec![7002, 7003],
                error: Some("catalog refused the commit".into()),
                ..ReplayStatus::default()
            }),
        }],
        principals: BTreeMap::from([("User:collector".to_string(), 90)]),
        findings: vec![FINDING.into()],
        generated_ms: FROM_MS + 2 * HOUR_MS,
        elapsed_ms: 1_234,
    }
}
