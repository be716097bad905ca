//! The `table` output: a [`Document`] laid out for a terminal, columns aligned (numbers
//! to the right), section titles flush left and their content indented.

use super::document::{Align, Block, Document, Table};

const INDENT: &str = "  ";
/// Between two columns and between a label and its value.
const GAP: &str = "  ";

pub fn render(doc: &Document) -> String {
    let mut out = Vec::new();
    out.push(one_line(&doc.title));
    out.extend(fields(&doc.fields));
    for section in &doc.sections {
        out.push(String::new());
        out.push(one_line(&section.title));
        for (i, block) in section.blocks.iter().enumerate() {
            if i > 0 {
                out.push(String::new());
            }
            match block {
                Block::Fields(f) => out.extend(fields(f)),
                Block::Table(t) => out.extend(table(t)),
                Block::Line(line) => out.push(format!("{INDENT}{}", one_line(line))),
                Block::List(items) => out.extend(
                    items
                        .iter()
                        .map(|item| format!("{INDENT}- {}", one_line(item))),
                ),
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

fn fields(fields: &[(String, String)]) -> Vec<String> {
    let width = fields.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
    fields
        .iter()
        .map(|(label, value)| {
            let line = format!(
                "{INDENT}{}{GAP}{}",
                pad(&one_line(label), width, Align::Left),
                one_line(value)
            );
            line.trim_end().to_string()
        })
        .collect()
}

fn table(t: &Table) -> Vec<String> {
    let header: Vec<String> = t.columns.iter().map(|c| c.name.to_uppercase()).collect();
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(|c| one_line(c)).collect())
        .collect();
    let widths: Vec<usize> = (0..t.columns.len())
        .map(|i| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(&header[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(&rows)
        .map(|cells| {
            let line = cells
                .iter()
                .enumerate()
                .map(|(i, cell)| pad(cell, widths[i], t.columns[i].align))
                .collect::<Vec<_>>()
                .join(GAP);
            format!("{INDENT}{}", line.trim_end())
        })
        .collect()
}

/// A value from the broker on one line: a newline or tab in a reason or an error must
/// not break the columns.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, width_: usize, align: Align) -> String {
    let fill = " ".repeat(width_.saturating_sub(width(text)));
    match align {
        Align::Left => format!("{text}{fill}"),
        Align::Right => format!("{fill}{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample::{self, has_line};
    use crate::render::sections::document;
    use sluice_schema::evidence::Report;

    #[test]
    fn prints_the_header_with_aligned_labels_and_utc_times() {
        let text = sample::printed(render);
        assert!(text.starts_with("Evidence report\n  Topic      dns-events\n"));
        has_line(&text, "  Table      security.dns");
        has_line(&text, "  Owner      team-dns");
        has_line(
            &text,
            "  Window     2026-12-01T10:00:00Z .. 2026-12-01T11:00:00Z",
        );
        has_line(&text, "  Generated  2026-12-01T12:00:00Z");
        has_line(&text, "  Elapsed    1.2 s");
    }

    #[test]
    fn aligns_partition_columns_numbers_to_the_right() {
        let text = sample::printed(render);
        has_line(
            &text,
            "  PARTITION  FIRST  LAST  RECORDS  TABLE ROWS  TABLE POSITION  NODE",
        );
        has_line(
            &text,
            "          0     10    99       90          88             100     1",
        );
        has_line(
            &text,
            "          1      -     -        0           -               -     -",
        );
    }

    #[test]
    fn prints_snapshot_ranges_schemas_and_principals() {
        let text = sample::printed(render);
        has_line(
            &text,
            "    ID  TIME                  OPERATION  RANGES          FILES  ROWS ADDED  ROWS DELETED  REPLAY",
        );
        has_line(
            &text,
            "  7001  2026-12-01T10:30:00Z  append     0:10-99 1:5-50      2         136             0  -",
        );
        has_line(&text, "  99  not registered          -       10");
        has_line(&text, "  User:collector       90");
    }

    #[test]
    fn lists_dead_letters_reasons_then_records_then_how_many_more() {
        let text = sample::printed(render);
        has_line(&text, "  Topic    dns-events.dlq");
        has_line(&text, "  Records  30");
        has_line(&text, "  schema-id-unknown     25");
        has_line(&text, "  PARTITION  OFFSET  SOURCE PARTITION  REASON");
        has_line(
            &text,
            "          0     119                 2  schema-id-unknown",
        );
        assert!(
            !text.contains("     120 "),
            "only 20 records listed:\n{text}"
        );
        has_line(
            &text,
            "  ... 10 more (-o json has the 25 records the broker listed)",
        );
    }

    #[test]
    fn ends_with_the_findings() {
        let text = sample::printed(render);
        assert!(
            text.ends_with(&format!("Findings (1)\n  - {}\n", sample::FINDING)),
            "{text}"
        );
        let clean = render(&document(&Report::default()));
        assert!(clean.ends_with("Findings\n  no findings\n"), "{clean}");
    }

    #[test]
    fn keeps_a_value_with_a_newline_on_one_line() {
        let mut report = sample::report();
        report.findings = vec!["first\nsecond".into()];
        assert!(render(&document(&report)).ends_with("  - first second\n"));
    }
}
