//! The brokers' lake writers as they report themselves at `GET /v1/lake` (one
//! [`TableStatus`] per table-enabled topic whose partitions the broker leads), and the sum
//! over a cluster's brokers per topic that a Feed's `status.table` is made from, with each
//! broker's report of the feed's replays (`status.replays`). Pure.

use std::collections::BTreeMap;

use sluice_schema::lake_status::TableStatus;
use sluice_schema::replay::ReplayStatus;

/// A failure one broker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    pub pod: String,
    pub message: String,
    pub since_ms: Option<i64>,
}

/// One topic's table over every broker that reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableFigures {
    /// Brokers that reported the topic.
    pub brokers: usize,
    /// The name the brokers report (the first non-empty one).
    pub table: String,
    pub rows: u64,
    pub lag: i64,
    pub last_commit_ms: Option<i64>,
    /// The snapshot of the latest commit.
    pub last_snapshot_id: Option<i64>,
    pub errors: Vec<TableError>,
    /// The feed's replays by id, as each broker that reported one has it.
    pub replays: BTreeMap<String, Vec<BrokerReplay>>,
}

/// One broker's report of one replay (for the partitions it leads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerReplay {
    pub pod: String,
    pub status: ReplayStatus,
}

impl TableFigures {
    /// Adds one broker's entry.
    pub fn add(&mut self, pod: &str, entry: TableStatus) {
        self.brokers += 1;
        self.lag += entry.lag();
        if self.table.is_empty() {
            self.table = entry.table;
        }
        self.rows += entry.rows_committed;
        if entry.last_commit_ms > self.last_commit_ms {
            self.last_commit_ms = entry.last_commit_ms;
            self.last_snapshot_id = entry.last_snapshot_id;
        }
        if let Some(message) = entry.error {
            self.errors.push(TableError {
                pod: pod.to_string(),
                message,
                since_ms: entry.error_since_ms,
            });
        }
        for status in entry.replays {
            self.replays
                .entry(status.id.clone())
                .or_default()
                .push(BrokerReplay {
                    pod: pod.to_string(),
                    status,
                });
        }
    }

    /// When the oldest failure began.
    pub fn failing_since_ms(&self) -> Option<i64> {
        self.errors.iter().filter_map(|e| e.since_ms).min()
    }
}

/// Tables per topic.
pub type TopicTables = BTreeMap<String, TableFigures>;

/// Adds the `/v1/lake` answer of broker `pod` to `into`.
pub fn add_tables(pod: &str, body: &str, into: &mut TopicTables) -> Result<(), String> {
    let entries: Vec<TableStatus> =
        serde_json::from_str(body).map_err(|e| format!("not a list of table writers: {e}"))?;
    for entry in entries {
        into.entry(entry.topic.clone()).or_default().add(pod, entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_schema::replay::ReplayPhase;

    /// What two brokers answer (the broker's own serialization, one field it may add
    /// later included).
    const BROKER_0: &str = r#"[
        {"topic": "dns", "table": "sluice.dns", "partitions": {"0": {"table_position": 90, "high_watermark": 100, "lag": 10}},
         "last_commit_ms": 1700000000000, "last_snapshot_id": 11, "rows_committed": 90, "commits": 3,
         "superseded": 0, "records_lost_to_retention": 0, "error": null, "error_since_ms": null, "new_field": 1,
         "replays": [{"id": "fix-42", "phase": "Succeeded", "ranges": {"0": [10, 19]}, "records_read": 10,
                      "rows_removed": 10, "rows_added": 10, "snapshot_ids": [13], "started_ms": 1700000070000,
                      "finished_ms": 1700000071000, "error": null}]},
        {"topic": "edr", "table": "sec.edr", "partitions": {}, "last_commit_ms": null, "last_snapshot_id": null,
         "rows_committed": 0, "commits": 0, "superseded": 0, "records_lost_to_retention": 0,
         "error": "catalog unreachable: connection refused", "error_since_ms": 1700000005000}
    ]"#;
    const BROKER_1: &str = r#"[
        {"topic": "dns", "table": "sluice.dns", "partitions": {"1": {"lag": 5}, "2": {"lag": 0}},
         "last_commit_ms": 1700000060000, "last_snapshot_id": 12, "rows_committed": 40, "commits": 1,
         "error": null, "error_since_ms": null, "replays": [{"id": "fix-42", "phase": "Running"}]}
    ]"#;

    #[test]
    fn rows_and_lag_add_up_and_the_latest_commit_wins() {
        let mut all = TopicTables::new();
        add_tables("lake-broker-0", BROKER_0, &mut all).unwrap();
        add_tables("lake-broker-1", BROKER_1, &mut all).unwrap();
        let dns = &all["dns"];
        assert_eq!((dns.brokers, dns.table.as_str()), (2, "sluice.dns"));
        assert_eq!((dns.rows, dns.lag), (130, 15));
        assert_eq!(
            (dns.last_commit_ms, dns.last_snapshot_id),
            (Some(1_700_000_060_000), Some(12))
        );
        assert!(dns.errors.is_empty());
        let fix: Vec<_> = dns.replays["fix-42"]
            .iter()
            .map(|r| (r.pod.as_str(), r.status.phase, r.status.rows_added))
            .collect();
        assert_eq!(
            fix,
            [
                ("lake-broker-0", ReplayPhase::Succeeded, 10),
                ("lake-broker-1", ReplayPhase::Running, 0),
            ],
            "each broker's report, kept for the Feed to sum"
        );
        let edr = &all["edr"];
        assert_eq!(
            edr.errors,
            [TableError {
                pod: "lake-broker-0".into(),
                message: "catalog unreachable: connection refused".into(),
                since_ms: Some(1_700_000_005_000),
            }]
        );
        assert_eq!(edr.failing_since_ms(), Some(1_700_000_005_000));
        assert_eq!((edr.last_commit_ms, edr.last_snapshot_id), (None, None));
        assert!(edr.replays.is_empty());
    }

    #[test]
    fn an_answer_that_is_not_the_list_is_an_error() {
        let mut all = TopicTables::new();
        let err = add_tables("lake-broker-2", "not found", &mut all).unwrap_err();
        assert!(err.starts_with("not a list of table writers:"), "{err}");
        assert!(all.is_empty());
    }
}
