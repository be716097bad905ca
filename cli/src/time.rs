//! Instants on the command line and in printed reports: RFC 3339 or epoch milliseconds
//! in, RFC 3339 UTC out (the broker's `/v1/evidence` takes both forms; the CLI sends
//! milliseconds so that both sides agree on the window to the millisecond).

use k8s_openapi::jiff::Timestamp;

/// Parses `2026-12-01T10:00:00Z` (any RFC 3339 offset) or epoch milliseconds (`1796119200000`).
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    text.parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            format!("{text:?} is neither an RFC 3339 time (2026-12-01T10:00:00Z) nor epoch milliseconds")
        })
}

/// RFC 3339 in UTC, with milliseconds only when there are some.
pub fn format_instant(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_string(),
        // Out of jiff's range (years beyond ±9999): still say what the number was.
        Err(_) => format!("{ms} ms since the epoch"),
    }
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 5 s`.
pub fn format_elapsed(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// The window `[from_ms, to_ms)` a report is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    /// Refuses an empty or reversed window before anything is asked of a broker.
    pub fn new(from_ms: i64, to_ms: i64) -> Result<Window, String> {
        if from_ms >= to_ms {
            return Err(format!(
                "--from ({}) must be before --to ({}): the window is [from, to)",
                format_instant(from_ms),
                format_instant(to_ms)
            ));
        }
        Ok(Window { from_ms, to_ms })
    }

    /// `2026-12-01T10:00:00Z .. 2026-12-01T11:00:00Z`
    pub fn describe(&self) -> String {
        format!(
            "{} .. {}",
            format_instant(self.from_ms),
            format_instant(self.to_ms)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEC_1_10H: i64 = 1_796_119_200_000;

    #[test]
    fn parses_rfc3339_and_epoch_milliseconds_to_the_same_instant() {
        assert_eq!(parse_instant("2026-12-01T10:00:00Z").unwrap(), DEC_1_10H);
        assert_eq!(
            parse_instant("2026-12-01T11:00:00+01:00").unwrap(),
            DEC_1_10H
        );
        assert_eq!(parse_instant(" 1796119200000 ").unwrap(), DEC_1_10H);
        assert_eq!(
            parse_instant("2026-12-01T10:00:00.250Z").unwrap(),
            DEC_1_10H + 250
        );
        let err = parse_instant("yesterday").unwrap_err();
        assert!(err.contains("\"yesterday\" is neither"), "{err}");
    }

    #[test]
    fn formats_utc_with_milliseconds_only_when_present() {
        assert_eq!(format_instant(DEC_1_10H), "2026-12-01T10:00:00Z");
        assert_eq!(format_instant(DEC_1_10H + 5), "2026-12-01T10:00:00.005Z");
        assert_eq!(
            format_instant(i64::MAX),
            format!("{} ms since the epoch", i64::MAX)
        );
    }

    #[test]
    fn formats_elapsed_time() {
        assert_eq!(format_elapsed(850), "850 ms");
        assert_eq!(format_elapsed(12_345), "12.3 s");
        assert_eq!(format_elapsed(245_000), "4 min 5 s");
    }

    #[test]
    fn refuses_an_empty_or_reversed_window() {
        let err = Window::new(DEC_1_10H, DEC_1_10H).unwrap_err();
        assert_eq!(
            err,
            "--from (2026-12-01T10:00:00Z) must be before --to (2026-12-01T10:00:00Z): the window is [from, to)"
        );
        assert!(Window::new(DEC_1_10H + 1, DEC_1_10H).is_err());
        let w = Window::new(DEC_1_10H, DEC_1_10H + 3_600_000).unwrap();
        assert_eq!(w.describe(), "2026-12-01T10:00:00Z .. 2026-12-01T11:00:00Z");
    }
}
