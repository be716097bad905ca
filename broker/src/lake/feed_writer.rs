//! One topic's table writer on this broker: reads the partitions this broker leads from
//! the log engine, like a consumer would (only acknowledged records, never on the
//! produce path), writes a window of rows into data files, and commits them every
//! commit interval by the rule of `sluice_lake::commit`. A catalog or file store outage
//! only makes it wait and retry: producers never notice, its lag grows and its status
//! says why.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::Catalog;
use sluice_lake::commit::{Commit, Outcome};
use sluice_lake::compaction::{compact, Policy};
use sluice_lake::lineage::{Coverage, Positions};
use sluice_lake::maintenance::{delete_files, expire_snapshots};
use sluice_lake::table::{evolve, ident, open_or_create_with, positions, FeedSchema};
use sluice_lake::writer::DataWriter;
use sluice_lake::{CatalogConfig, LakeError, TableSpec};
use sluice_schema::validate::Format;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::feed_schema::FeedSchemaSource;
use super::records;
use super::replay::{ReplayContext, Replays};
use super::status::{now_ms, LakeStatus, PartitionProgress};
use crate::metrics::{Metrics, TopicLabel, TopicOutcomeLabel};
use crate::storage::{LogEngine, PartitionLog, ReadLimit, StorageError};

/// Bytes read from one partition per step.
const READ_BYTES: usize = 4 * 1024 * 1024;
/// How long an idle writer waits before looking for new records.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Longest wait between retries after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct FeedWriter {
    pub topic: String,
    pub topic_id: Uuid,
    pub spec: TableSpec,
    /// The framing of the topic's values, when it has a schema (for `sluice_schema_id`).
    pub framing: Option<Format>,
    pub catalog: Arc<dyn Catalog>,
    pub catalog_config: CatalogConfig,
    pub engine: Arc<LogEngine>,
    pub status: LakeStatus,
    pub metrics: Arc<Metrics>,
    /// Names this writer in commits and file names: node and incarnation.
    pub writer_id: String,
    /// Tests only: where to abort the process (`--inject-lake-crash`, debug builds).
    pub crash_at: Option<CrashPoint>,
    /// Schema mode: the subject the columns follow.
    pub schema: Option<FeedSchemaSource>,
}

/// The points of a window where the crash-point tests kill the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrashPoint {
    /// Rows of the window are in (unclosed) data files.
    WindowRead,
    /// The window's files are closed and uploaded, the commit not begun.
    FilesWritten,
    /// The commit landed; the writer has not learnt it yet.
    Committed,
}

/// Why a window did not commit; the writer retries from the table's positions.
type Failure = String;

/// How a window's commit ended.
struct Landed {
    outcome: Outcome,
    /// No attempt failed with an unknown outcome (a lost answer could still land).
    cleanly: bool,
}

