//! What each table writer on this broker reports: served as JSON at `GET /v1/lake`
//! (the operator's Feed status and `sluice evidence` read it) and kept small: one entry
//! per topic this broker writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
// The served type is shared with the operator, which reads it.
pub use sluice_schema::lake_status::{PartitionProgress, TableStatus};

/// Longest error message kept in a status.
const MAX_ERROR_LEN: usize = 600;

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
