//! What a printed report says: the [`Report`] turned into a [`Document`], section by
//! section, in the order an incident reviewer reads it (findings last, where the eye
//! lands at the end of the output).

use std::collections::BTreeMap;
use std::fmt::Display;

use sluice_schema::evidence::{DeadLetterEvidence, Report};

use super::document::{Align, Block, Document, Section, Table};
use crate::time::{format_elapsed, format_instant, Window};

/// Dead-letter records listed one by one in a printed report (the JSON has them all).
pub const MAX_PRINTED_DEAD_LETTERS: usize = 20;

/// Shown for a value the report does not have.
const ABSENT: &str = "-";

pub fn document(report: &Report) -> Document {
    Document {
        title: "Evidence report".into(),
        fields: header(report),
        sections: vec![
            partitions(report),
            schemas(report),
            snapshots(report),
            dead_letters(report.dead_letters.as_ref()),
            replays(report),
            principals(&report.principals),
            findings(&report.findings),
        ],
    }
}

/// Per partition `first-last`, space separated: `0:10-99 1:5-50`.
pub fn format_ranges(ranges: &BTreeMap<i32, (i64, i64)>) -> String {
    ranges
        .iter()
        .map(|(partition, (first, last))| format!("{partition}:{first}-{last}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn header(report: &Report) -> Vec<(String, String)> {
    let window = Window {
        from_ms: report.from_ms,
        to_ms: report.to_ms,
    };
    vec![
        ("Topic".into(), report.topic.clone()),
        (
            "Table".into(),
            report
                .table
                .clone()
                .unwrap_or_else(|| "none (the topic writes no table)".into()),
        ),
        ("Owner".into(), or_absent(report.owner.as_ref())),
        ("Window".into(), window.describe()),
        ("Generated".into(), format_instant(report.generated_ms)),
        ("Elapsed".into(), format_elapsed(report.elapsed_ms)),
    ]
}

fn partitions(report: &Report) -> Section {
    let mut table = Table::new(&[
        ("Partition", Align::Right),
        ("First", Align::Right),
        ("Last", Align::Right),
        ("Records", Align::Right),
        ("Table rows", Align::Right),
        ("Table position", Align::Right),
        ("Node", Align::Right),
    ]);
    for p in &report.partitions {
        table.row(vec![
            p.partition.to_string(),
            or_absent(p.first_offset),
            or_absent(p.last_offset),
            p.records.to_string(),
            or_absent(p.table_rows),
            or_absent(p.table_position),
            or_absent(p.node_id),
        ]);
    }
    section("Partitions", table, "none")
}

fn schemas(report: &Report) -> Section {
    let mut table = Table::new(&[
        ("Id", Align::Right),
        ("Subject", Align::Left),
        ("Version", Align::Right),
        ("Records", Align::Right),
    ]);
    for s in &report.schemas {
        table.row(vec![
            s.id.to_string(),
            s.subject.clone().unwrap_or_else(|| "not registered".into()),
            or_absent(s.version),
            s.records.to_string(),
        ]);
    }
    section("Schemas", table, "no schema ids in the window's records")
}

fn snapshots(report: &Report) -> Section {
    let mut table = Table::new(&[
        ("Id", Align::Right),
        ("Time", Align::Left),
        ("Operation", Align::Left),
        ("Ranges", Align::Left),
        ("Files", Align::Right),
        ("Rows added", Align::Right),
        ("Rows deleted", Align::Right),
        ("Replay", Align::Left),
    ]);
    for s in &report.snapshots {
        table.row(vec![
            s.snapshot_id.to_string(),
            format_instant(s.timestamp_ms),
            s.operation.clone(),
            format_ranges(&s.ranges),
            s.added_files.to_string(),
            s.added_rows.to_string(),
            s.deleted_rows.to_string(),
            or_absent(s.replay_id.as_ref()),
        ]);
    }
    section("Snapshots", table, "none")
}

fn dead_letters(evidence: Option<&DeadLetterEvidence>) -> Section {
    let title = "Dead letters".to_string();
    let Some(dl) = evidence else {
        return Section {
            title,
            blocks: vec![Block::Line("the feed has no dead-letter topic".into())],
        };
    };
    let mut blocks = vec![Block::Fields(vec![
        ("Topic".into(), dl.topic.clone()),
        ("Records".into(), dl.count.to_string()),
    ])];
    if !dl.reasons.is_empty() {
        let mut reasons = Table::new(&[("Reason", Align::Left), ("Count", Align::Right)]);
        for (reason, count) in &dl.reasons {
            reasons.row(vec![reason.clone(), count.to_string()]);
        }
        blocks.push(Block::Table(reasons));
    }
    if !dl.records.is_empty() {
        let mut records = Table::new(&[
            ("Partition", Align::Right),
            ("Offset", Align::Right),
            ("Source partition", Align::Right),
            ("Reason", Align::Left),
        ]);
        for r in dl.records.iter().take(MAX_PRINTED_DEAD_LETTERS) {
            records.row(vec![
                r.partition.to_string(),
                r.offset.to_string(),
                or_absent(r.source_partition),
                r.reason.clone(),
            ]);
        }
        let shown = records.rows.len();
        blocks.push(Block::Table(records));
        // The count covers records the broker did not list either.
        let total = dl.count.max(dl.records.len() as u64);
        let more = total - shown as u64;
        if more > 0 {
            let line = if dl.records.len() > shown {
                format!(
                    "... {more} more (-o json has the {} records the broker listed)",
                    dl.records.len()
                )
            } else {
                format!("... {more} more")
            };
            blocks.push(Block::Line(line));
        }
    }
    Section { title, blocks }
}

fn replays(report: &Report) -> Section {
    let mut table = Table::new(&[
        ("Id", Align::Left),
        ("Requested by", Align::Left),
        ("Approved by", Align::Left),
        ("Reason", Align::Left),
        ("Phase", Align::Left),
        ("Rows removed", Align::Right),
        ("Rows added", Align::Right),
        ("Snapshots", Align::Left),
    ]);
    let mut errors = Vec::new();
    for r in &report.replays {
        let spec = r.spec.as_ref();
        let status = r.status.as_ref();
        let id = spec
            .map(|s| s.id.clone())
            .or_else(|| status.map(|s| s.id.clone()))
            .unwrap_or_else(|| ABSENT.into());
        if let Some(error) = status.and_then(|s| s.error.as_ref()) {
            errors.push(format!("replay {id}: {error}"));
        }
        table.row(vec![
            id,
            or_absent(spec.map(|s| &s.requested_by)),
            or_absent(spec.map(|s| &s.approved_by)),
            or_absent(spec.map(|s| &s.reason)),
            status
                .map(|s| format!("{:?}", s.phase))
                .unwrap_or_else(|| "no status".into()),
            or_absent(status.map(|s| s.rows_removed)),
            or_absent(status.map(|s| s.rows_added)),
            status
                .map(|s| join(&s.snapshot_ids))
                .filter(|ids| !ids.is_empty())
                .unwrap_or_else(|| ABSENT.into()),
        ]);
    }
    let mut section = section("Replays", table, "none");
    if !errors.is_empty() {
        section.blocks.push(Block::List(errors));
    }
    section
}

fn principals(principals: &BTreeMap<String, u64>) -> Section {
    let mut table = Table::new(&[("Principal", Align::Left), ("Records", Align::Right)]);
    for (principal, records) in principals {
        table.row(vec![principal.clone(), records.to_string()]);
    }
    // Producers are only known by name once authentication is on.
    section("Principals", table, "none recorded")
}

fn findings(findings: &[String]) -> Section {
    if findings.is_empty() {
        return Section {
            title: "Findings".into(),
            blocks: vec![Block::Line("no findings".into())],
        };
    }
    Section {
        title: format!("Findings ({})", findings.len()),
        blocks: vec![Block::List(findings.to_vec())],
    }
}

/// A section holding `table`, or the sentence `empty` when the table has no row.
fn section(title: &str, table: Table, empty: &str) -> Section {
    let block = if table.rows.is_empty() {
        Block::Line(empty.into())
    } else {
        Block::Table(table)
    };
    Section {
        title: title.into(),
        blocks: vec![block],
    }
}

fn or_absent<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| ABSENT.into(), |v| v.to_string())
}

