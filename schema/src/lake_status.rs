//! What a broker's lake writers report at `GET /v1/lake` (`docs/lake.md`): one entry per
//! table-enabled topic whose partitions the broker leads. The broker serves it; the
//! operator reads it into a Feed's `status.table`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One partition led by the broker: where the table stands and how far behind it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PartitionProgress {
    /// The next offset the table is missing (its position; the log start when none).
    pub table_position: i64,
    pub high_watermark: i64,
    pub lag: i64,
}

/// One topic's table writer on one broker. A reader takes unknown fields as they come
/// and missing ones as zero, so brokers and operators of other versions understand
/// each other.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TableStatus {
    pub topic: String,
    /// `namespace.name`.
    pub table: String,
    pub partitions: BTreeMap<i32, PartitionProgress>,
    pub last_commit_ms: Option<i64>,
    pub last_snapshot_id: Option<i64>,
    /// Rows and commits this broker made since it started.
    pub rows_committed: u64,
    /// Schema mode: rows whose value did not decode into the columns (possible only
    /// when the topic's validation mode is `observe`); their columns are null.
    pub rows_undecoded: u64,
    pub commits: u64,
    /// Windows dropped because another writer had committed their offsets already.
    pub superseded: u64,
    /// Small data files this broker's upkeep merged into larger ones.
    pub files_compacted: u64,
    /// Records the table can never have: deleted by retention before they were written.
    pub records_lost_to_retention: u64,
    /// The feed's replays, for the partitions this broker leads.
    pub replays: Vec<crate::replay::ReplayStatus>,
    /// The last failure (catalog unreachable, commit failing, incompatible table) and
    /// since when it lasts; cleared by the next successful commit.
    pub error: Option<String>,
    pub error_since_ms: Option<i64>,
}

impl TableStatus {
    /// Records of the broker's partitions not in the table yet.
    pub fn lag(&self) -> i64 {
        self.partitions.values().map(|p| p.lag).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_served_reads_back_and_other_versions_are_understood() {
        let status = TableStatus {
            topic: "dns".into(),
            table: "sluice.dns".into(),
            partitions: BTreeMap::from([(
                3,
                PartitionProgress {
                    table_position: 90,
                    high_watermark: 100,
                    lag: 10,
                },
            )]),
            rows_committed: 90,
            error: Some("catalog unreachable".into()),
            ..TableStatus::default()
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(
            json.contains(r#""partitions":{"3":{"table_position":90"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<TableStatus>(&json).unwrap(), status);
        let other: TableStatus =
            serde_json::from_str(r#"{"topic": "dns", "rows_committed": 5, "added_later": true}"#)
                .unwrap();
        assert_eq!((other.rows_committed, other.lag()), (5, 0));
    }
}
