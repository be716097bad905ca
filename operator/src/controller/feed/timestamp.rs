//! Points in time as a Feed writes them (RFC 3339, e.g. a replay's window) and as the
//! brokers report them (milliseconds since the epoch).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// An RFC 3339 timestamp of field `field` (with its offset, e.g. `2026-12-01T10:00:00Z`)
/// in milliseconds since the epoch.
pub fn parse_timestamp_ms(field: &str, s: &str) -> Result<i64, String> {
    s.parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            format!("{field} {s:?} is not an RFC 3339 timestamp (e.g. 2026-12-01T10:00:00Z)")
        })
}

/// Milliseconds since the epoch as a Kubernetes time (`None`: out of range).
pub fn time_from_ms(ms: i64) -> Option<Time> {
    Timestamp::from_millisecond(ms).ok().map(Time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_an_offset_reads_as_epoch_milliseconds() {
        assert_eq!(
            parse_timestamp_ms("from", "2026-12-01T10:00:00Z"),
            Ok(1_796_119_200_000)
        );
        assert_eq!(
            parse_timestamp_ms("from", "2026-12-01T11:00:00.250+01:00"),
            Ok(1_796_119_200_250)
        );
        for bad in ["2026-12-01", "2026-12-01T10:00:00", "yesterday", ""] {
            let err = parse_timestamp_ms("replays[r].from", bad).unwrap_err();
            assert!(err.starts_with("replays[r].from"), "{err}");
        }
        let t = time_from_ms(1_796_119_200_000).unwrap();
        assert_eq!(t.0.to_string(), "2026-12-01T10:00:00Z");
    }
}