fn join<T: Display>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample;

    fn section_titled<'a>(doc: &'a Document, title: &str) -> &'a Section {
        doc.sections
            .iter()
            .find(|s| s.title.starts_with(title))
            .unwrap_or_else(|| panic!("no section {title}"))
    }

    fn tables(section: &Section) -> Vec<&Table> {
        section
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn formats_ranges_per_partition() {
        let ranges = BTreeMap::from([(1, (5, 50)), (0, (10, 99))]);
        assert_eq!(format_ranges(&ranges), "0:10-99 1:5-50");
        assert_eq!(format_ranges(&BTreeMap::new()), "");
    }

    #[test]
    fn lists_twenty_dead_letters_and_counts_the_rest() {
        let doc = document(&sample::report());
        let dl = section_titled(&doc, "Dead letters");
        let records = tables(dl)[1];
        assert_eq!(records.rows.len(), MAX_PRINTED_DEAD_LETTERS);
        assert_eq!(records.rows[0], ["0", "100", "2", "schema-id-unknown"]);
        // 30 counted, 25 listed, 20 shown.
        assert_eq!(
            dl.blocks.last(),
            Some(&Block::Line(
                "... 10 more (-o json has the 25 records the broker listed)".into()
            ))
        );
        // The broker listed only what is shown; the rest are counted.
        let mut report = sample::report();
        report.dead_letters.as_mut().unwrap().records.truncate(3);
        let doc = document(&report);
        let dl = section_titled(&doc, "Dead letters");
        assert_eq!(tables(dl)[1].rows.len(), 3);
        assert_eq!(dl.blocks.last(), Some(&Block::Line("... 27 more".into())));
    }

    #[test]
    fn says_when_there_is_nothing_to_show() {
        let doc = document(&Report::default());
        assert_eq!(
            section_titled(&doc, "Dead letters").blocks,
            [Block::Line("the feed has no dead-letter topic".into())]
        );
        assert_eq!(
            section_titled(&doc, "Findings").blocks,
            [Block::Line("no findings".into())]
        );
        assert_eq!(doc.fields[1].1, "none (the topic writes no table)");
    }

    #[test]
    fn names_a_failed_replay_and_its_error() {
        let doc = document(&sample::report());
        let replays = section_titled(&doc, "Replays");
        let row = &tables(replays)[0].rows[0];
        assert_eq!(
            row,
            &[
                "r-1",
                "alice",
                "team-dns",
                "parser bug | 42",
                "Failed",
                "90",
                "88",
                "7002 7003"
            ]
        );
        assert!(replays.blocks.contains(&Block::List(vec![
            "replay r-1: catalog refused the commit".into()
        ])));
    }
}
