//! Printing an evidence report: pure functions from a [`Report`] to the text that goes to
//! standard output, one module per concern (what is said: `sections`; how it looks:
//! `text`, `markdown`).

mod document;
mod markdown;
#[cfg(test)]
mod sample;
mod sections;
mod text;

use sluice_schema::evidence::Report;

/// `-o table|json|markdown`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// The report as the broker sent it, pretty-printed (every field, every record).
    Json,
    /// GitHub-flavoured Markdown tables, for a ticket.
    Markdown,
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => text::render(&sections::document(report)),
        Format::Markdown => markdown::render(&sections::document(report)),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(report).expect("a report serializes");
            json.push('\n');
            json
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_the_whole_report() {
        let report = sample::report();
        let json = render(&report, Format::Json);
        assert!(json.contains("\n  \"topic\": \"dns-events\",\n"), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn table_and_markdown_print_the_same_finding() {
        let report = sample::report();
        for format in [Format::Table, Format::Markdown] {
            let out = render(&report, format);
            assert!(out.contains(sample::FINDING), "{format:?}:\n{out}");
        }
    }
}
