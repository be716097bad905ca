//! What each table writer on this broker reports: served as JSON at `GET /v1/lake`
//! (the operator's Feed status and `sluice evidence` read it) and kept small: one entry
//! per topic this broker writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

/// Longest error message kept in a status.
const MAX_ERROR_LEN: usize = 600;

/// One partition led here: where the table stands and how far behind it is.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The next offset the table is missing (its position; the log start when none).
    pub table_position: i64,
    pub high_watermark: i64,
    pub lag: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
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
    /// Records the table can never have: deleted by retention before they were written.
    pub records_lost_to_retention: u64,
    /// The last failure (catalog unreachable, commit failing, incompatible table) and
    /// since when it lasts; cleared by the next successful commit.
    pub error: Option<String>,
    pub error_since_ms: Option<i64>,
}

impl TableStatus {
    pub fn lag(&self) -> i64 {
        self.partitions.values().map(|p| p.lag).sum()
    }
}

/// Every table writer's status, by topic.
#[derive(Clone, Default)]
pub struct LakeStatus(Arc<Mutex<BTreeMap<String, TableStatus>>>);

impl LakeStatus {
    pub fn snapshot(&self) -> Vec<TableStatus> {
        self.0.lock().values().cloned().collect()
    }

    /// Changes `topic`'s entry (created with the table name when missing).
    pub fn update(&self, topic: &str, table: &str, f: impl FnOnce(&mut TableStatus)) {
        let mut all = self.0.lock();
        let entry = all.entry(topic.to_string()).or_insert_with(|| TableStatus {
            topic: topic.to_string(),
            table: table.to_string(),
            ..Default::default()
        });
        entry.table = table.to_string();
        f(entry);
    }

    pub fn set_error(&self, topic: &str, table: &str, mut error: String) {
        // A catalog's error page can be kilobytes of HTML: the start says what failed.
        if error.len() > MAX_ERROR_LEN {
            let cut = (0..=MAX_ERROR_LEN)
                .rev()
                .find(|i| error.is_char_boundary(*i))
                .unwrap_or(0);
            error.truncate(cut);
            error.push('…');
        }
        self.update(topic, table, |s| {
            if s.error.is_none() {
                s.error_since_ms = Some(now_ms());
            }
            s.error = Some(error);
        });
    }

    pub fn remove(&self, topic: &str) {
        self.0.lock().remove(topic);
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
