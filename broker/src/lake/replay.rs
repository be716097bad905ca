//! A feed's approved replays (`docs/replay.md`), run by its table writer between windows
//! for the partitions this broker leads. For each replay and partition: the window
//! `[from, to)` is resolved to offsets by timestamp (Kafka's ListOffsets by time), the
//! replay waits until the table holds the whole range, reads it from the log within the
//! replay's byte budget (live ingestion keeps its latency), writes it as rows through the
//! table's current columns (the parser fix), and replaces the range's rows in one
//! `overwrite` snapshot (`sluice_lake::replay`). The same commit sets the table property
//! `sluice.replay.<id>.<partition>` = `<first>-<last>`, which is what makes the replay
//! run once per partition, across restarts, failovers and snapshot expiry.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::Catalog;
use sluice_lake::copy_rows::Ranges;
use sluice_lake::lineage::{parse_range, Positions};
use sluice_lake::replay::Overwrite;
use sluice_lake::table::ident;
use sluice_lake::writer::DataWriter;
use sluice_lake::TableSpec;
use sluice_schema::replay::{summary, ReplayPhase, ReplaySpec, ReplayStatus};
use sluice_schema::validate::Format;
use tracing::{info, warn};
use uuid::Uuid;

use super::feed_schema::FeedSchemaSource;
use super::records;
use super::status::now_ms;
use super::status::LakeStatus;
use crate::storage::{LogEngine, PartitionLog, ReadLimit};

/// Bytes read from one partition per step of a replay.
const READ_BYTES: usize = 1024 * 1024;
/// How long a failed replay waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The table property recording that a replay replaced a partition's range.
pub fn done_property(id: &str, partition: i32) -> String {
    format!("sluice.replay.{id}.{partition}")
}

/// What the writer remembers of its replays between windows.
#[derive(Default)]
pub struct Replays {
    /// Replay ids done for every partition led here, and when a failed one may retry.
    done: std::collections::BTreeSet<String>,
    retry_at: BTreeMap<String, Instant>,
}

/// What a replay needs of its feed's table writer.
pub struct ReplayContext<'a> {
    pub topic: &'a str,
    pub spec: &'a TableSpec,
    pub catalog: &'a Arc<dyn Catalog>,
    pub engine: &'a LogEngine,
    pub status: &'a LakeStatus,
    pub writer_id: &'a str,
    /// Schema mode: the columns rows are written through.
    pub schema: Option<&'a FeedSchemaSource>,
    pub framing: Option<Format>,
}

/// One partition's share of a replay, resolved.
struct Share {
    part: Arc<PartitionLog>,
    first: i64,
    /// The offset after the window.
    end: i64,
}

