//! The `markdown` output: a [`Document`] as GitHub-flavoured Markdown, for pasting into
//! a ticket. Values come from the brokers and from people (replay reasons), so every
//! character Markdown would act on is escaped: a `|` in a reason must not split a cell.

use super::document::{Align, Block, Document, Table};

pub fn render(doc: &Document) -> String {
    let mut out = Vec::new();
    out.push(format!("## {}", escape(&doc.title)));
    out.push(String::new());
    out.extend(fields(&doc.fields));
    for section in &doc.sections {
        out.push(String::new());
        out.push(format!("### {}", escape(&section.title)));
        for block in &section.blocks {
            out.push(String::new());
            match block {
                Block::Fields(f) => out.extend(fields(f)),
                Block::Table(t) => out.extend(table(t)),
                Block::Line(line) => out.push(escape(line)),
                Block::List(items) => {
                    out.extend(items.iter().map(|item| format!("- {}", escape(item))))
                }
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Labelled values as a two-column table: it stays compact in a ticket.
fn fields(fields: &[(String, String)]) -> Vec<String> {
    let mut t = Table::new(&[("Field", Align::Left), ("Value", Align::Left)]);
    for (label, value) in fields {
        t.row(vec![label.clone(), value.clone()]);
    }
    table(&t)
}

fn table(t: &Table) -> Vec<String> {
    let header = row(t.columns.iter().map(|c| escape(c.name)));
    let rule = row(t.columns.iter().map(|c| match c.align {
        Align::Left => "---".to_string(),
        Align::Right => "---:".to_string(),
    }));
    let rows = t.rows.iter().map(|r| row(r.iter().map(|c| escape(c))));
    [header, rule].into_iter().chain(rows).collect()
}

fn row(cells: impl Iterator<Item = String>) -> String {
    format!("| {} |", cells.collect::<Vec<_>>().join(" | "))
}

/// Backslash-escapes the ASCII punctuation Markdown acts on inside a line or a table
/// cell, and puts a value with a line break on one line (a break would end the row).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push(' ');
            continue;
        }
        if "\\|`*_[]<>#".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample::{self, has_line};
    use crate::render::sections::document;
    use sluice_schema::evidence::Report;

    #[test]
    fn prints_the_header_as_a_field_table() {
        let text = sample::printed(render);
        assert!(
            text.starts_with(
                "## Evidence report\n\n| Field | Value |\n| --- | --- |\n| Topic | dns-events |\n"
            ),
            "{text}"
        );
        has_line(
            &text,
            "| Window | 2026-12-01T10:00:00Z .. 2026-12-01T11:00:00Z |",
        );
    }

    #[test]
    fn prints_sections_as_tables_with_header_and_alignment_rows() {
        let text = sample::printed(render);
        let partitions = "### Partitions\n\n\
            | Partition | First | Last | Records | Table rows | Table position | Node |\n\
            | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n\
            | 0 | 10 | 99 | 90 | 88 | 100 | 1 |\n";
        assert!(text.contains(partitions), "{text}");
        has_line(
            &text,
            "| Id | Time | Operation | Ranges | Files | Rows added | Rows deleted | Replay |",
        );
        has_line(
            &text,
            "| ---: | --- | --- | --- | ---: | ---: | ---: | --- |",
        );
        has_line(
            &text,
            "| 7001 | 2026-12-01T10:30:00Z | append | 0:10-99 1:5-50 | 2 | 136 | 0 | - |",
        );
    }

    #[test]
    fn escapes_pipes_and_markup_in_values() {
        let text = sample::printed(render);
        // The replay's reason is "parser bug | 42".
        has_line(
            &text,
            "| r-1 | alice | team-dns | parser bug \\| 42 | Failed | 90 | 88 | 7002 7003 |",
        );
        assert_eq!(
            escape("a|b\\c*d_e`f<g>[h]#i"),
            "a\\|b\\\\c\\*d\\_e\\`f\\<g\\>\\[h\\]\\#i"
        );
        assert_eq!(escape("two\nlines"), "two lines");
    }

    #[test]
    fn lists_dead_letters_and_ends_with_the_findings() {
        let text = sample::printed(render);
        has_line(&text, "| schema-id-unknown | 25 |");
        has_line(&text, "| 0 | 119 | 2 | schema-id-unknown |");
        has_line(
            &text,
            "... 10 more (-o json has the 25 records the broker listed)",
        );
        assert!(
            text.ends_with(&format!("### Findings (1)\n\n- {}\n", sample::FINDING)),
            "{text}"
        );
        let clean = render(&document(&Report::default()));
        assert!(clean.ends_with("### Findings\n\nno findings\n"), "{clean}");
    }
}
