//! Compacting small files. A feed committed every minute adds a few small files per
//! partition per commit; engines pay per file opened, so the table's upkeep merges them.
//! Per table partition (e.g. an hour), the live files smaller than three quarters of the
//! target size are read in offset order and rewritten as files of about the target
//! size, then swapped in by one `Replace` snapshot (`rewrite.rs`): same rows, same
//! lineage columns, same positions. A partition is compacted once it has at least
//! `min_input_files` such files, as iceberg-java's `RewriteDataFiles` does by default.
//!
//! One run rewrites at most `max_input_bytes`, so a backlog is worked off over several
//! runs without a long read. A run that loses its race (the files were replaced meanwhile)
//! commits nothing and deletes its new files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use iceberg::scan::FileScanTask;
use iceberg::spec::{DataFile, ManifestContentType, Operation};
use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};

use crate::columns::{OFFSET_FIELD_ID, PARTITION_FIELD_ID};
use crate::copy_rows::{bound, copy_rows, scan_tasks, Ranges};
use crate::error::Result;
use crate::maintenance::delete_files;
use crate::rewrite::{Replace, Replaced};

/// Summary property naming what a compaction snapshot did.
pub const COMPACTED: &str = "sluice.compacted-files";

/// When and how much to compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub target_file_bytes: u64,
    pub min_input_files: usize,
    pub max_input_bytes: u64,
}

impl Policy {
    pub fn for_target(target_file_bytes: u64) -> Self {
        Policy {
            target_file_bytes,
            min_input_files: 5,
            max_input_bytes: (8 * target_file_bytes).max(1 << 30),
        }
    }

    fn is_small(&self, file: &DataFile) -> bool {
        file.file_size_in_bytes() < self.target_file_bytes / 4 * 3
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Table partitions rewritten.
    pub partitions: usize,
    pub files_removed: usize,
    pub files_added: usize,
    pub rows: u64,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    /// Partitions whose files another replacement took first.
    pub stale: usize,
    /// Partitions whose files could not be rewritten (logged; tried again next round).
    pub failed: usize,
}

/// Compacts the table's small files by `policy`. `file_prefix` must be unique per run.
pub async fn compact(
    catalog: &Arc<dyn Catalog>,
    ident: &TableIdent,
    policy: Policy,
    file_prefix: &str,
) -> Result<Compacted> {
    let table = catalog.load_table(ident).await?;
    let groups = plan(&table, &policy).await?;
    let mut done = Compacted::default();
    if groups.is_empty() {
        return Ok(done);
    }
    let mut tasks = scan_tasks(&table).await?;
    for (n, group) in groups.into_iter().enumerate() {
        let id = format!("{file_prefix}-c{n}");
        let (added, rows) = match rewrite(&table, &group, &mut tasks, &policy, &id).await {
            Ok(Some(written)) => written,
            Ok(None) => continue,
            Err(e) => {
                // One table partition's files failing to read (or write) does not stop
                // the others; it is retried next round.
                tracing::warn!(table = %ident, error = %e, "compacting a table partition failed");
                done.failed += 1;
                continue;
            }
        };
        let replace = Replace {
            ident,
            removed: group.iter().map(|f| f.file_path().to_string()).collect(),
            added: added.clone(),
            operation: Operation::Replace,
            id: &id,
            properties: [(COMPACTED.to_string(), group.len().to_string())].into(),
            table_properties: Default::default(),
        };
        match replace.run(catalog).await? {
            Replaced::Committed { .. } => {
                done.partitions += 1;
                done.files_removed += group.len();
                done.files_added += added.len();
                done.rows += rows;
                done.bytes_removed += group.iter().map(DataFile::file_size_in_bytes).sum::<u64>();
                done.bytes_added += added.iter().map(DataFile::file_size_in_bytes).sum::<u64>();
            }
            Replaced::Stale { .. } => {
                // Every attempt was refused cleanly (an unknown outcome is an error
                // above): the new files are in no snapshot, now or later.
                let paths: Vec<String> = added.iter().map(|f| f.file_path().to_string()).collect();
                delete_files(table.file_io(), table.metadata().location(), &paths).await;
                done.stale += 1;
            }
        }
    }
    Ok(done)
}

/// Reads `group` in order and writes its rows into new files: the files and the row
/// count, or None (nothing to commit) when the rows read are not the rows the manifests
/// record.
async fn rewrite(
    table: &Table,
    group: &[DataFile],
    tasks: &mut BTreeMap<String, FileScanTask>,
    policy: &Policy,
    prefix: &str,
) -> Result<Option<(Vec<DataFile>, u64)>> {
    let copied = copy_rows(
        table,
        group,
        tasks,
        policy.target_file_bytes,
        prefix,
        &Ranges::new(),
    )
    .await?;
    let input_rows: u64 = group.iter().map(DataFile::record_count).sum();
    if copied.rows_read != input_rows {
        tracing::warn!(
            rows = copied.rows_read,
            input_rows,
            "compaction read another row count than the manifests record; skipped"
        );
        let paths: Vec<String> = copied
            .files
            .iter()
            .map(|f| f.file_path().to_string())
            .collect();
        delete_files(table.file_io(), table.metadata().location(), &paths).await;
        return Ok(None);
    }
    Ok(Some((copied.files, copied.rows_read)))
}

/// The groups of files to rewrite, each within one table partition, in offset order.
async fn plan(table: &Table, policy: &Policy) -> Result<Vec<Vec<DataFile>>> {
    let mut by_partition: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    for (spec_id, file) in live_files(table).await? {
        if policy.is_small(&file) {
            let key = format!("{spec_id}/{:?}", file.partition());
            by_partition.entry(key).or_default().push(file);
        }
    }
    let mut budget = policy.max_input_bytes;
    let mut groups = Vec::new();
    for (_, mut files) in by_partition {
        if files.len() < policy.min_input_files {
            continue;
        }
        files.sort_by_key(first_offset);
        let mut group = Vec::new();
        for file in files {
            if file.file_size_in_bytes() > budget {
                break;
            }
            budget -= file.file_size_in_bytes();
            group.push(file);
        }
        if group.len() >= policy.min_input_files {
            groups.push(group);
        }
        if budget < policy.target_file_bytes / 4 {
            break;
        }
    }
    Ok(groups)
}

/// The data files of the table's current snapshot, with their partition spec ids.
pub async fn live_files(table: &Table) -> Result<Vec<(i32, DataFile)>> {
    let Some(current) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let list = table.manifest_list_reader(current).load().await?;
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for manifest in list.entries() {
        if manifest.content != ManifestContentType::Data {
            continue;
        }
        let entries = manifest.load_manifest(table.file_io()).await?;
        for e in entries.entries().iter().filter(|e| e.is_alive()) {
            if seen.insert(e.file_path().to_string()) {
                files.push((manifest.partition_spec_id, e.data_file().clone()));
            }
        }
    }
    Ok(files)
}

/// A file's first (partition, offset), from its column bounds: files are merged in log
/// order, so the compacted file's row groups stay narrow in offsets for readers'
/// pruning.
fn first_offset(file: &DataFile) -> (i64, i64) {
    let lower = file.lower_bounds();
    (
        bound(lower, PARTITION_FIELD_ID).unwrap_or(i64::MAX),
        bound(lower, OFFSET_FIELD_ID).unwrap_or(i64::MAX),
    )
}
