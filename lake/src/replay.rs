//! Replacing a window's rows (a replay, `docs/replay.md`): every row of the given offset
//! ranges leaves the table and the replayed rows enter it, in one `overwrite` snapshot.
//! The live files that may hold a row of the ranges (by their `sluice_partition` and
//! `sluice_offset` bounds) are rewritten without those rows; the files holding the
//! replayed rows are the caller's. The snapshot's summary names the replay and the
//! ranges it replaced, beside the positions it carries over (`rewrite.rs`), so the
//! table itself says which commit holds which offsets after a replay.
//!
//! Applying the same replay again does nothing: its commit id is found in the table. A
//! replacement that loses a race (another replay or a compaction rewrote one of the
//! files first) is rebuilt on the table as it is now.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::{DataFile, Operation};
use iceberg::{Catalog, TableIdent};
use sluice_schema::replay::summary::REPLACED_PREFIX;

use crate::commit::snapshot_of_commit;
use crate::compaction::live_files;
use crate::copy_rows::{copy_rows, may_hold, scan_tasks, Ranges};
use crate::error::{LakeError, Result};
use crate::maintenance::delete_files;
use crate::rewrite::{Replace, Replaced};

/// Rebuilds after losing a race before giving up for now.
const ATTEMPTS: usize = 5;

/// One replacement of a window's rows.
pub struct Overwrite<'a> {
    pub ident: &'a TableIdent,
    /// The offsets whose rows are replaced, per partition (inclusive).
    pub ranges: &'a Ranges,
    /// Files holding the replayed rows (the table's default partition spec).
    pub added: Vec<DataFile>,
    /// Unique per replay and writer, kept across retries: found in the table, the
    /// replacement already landed.
    pub id: &'a str,
    /// More summary properties (the replay's id, requester, approver, reason).
    pub properties: HashMap<String, String>,
    /// Table properties set by the same commit: a record of the replay that outlives
    /// the snapshot's expiry.
    pub table_properties: HashMap<String, String>,
    pub target_file_bytes: u64,
    /// Names the rewritten files; unique per attempt is added here.
    pub file_prefix: &'a str,
}

/// What a replacement changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwritten {
    pub snapshot_id: i64,
    /// Rows of the ranges that left the table.
    pub rows_removed: u64,
    /// Rows the caller's files added.
    pub rows_added: u64,
    /// Files rewritten because they held rows of the ranges.
    pub files_rewritten: usize,
}

impl Overwrite<'_> {
    pub async fn run(&self, catalog: &Arc<dyn Catalog>) -> Result<Overwritten> {
        let rows_added: u64 = self.added.iter().map(DataFile::record_count).sum();
        for attempt in 0..ATTEMPTS {
            let table = catalog.load_table(self.ident).await?;
            if let Some(s) = snapshot_of_commit(&table, self.id) {
                // Landed before (its answer lost): what it did, from its summary. Its
                // added rows are the rows kept from rewritten files plus ours.
                let summary = &s.summary().additional_properties;
                let count = |k: &str| {
                    summary
                        .get(k)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or_default()
                };
                let kept = count("added-records").saturating_sub(rows_added);
                return Ok(Overwritten {
                    snapshot_id: s.snapshot_id(),
                    rows_removed: count("deleted-records").saturating_sub(kept),
                    rows_added,
                    files_rewritten: count("deleted-data-files") as usize,
                });
            }
            let affected: Vec<DataFile> = live_files(&table)
                .await?
                .into_iter()
                .map(|(_, f)| f)
                .filter(|f| may_hold(f, self.ranges))
                .collect();
            let mut tasks = scan_tasks(&table).await?;
            let kept = copy_rows(
                &table,
                &affected,
                &mut tasks,
                self.target_file_bytes,
                &format!("{}-{attempt}", self.file_prefix),
                self.ranges,
            )
            .await?;
            let mut properties = self.properties.clone();
            for (p, (a, b)) in self.ranges {
                properties.insert(format!("{REPLACED_PREFIX}{p}"), format!("{a}-{b}"));
            }
            let mut added = kept.files.clone();
            added.extend(self.added.iter().cloned());
            let replace = Replace {
                ident: self.ident,
                removed: affected.iter().map(|f| f.file_path().to_string()).collect(),
                added,
                operation: Operation::Overwrite,
                id: self.id,
                properties,
                table_properties: self.table_properties.clone(),
            };
            match replace.run(catalog).await? {
                Replaced::Committed { snapshot_id } => {
                    return Ok(Overwritten {
                        snapshot_id,
                        rows_removed: kept.rows_read - kept.rows_written,
                        rows_added,
                        files_rewritten: affected.len(),
                    })
                }
                Replaced::Stale { missing } => {
                    tracing::debug!(table = %self.ident, attempt, ?missing, "a file to rewrite was replaced meanwhile; rebuilding");
                    let paths: Vec<String> = kept
                        .files
                        .iter()
                        .map(|f| f.file_path().to_string())
                        .collect();
                    delete_files(table.file_io(), table.metadata().location(), &paths).await;
                }
            }
        }
        Err(LakeError::Spec(format!(
            "{}: the window's files kept being rewritten by others; {ATTEMPTS} attempts",
            self.ident
        )))
    }
}