impl FeedWriter {
    /// Runs until `stop` fires; failures are retried with a growing pause.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let table = self.spec.qualified_name();
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.run_windows(&mut stop).await {
                Ok(()) => return,
                Err(e) => {
                    warn!(topic = %self.topic, %table, error = %e, "lake writer failed; retrying");
                    self.status.set_error(&self.topic, &table, e);
                    if sleep_or_stop(backoff, &mut stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Window after window until stopped (Ok) or a failure that needs a fresh start.
    async fn run_windows(&self, stop: &mut watch::Receiver<bool>) -> Result<(), Failure> {
        let table_name = self.spec.qualified_name();
        let latest = self.schema.as_ref().map(|s| s.latest()).transpose()?;
        let mut table = open_or_create_with(
            &self.catalog,
            &self.catalog_config,
            &self.spec,
            &self.topic,
            self.feed(latest.as_ref().map(|(_, text)| text.as_str()))
                .as_ref(),
        )
        .await
        .map_err(|e| e.to_string())?;
        // The schema id the table's columns were last brought to (schema mode).
        let mut columns_of: Option<i32> = None;
        let mut table_positions = positions(&table);
        let mut next_maintenance = Instant::now();
        let mut replays = Replays::default();
        loop {
            let parts: Vec<Arc<PartitionLog>> = self
                .engine
                .partitions()
                .into_iter()
                .filter(|p| p.topic_id == self.topic_id && !p.is_closed())
                .collect();
            if Instant::now() >= next_maintenance && parts.iter().any(|p| p.partition == 0) {
                self.maintain().await;
                next_maintenance = Instant::now() + self.spec.maintenance_interval;
            }
            let start: BTreeMap<i32, Option<i64>> = parts
                .iter()
                .map(|p| (p.partition, table_positions.get(&p.partition).copied()))
                .collect();
            let mut cursors: Positions = BTreeMap::new();
            for p in &parts {
                let from = self.resume_point(p, table_positions.get(&p.partition).copied());
                cursors.insert(p.partition, from);
            }
            // Schema mode: the columns follow the subject's latest version before any row
            // of it is written.
            if let Some(source) = &self.schema {
                let (id, text) = source.latest()?;
                if columns_of != Some(id) {
                    let feed = self.feed(Some(&text)).expect("schema mode");
                    table = evolve(&self.catalog, table, &feed)
                        .await
                        .map_err(|e| e.to_string())?;
                    columns_of = Some(id);
                }
            }
            // Replays after the columns are brought to the newest version: a replay
            // writes its rows through them.
            if !self.spec.replays.is_empty() {
                ReplayContext {
                    topic: &self.topic,
                    spec: &self.spec,
                    catalog: &self.catalog,
                    engine: &self.engine,
                    status: &self.status,
                    writer_id: &self.writer_id,
                    schema: self.schema.as_ref(),
                    framing: self.framing,
                }
                .run_replays(&parts, &table_positions, &mut replays)
                .await;
            }
            let window = Uuid::new_v4();
            let writer = DataWriter::new(
                &table,
                &self.topic,
                self.spec.target_file_bytes,
                format!("{}-{window}", self.writer_id.replace('/', "-")),
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut writer = match &self.schema {
                Some(source) => writer.with_values(source.value_format()),
                None => writer,
            };
            let deadline = Instant::now() + self.spec.commit_interval;
            let mut schema_moved = false;
            loop {
                let mut progressed = false;
                for p in &parts {
                    if p.is_closed() {
                        continue;
                    }
                    let cursor = cursors[&p.partition];
                    let (rows, next) = self.read(p, cursor).await?;
                    // A newer schema version: these rows may carry its fields, so they
                    // wait for the next window, which evolves the columns first. (The
                    // registry knows a version before any record validated by it lands.)
                    if self
                        .schema
                        .as_ref()
                        .is_some_and(|s| s.latest_id() != columns_of)
                    {
                        schema_moved = true;
                        break;
                    }
                    if let Some(next) = next {
                        progressed = true;
                        cursors.insert(p.partition, next);
                    }
                    writer.write(&rows).await.map_err(|e| e.to_string())?;
                    if !rows.is_empty() {
                        self.crash_if(CrashPoint::WindowRead);
                    }
                }
                self.report_progress(&table_name, &parts, &table_positions);
                let now = Instant::now();
                // A partition that moved (or was taken over again at a new epoch) ends
                // the window early: what was read commits, and the next window reads
                // the partitions as they are led now.
                if now >= deadline || schema_moved || parts.iter().any(|p| p.is_closed()) {
                    break;
                }
                if !progressed && sleep_or_stop(IDLE_POLL.min(deadline - now), stop).await {
                    // Stopping (shutdown or the partitions moved): the window's files are
                    // never committed; whoever writes next starts from the table.
                    return Ok(());
                }
                if *stop.borrow() {
                    return Ok(());
                }
            }
            if writer.rows() == 0 {
                continue;
            }
            let rows = writer.rows();
            let undecoded = writer.undecoded();
            let files = writer.finish().await.map_err(|e| e.to_string())?;
            self.crash_if(CrashPoint::FilesWritten);
            let coverage = Coverage {
                start,
                end: cursors,
            };
            let Some(landed) = self
                .commit(&coverage, files.clone(), &window.to_string(), stop)
                .await?
            else {
                return Ok(());
            };
            match landed.outcome {
                Outcome::Committed {
                    snapshot_id,
                    positions: p,
                } => {
                    self.crash_if(CrashPoint::Committed);
                    self.metrics
                        .lake_rows
                        .get_or_create(&self.label())
                        .inc_by(rows);
                    self.metrics
                        .lake_last_commit_seconds
                        .get_or_create(&self.label())
                        .set(now_ms() / 1000);
                    self.status.update(&self.topic, &table_name, |s| {
                        s.rows_committed += rows;
                        s.rows_undecoded += undecoded;
                        s.commits += 1;
                        s.last_commit_ms = Some(now_ms());
                        s.last_snapshot_id = Some(snapshot_id);
                        s.error = None;
                        s.error_since_ms = None;
                    });
                    table_positions = p;
                }
                Outcome::Superseded { positions: p } => {
                    info!(topic = %self.topic, table = %table_name, "another writer committed these offsets first; resuming from the table");
                    if landed.cleanly {
                        // No attempt had an unknown outcome, so the files are in no
                        // snapshot, now or later (`commit.rs`).
                        let paths: Vec<String> =
                            files.iter().map(|f| f.file_path().to_string()).collect();
                        delete_files(table.file_io(), table.metadata().location(), &paths).await;
                    }
                    self.status
                        .update(&self.topic, &table_name, |s| s.superseded += 1);
                    table_positions = p;
                }
            }
            table = self
                .catalog
                .load_table(&ident(&self.spec))
                .await
                .map_err(|e| e.to_string())?;
        }
    }

    /// Schema mode: the feed's schema of `text` (None in raw mode).
    fn feed<'a>(&self, text: Option<&'a str>) -> Option<FeedSchema<'a>> {
        let source = self.schema.as_ref()?;
        Some(FeedSchema {
            format: source.format,
            text: text?,
        })
    }

    /// Table upkeep, by one broker per table (the leader of partition 0): small files
    /// compacted, then old snapshots expired and the files only they reached deleted.
    /// A failure only waits for the next round.
    async fn maintain(&self) {
        let table = ident(&self.spec);
        let policy = Policy::for_target(self.spec.target_file_bytes);
        let prefix = format!("{}-{}", self.writer_id.replace('/', "-"), Uuid::new_v4());
        match compact(&self.catalog, &table, policy, &prefix).await {
            Ok(c) if c.partitions > 0 || c.stale > 0 || c.failed > 0 => {
                info!(topic = %self.topic, partitions = c.partitions, files_removed = c.files_removed, files_added = c.files_added, rows = c.rows, bytes_removed = c.bytes_removed, bytes_added = c.bytes_added, stale = c.stale, failed = c.failed, "compacted small files");
                self.status
                    .update(&self.topic, &self.spec.qualified_name(), |s| {
                        s.files_compacted += c.files_removed as u64;
                    });
            }
            Ok(_) => {}
            Err(e) => warn!(topic = %self.topic, error = %e, "compaction failed; next round later"),
        }
        match expire_snapshots(&self.catalog, &table).await {
            Ok(e) if e.before != e.after => {
                info!(topic = %self.topic, snapshots = e.before, kept = e.after, files_deleted = e.files_deleted, "expired old snapshots")
            }
            Ok(_) => {}
            Err(e) => {
                warn!(topic = %self.topic, error = %e, "snapshot expiry failed; next round later")
            }
        }
    }

    /// Where reading starts: the table's position, or the log start when the table has
    /// none for this partition or retention already deleted records it never got.
    fn resume_point(&self, p: &PartitionLog, table_position: Option<i64>) -> i64 {
        let start = p.offsets().log_start_offset;
        match table_position {
            Some(pos) if pos >= start => pos,
            Some(pos) => {
                let lost = (start - pos) as u64;
                warn!(partition = %p.name(), table_position = pos, log_start = start, "retention deleted {lost} records before they reached the table");
                self.status
                    .update(&self.topic, &self.spec.qualified_name(), |s| {
                        s.records_lost_to_retention += lost
                    });
                start
            }
            None => start,
        }
    }

    /// The rows at `offset` and the offset after them (None: nothing new).
    async fn read(
        &self,
        p: &PartitionLog,
        offset: i64,
    ) -> Result<(Vec<sluice_lake::Row>, Option<i64>), Failure> {
        let data = match self
            .engine
            .read(p, offset, ReadLimit::at_least_one(READ_BYTES))
            .await
        {
            Ok(d) => d,
            // Retention moved the log start past us mid-window: the commit's coverage
            // still starts where we began, so the window is redone from the table.
            Err(e @ StorageError::OffsetOutOfRange { .. }) => return Err(e.to_string()),
            Err(e) if p.is_closed() => {
                tracing::debug!(partition = %p.name(), error = %e, "partition moved away mid-read");
                return Ok((Vec::new(), None));
            }
            Err(e) => return Err(e.to_string()),
        };
        if data.is_empty() {
            return Ok((Vec::new(), None));
        }
        records::rows(&data, p.partition, self.framing)
    }

    /// Commits until it lands or is superseded; None when stopped first. A table that
    /// is gone fails the window: the writer starts over, creating it again.
    async fn commit(
        &self,
        coverage: &Coverage,
        files: Vec<iceberg::spec::DataFile>,
        commit_id: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<Landed>, Failure> {
        let table_ident = ident(&self.spec);
        let mut backoff = Duration::from_millis(500);
        let mut cleanly = true;
        loop {
            let began = Instant::now();
            let result = Commit {
                ident: &table_ident,
                topic: &self.topic,
                coverage,
                files: files.clone(),
                commit_id,
                writer: &self.writer_id,
                generation: self.spec.generation,
            }
            .run(&self.catalog)
            .await;
            self.metrics
                .lake_commit_latency
                .observe(began.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(Outcome::Committed { .. }) => "committed",
                Ok(Outcome::Superseded { .. }) => "superseded",
                Err(_) => "failed",
            };
            self.metrics
                .lake_commits
                .get_or_create(&TopicOutcomeLabel {
                    topic: self.topic.clone(),
                    outcome,
                })
                .inc();
            match result {
                Ok(outcome) => return Ok(Some(Landed { outcome, cleanly })),
                Err(LakeError::Iceberg(e)) if e.kind() == iceberg::ErrorKind::TableNotFound => {
                    return Err(format!(
                        "table dropped while writing, creating it again: {e}"
                    ))
                }
                Err(e) => {
                    cleanly = false;
                    warn!(topic = %self.topic, table = %table_ident, error = %e, "lake commit failed; retrying the same files");
                    self.status.set_error(
                        &self.topic,
                        &self.spec.qualified_name(),
                        format!("commit failing: {e}"),
                    );
                    if sleep_or_stop(backoff, stop).await {
                        return Ok(None);
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn report_progress(&self, table: &str, parts: &[Arc<PartitionLog>], committed: &Positions) {
        let mut lag_total = 0;
        let progress: BTreeMap<i32, PartitionProgress> = parts
            .iter()
            .filter(|p| !p.is_closed())
            .map(|p| {
                let o = p.offsets();
                let position = committed
                    .get(&p.partition)
                    .copied()
                    .unwrap_or(o.log_start_offset)
                    .max(o.log_start_offset);
                let lag = (o.high_watermark - position).max(0);
                lag_total += lag;
                (
                    p.partition,
                    PartitionProgress {
                        table_position: position,
                        high_watermark: o.high_watermark,
                        lag,
                    },
                )
            })
            .collect();
        self.metrics
            .lake_lag_records
            .get_or_create(&self.label())
            .set(lag_total);
        self.status
            .update(&self.topic, table, |s| s.partitions = progress);
    }

    fn crash_if(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            tracing::error!(topic = %self.topic, ?point, "injected crash");
            std::process::abort();
        }
    }

    fn label(&self) -> TopicLabel {
        TopicLabel {
            topic: self.topic.clone(),
        }
    }
}

/// Sleeps; true when `stop` fired (or its sender is gone) first.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}