impl ReplayContext<'_> {
    /// Runs the replays not done yet for the partitions led here. A replay waiting for
    /// the table, or failing, does not hold up the others or the live windows.
    pub async fn run_replays(
        &self,
        parts: &[Arc<PartitionLog>],
        positions: &Positions,
        state: &mut Replays,
    ) {
        for spec in &self.spec.replays {
            if state.done.contains(&spec.id)
                || state
                    .retry_at
                    .get(&spec.id)
                    .is_some_and(|at| Instant::now() < *at)
            {
                continue;
            }
            match self.replay(spec, parts, positions).await {
                Ok(true) => {
                    state.done.insert(spec.id.clone());
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(topic = %self.topic, replay = %spec.id, error = %e, "replay failed; trying again later");
                    self.update_replay(&spec.id, |r| {
                        r.phase = ReplayPhase::Failed;
                        r.error = Some(e.clone());
                        r.finished_ms = Some(now_ms());
                    });
                    state
                        .retry_at
                        .insert(spec.id.clone(), Instant::now() + RETRY_AFTER);
                }
            }
        }
    }

    /// One replay for the partitions led here: true once done, false while the table
    /// does not hold the window yet.
    async fn replay(
        &self,
        spec: &ReplaySpec,
        parts: &[Arc<PartitionLog>],
        positions: &Positions,
    ) -> Result<bool, String> {
        let table_ident = ident(self.spec);
        let table = self
            .catalog
            .load_table(&table_ident)
            .await
            .map_err(|e| e.to_string())?;
        let properties = table.metadata().properties();
        let mut shares = Vec::new();
        let mut ranges = Ranges::new();
        for part in parts.iter().filter(|p| !p.is_closed()) {
            if let Some(done) = properties.get(&done_property(&spec.id, part.partition)) {
                if let Some(range) = parse_range(done) {
                    self.update_replay(&spec.id, |r| {
                        r.ranges.insert(part.partition, range);
                    });
                }
                continue;
            }
            let Some(share) = self.resolve(spec, part).await? else {
                continue;
            };
            // The table must hold the whole range first: a replay replaces rows, it does
            // not write ahead of the live writer.
            if positions.get(&part.partition).copied().unwrap_or(0) < share.end {
                self.update_replay(&spec.id, |r| r.phase = ReplayPhase::Pending);
                return Ok(false);
            }
            ranges.insert(part.partition, (share.first, share.end - 1));
            shares.push(share);
        }
        if shares.is_empty() {
            self.finish_replay(&spec.id, None);
            return Ok(true);
        }
        info!(topic = %self.topic, replay = %spec.id, ?ranges, approved_by = %spec.approved_by, "replaying a window into the table");
        self.update_replay(&spec.id, |r| {
            r.phase = ReplayPhase::Running;
            r.started_ms.get_or_insert(now_ms());
            r.ranges.extend(ranges.iter().map(|(p, r)| (*p, *r)));
            r.error = None;
        });

        let run = Uuid::new_v4();
        let prefix = format!(
            "{}-replay-{}-{run}",
            self.writer_id.replace('/', "-"),
            spec.id
        );
        let writer = DataWriter::new(
            &table,
            self.topic,
            self.spec.target_file_bytes,
            prefix.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut writer = match self.schema {
            Some(source) => writer.with_values(source.value_format()),
            None => writer,
        };
        let mut budget = Budget::new(spec.bytes_per_second);
        let mut read = 0u64;
        for share in &shares {
            let mut offset = share.first;
            while offset < share.end {
                let data = self
                    .engine
                    .read(&share.part, offset, ReadLimit::at_least_one(READ_BYTES))
                    .await
                    .map_err(|e| e.to_string())?;
                if data.is_empty() {
                    return Err(format!(
                        "partition {} ends at {offset}, before the window's end {}",
                        share.part.partition, share.end
                    ));
                }
                budget.spend(data.len() as u64).await;
                let (mut rows, next) = records::rows(&data, share.part.partition, self.framing)?;
                rows.retain(|r| r.offset >= share.first && r.offset < share.end);
                read += rows.len() as u64;
                writer.write(&rows).await.map_err(|e| e.to_string())?;
                offset = next.unwrap_or(share.end).max(offset + 1);
                self.update_replay(&spec.id, |r| r.records_read = read);
            }
        }
        let added = writer.finish().await.map_err(|e| e.to_string())?;
        let mut props = HashMap::from([
            (summary::REPLAY_ID.to_string(), spec.id.clone()),
            (summary::REQUESTED_BY.to_string(), spec.requested_by.clone()),
            (summary::APPROVED_BY.to_string(), spec.approved_by.clone()),
            (summary::REASON.to_string(), spec.reason.clone()),
        ]);
        props.insert(
            sluice_lake::lineage::WRITER.to_string(),
            self.writer_id.to_string(),
        );
        let table_properties = ranges
            .iter()
            .map(|(p, (a, b))| (done_property(&spec.id, *p), format!("{a}-{b}")))
            .collect();
        let done = Overwrite {
            ident: &table_ident,
            ranges: &ranges,
            added,
            id: &prefix,
            properties: props,
            table_properties,
            target_file_bytes: self.spec.target_file_bytes,
            file_prefix: &prefix,
        }
        .run(self.catalog)
        .await
        .map_err(|e| e.to_string())?;
        info!(topic = %self.topic, replay = %spec.id, snapshot = done.snapshot_id, rows_removed = done.rows_removed, rows_added = done.rows_added, "replay committed");
        self.update_replay(&spec.id, |r| {
            r.rows_removed += done.rows_removed;
            r.rows_added += done.rows_added;
        });
        self.finish_replay(&spec.id, Some(done.snapshot_id));
        Ok(true)
    }

    /// The window's offsets in `part`: from the first record at or after `from` to the
    /// first at or after `to` (or the end of the log). None: no record in the window.
    async fn resolve(
        &self,
        spec: &ReplaySpec,
        part: &Arc<PartitionLog>,
    ) -> Result<Option<Share>, String> {
        let at = |ts| self.engine.offset_for_timestamp(part, ts);
        let Some((first, _)) = at(spec.from_ms).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let end = match at(spec.to_ms).await.map_err(|e| e.to_string())? {
            Some((end, _)) => end,
            None => part.offsets().high_watermark,
        };
        Ok((end > first).then(|| Share {
            part: part.clone(),
            first,
            end,
        }))
    }

    fn update_replay(&self, id: &str, f: impl FnOnce(&mut ReplayStatus)) {
        self.status
            .update(self.topic, &self.spec.qualified_name(), |s| {
                let i = match s.replays.iter().position(|r| r.id == id) {
                    Some(i) => i,
                    None => {
                        s.replays.push(ReplayStatus {
                            id: id.to_string(),
                            ..Default::default()
                        });
                        s.replays.len() - 1
                    }
                };
                f(&mut s.replays[i]);
            });
    }

    fn finish_replay(&self, id: &str, snapshot: Option<i64>) {
        self.update_replay(id, |r| {
            r.phase = ReplayPhase::Succeeded;
            r.error = None;
            r.finished_ms = Some(now_ms());
            if let Some(s) = snapshot {
                if !r.snapshot_ids.contains(&s) {
                    r.snapshot_ids.push(s);
                }
            }
        });
    }
}

/// A byte rate: `spend` sleeps whenever the bytes so far ran ahead of the rate.
struct Budget {
    bytes_per_second: u64,
    began: tokio::time::Instant,
    spent: u64,
}

impl Budget {
    fn new(bytes_per_second: u64) -> Self {
        Budget {
            bytes_per_second: bytes_per_second.max(1),
            began: tokio::time::Instant::now(),
            spent: 0,
        }
    }

    /// How long after the start the bytes spent so far are due at the rate.
    fn due(&self) -> Duration {
        Duration::from_secs_f64(self.spent as f64 / self.bytes_per_second as f64)
    }

    async fn spend(&mut self, bytes: u64) {
        self.spent += bytes;
        tokio::time::sleep_until(self.began + self.due()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_due_at_the_rate() {
        let mut budget = Budget::new(1000);
        budget.spent = 2500;
        assert_eq!(budget.due(), Duration::from_millis(2500));
        assert_eq!(
            Budget::new(0).bytes_per_second,
            1,
            "a zero rate would never finish"
        );
    }

    #[test]
    fn replays_record_themselves_per_partition() {
        assert_eq!(done_property("fix-src", 3), "sluice.replay.fix-src.3");
    }
}
