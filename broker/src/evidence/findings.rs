//! Cross-checks of an evidence report: every figure that another source also knows is
//! compared with it, and each mismatch or gap is written down as a finding, never
//! smoothed over. Pure: it reads the report as built.

use sluice_schema::evidence::Report;

/// The findings of `report`.
pub fn findings(report: &Report, topic_partitions: usize) -> Vec<String> {
    let mut out = Vec::new();
    let answered: std::collections::BTreeSet<i32> =
        report.partitions.iter().map(|p| p.partition).collect();
    for p in 0..topic_partitions as i32 {
        if !answered.contains(&p) {
            out.push(format!(
                "partition {p}: no broker answered for it (its leader is down or moving); its records are not counted"
            ));
        }
    }
    let table = report.table.is_some();
    for p in &report.partitions {
        let (Some(first), Some(last)) = (p.first_offset, p.last_offset) else {
            continue;
        };
        if !table {
            continue;
        }
        let position = p.table_position.unwrap_or(0);
        if position <= last {
            out.push(format!(
                "partition {}: offsets {}-{last} are not in the table yet (its position is {position})",
                p.partition,
                position.max(first)
            ));
            continue;
        }
        let rows = p.table_rows.unwrap_or(0);
        if rows != p.records {
            out.push(format!(
                "partition {}: the log has {} records at offsets {first}-{last}, the table {rows} rows",
                p.partition, p.records
            ));
        }
        // Which snapshots say they hold these offsets: together they must cover the
        // range, unless expired (the rows keep their lineage).
        let mut covered: Vec<(i64, i64)> = report
            .snapshots
            .iter()
            .filter_map(|s| s.ranges.get(&p.partition).copied())
            .collect();
        covered.sort();
        let mut next = first;
        for (a, b) in covered {
            if a > next {
                break;
            }
            next = next.max(b + 1);
        }
        if next <= last {
            out.push(format!(
                "partition {}: offsets {next}-{last} are in no snapshot the table still has (expired snapshots; the rows carry their offsets)",
                p.partition
            ));
        }
    }
    for s in &report.schemas {
        if s.subject.is_none() {
            out.push(format!(
                "schema id {} ({} records) is not in the registry",
                s.id, s.records
            ));
        }
    }
    // Dead-lettered records leave their offsets empty in the topic: the offsets of the
    // window without a data record must be at least the dead-letter records.
    if let Some(dl) = &report.dead_letters {
        let empty: i64 = report
            .partitions
            .iter()
            .filter_map(|p| Some(p.last_offset? - p.first_offset? + 1 - p.records as i64))
            .sum();
        if (dl.count as i64) > empty {
            out.push(format!(
                "{} dead-letter records of the window, but only {empty} offsets of the window hold no record",
                dl.count
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_schema::evidence::{
        DeadLetterEvidence, PartitionEvidence, SchemaEvidence, SnapshotEvidence,
    };

    fn report() -> Report {
        Report {
            topic: "dns".into(),
            table: Some("sluice.dns".into()),
            partitions: vec![PartitionEvidence {
                partition: 0,
                first_offset: Some(10),
                last_offset: Some(19),
                records: 8,
                table_rows: Some(8),
                table_position: Some(100),
                node_id: Some(0),
            }],
            snapshots: vec![
                SnapshotEvidence {
                    ranges: [(0, (0, 14))].into(),
                    ..Default::default()
                },
                SnapshotEvidence {
                    ranges: [(0, (15, 99))].into(),
                    ..Default::default()
                },
            ],
            schemas: vec![SchemaEvidence {
                id: 1,
                subject: Some("dns-value".into()),
                version: Some(1),
                records: 8,
            }],
            dead_letters: Some(DeadLetterEvidence {
                count: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_consistent_report_has_no_findings() {
        assert_eq!(findings(&report(), 1), Vec::<String>::new());
    }

    #[test]
    fn each_mismatch_is_named() {
        let mut r = report();
        r.partitions[0].table_rows = Some(7);
        r.snapshots.remove(0);
        r.schemas[0].subject = None;
        r.dead_letters.as_mut().unwrap().count = 3;
        let f = findings(&r, 2);
        assert!(f[0].starts_with("partition 1: no broker answered"), "{f:?}");
        assert!(
            f.iter()
                .any(|l| l.contains("the log has 8 records at offsets 10-19, the table 7 rows")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.contains("offsets 10-19 are in no snapshot")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.contains("schema id 1 (8 records) is not in the registry")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.contains("3 dead-letter records of the window, but only 2 offsets")),
            "{f:?}"
        );
    }

    #[test]
    fn offsets_past_the_table_position_are_not_in_the_table_yet() {
        let mut r = report();
        r.partitions[0].table_position = Some(15);
        let f = findings(&r, 1);
        assert_eq!(
            f,
            ["partition 0: offsets 15-19 are not in the table yet (its position is 15)"]
        );
    }
}
