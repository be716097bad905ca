//! Approved replays of a feed's time window (`docs/replay.md`): the operator resolves a
//! Feed's `spec.replays[]`, refuses the unapproved ones, and hands the approved ones to
//! the brokers as the topic config `sluice.table.replays` (a JSON array of
//! [`ReplaySpec`]). The brokers replace the window's rows in the feed's table and report
//! each replay's progress ([`ReplayStatus`]) at `GET /v1/lake`, which the operator reads
//! into the Feed's status. Shared here so both sides parse and refuse the same values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest replay id: it names snapshot summary keys and Kubernetes Events.
pub const MAX_ID_LEN: usize = 63;

/// One approved replay, as the brokers receive it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySpec {
    /// Unique per feed: the table records it in the replay's snapshot summary, which is
    /// what makes applying the same replay twice do nothing.
    pub id: String,
    /// The window: records whose timestamp is in `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub reason: String,
    pub requested_by: String,
    pub approved_by: String,
    /// Also re-check the window's dead-letter records against the current schema; the
    /// valid ones become rows (with the dead-letter record's own lineage).
    #[serde(default)]
    pub dead_letters: bool,
    /// Read budget of the replay on each broker, so live ingestion keeps its latency.
    #[serde(default = "default_bytes_per_second")]
    pub bytes_per_second: u64,
}

pub const DEFAULT_REPLAY_BYTES_PER_SECOND: u64 = 32 * 1024 * 1024;

fn default_bytes_per_second() -> u64 {
    DEFAULT_REPLAY_BYTES_PER_SECOND
}

/// Parses and checks the value of `sluice.table.replays` (empty: none).
pub fn parse_replays(value: &str) -> Result<Vec<ReplaySpec>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let replays: Vec<ReplaySpec> = serde_json::from_str(value)
        .map_err(|e| format!("sluice.table.replays is not a JSON array of replays: {e}"))?;
    let mut seen = std::collections::BTreeSet::new();
    for r in &replays {
        validate(r)?;
        if !seen.insert(r.id.as_str()) {
            return Err(format!(
                "sluice.table.replays: replay id {:?} appears twice",
                r.id
            ));
        }
    }
    Ok(replays)
}

/// The value of `sluice.table.replays` for `replays`.
pub fn replays_config(replays: &[ReplaySpec]) -> String {
    if replays.is_empty() {
        return String::new();
    }
    serde_json::to_string(replays).expect("replays serialize")
}

/// One replay's own checks (the operator adds approval on top).
pub fn validate(r: &ReplaySpec) -> Result<(), String> {
    if r.id.is_empty()
        || r.id.len() > MAX_ID_LEN
        || !r
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "replay id {:?} must be 1 to {MAX_ID_LEN} lower-case letters, digits or '-'",
            r.id
        ));
    }
    if r.from_ms >= r.to_ms {
        return Err(format!(
            "replay {}: the window's start ({}) is not before its end ({})",
            r.id, r.from_ms, r.to_ms
        ));
    }
    if r.approved_by.trim().is_empty() {
        return Err(format!("replay {} has no approver", r.id));
    }
    if r.bytes_per_second == 0 {
        return Err(format!("replay {}: bytesPerSecond must be positive", r.id));
    }
    Ok(())
}

/// Where a replay is, on one broker (for the partitions it leads) or, summed by the
/// operator, for the whole feed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum ReplayPhase {
    /// Waiting for the table to hold the whole window before replacing it.
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// One replay's progress on one broker: its partitions' ranges and what it changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ReplayStatus {
    pub id: String,
    pub phase: ReplayPhase,
    /// Per partition, the window's offsets `[first, last]` (absent: no record there).
    pub ranges: BTreeMap<i32, (i64, i64)>,
    /// Records of the window read from the log so far.
    pub records_read: u64,
    pub rows_removed: u64,
    pub rows_added: u64,
    /// Dead-letter records that passed the current schema and became rows.
    pub dead_letters_added: u64,
    /// The snapshots that replaced the window's rows (one per broker that led some of
    /// its partitions).
    pub snapshot_ids: Vec<i64>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub error: Option<String>,
}

/// Snapshot summary keys a replay's snapshot carries (`docs/replay.md`).
pub mod summary {
    /// The replay id.
    pub const REPLAY_ID: &str = "sluice.replay.id";
    /// `sluice.replaced.<partition>` = `<first>-<last>`: the offsets whose rows the
    /// snapshot replaced.
    pub const REPLACED_PREFIX: &str = "sluice.replaced.";
    pub const REQUESTED_BY: &str = "sluice.replay.requested-by";
    pub const APPROVED_BY: &str = "sluice.replay.approved-by";
    pub const REASON: &str = "sluice.replay.reason";
    /// `<dead-letter topic>:<partition>:<first>-<last>` of the dead-letter records
    /// re-checked, when the replay had `dead_letters`.
    pub const DEAD_LETTERS: &str = "sluice.replay.dead-letters";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ReplaySpec {
        ReplaySpec {
            id: id.into(),
            from_ms: 1_000,
            to_ms: 2_000,
            reason: "parser bug 42".into(),
            requested_by: "alice".into(),
            approved_by: "team-dns".into(),
            dead_letters: true,
            bytes_per_second: DEFAULT_REPLAY_BYTES_PER_SECOND,
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_replays() {
        let value = replays_config(&[spec("r-1"), spec("r-2")]);
        assert_eq!(
            parse_replays(&value).unwrap(),
            vec![spec("r-1"), spec("r-2")]
        );
        assert_eq!(parse_replays("").unwrap(), vec![]);
        assert!(parse_replays(&replays_config(&[spec("r"), spec("r")]))
            .unwrap_err()
            .contains("twice"));
        assert!(parse_replays("{").is_err());
        let mut bad = spec("Bad_Id");
        assert!(validate(&bad).unwrap_err().contains("lower-case"));
        bad = spec("r");
        bad.to_ms = bad.from_ms;
        assert!(validate(&bad).unwrap_err().contains("not before"));
        bad = spec("r");
        bad.approved_by = " ".into();
        assert!(validate(&bad).unwrap_err().contains("approver"));
        // The budget defaults when the operator leaves it out.
        let parsed = parse_replays(
            r#"[{"id":"r","fromMs":1,"toMs":2,"reason":"x","requestedBy":"a","approvedBy":"b"}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0].bytes_per_second, DEFAULT_REPLAY_BYTES_PER_SECOND);
        assert!(!parsed[0].dead_letters);
    }
}
