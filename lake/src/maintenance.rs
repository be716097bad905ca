//! Table upkeep on a schedule: snapshots older than the table's
//! `history.expire.max-snapshot-age-ms` are expired (keeping at least
//! `history.expire.min-snapshots-to-keep`), so a year of one-minute commits does not
//! grow the table's metadata without bound; then the files only the expired snapshots
//! reached (data files a compaction replaced, their manifests and manifest lists) are
//! deleted, as iceberg-java's `ExpireSnapshots` does. Only files under the table's
//! location are ever deleted, and only ones no kept snapshot reaches.

use std::collections::BTreeSet;
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableIdent};

use crate::error::Result;

/// What one expiry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub before: usize,
    pub after: usize,
    /// Files deleted because no kept snapshot reaches them any more.
    pub files_deleted: usize,
}

/// Expires the table's old snapshots by its own properties, then deletes the files only
/// they reached. Safe to re-apply on a newer snapshot, so iceberg-rust's rebase on
/// conflict is fine here.
pub async fn expire_snapshots(catalog: &Arc<dyn Catalog>, ident: &TableIdent) -> Result<Expired> {
    let table = catalog.load_table(ident).await?;
    let before = table.metadata().snapshots().count();
    if before <= 1 {
        return Ok(Expired {
            before,
            after: before,
            files_deleted: 0,
        });
    }
    let reached_before = reachable(&table).await?;
    let tx = Transaction::new(&table);
    let tx = tx.expire_snapshots().apply(tx)?;
    let table = tx.commit(catalog.as_ref()).await?;
    let after = table.metadata().snapshots().count();
    let mut files_deleted = 0;
    if after < before {
        // Re-read: a writer may have committed since, reaching nothing older but its own.
        let table = catalog.load_table(ident).await?;
        let kept = reachable(&table).await?;
        let gone: Vec<String> = reached_before.difference(&kept).cloned().collect();
        files_deleted = delete_files(table.file_io(), table.metadata().location(), &gone).await;
    }
    Ok(Expired {
        before,
        after,
        files_deleted,
    })
}

/// Every file a snapshot of the table reads: its manifest list, manifests and live data
/// files.
async fn reachable(table: &Table) -> Result<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    for snapshot in table.metadata().snapshots() {
        files.insert(snapshot.manifest_list().to_string());
        let list = table.manifest_list_reader(snapshot).load().await?;
        for manifest in list.entries() {
            if !files.insert(manifest.manifest_path.clone()) {
                // Manifests are immutable: one seen before reached the same files.
                continue;
            }
            let entries = manifest.load_manifest(table.file_io()).await?;
            for e in entries.entries().iter().filter(|e| e.is_alive()) {
                files.insert(e.file_path().to_string());
            }
        }
    }
    Ok(files)
}

/// Deletes files no snapshot reaches (or a commit that did not land would have added),
/// best effort: a file left behind costs storage, never correctness. Paths outside the
/// table's `location` are never touched. Returns how many were deleted.
pub async fn delete_files(io: &FileIO, location: &str, paths: &[String]) -> usize {
    let prefix = format!("{}/", location.trim_end_matches('/'));
    let mut deleted = 0;
    for path in paths {
        if !path.starts_with(&prefix) {
            tracing::warn!(%path, %location, "not deleting a file outside the table's location");
            continue;
        }
        match io.delete(path).await {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(%path, error = %e, "could not delete an unreferenced file"),
        }
    }
    deleted
}
