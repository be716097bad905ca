//! Committing a snapshot that replaces data files: some files leave the table and new
//! ones holding the same rows (compaction) enter it, in one atomic snapshot.
//! iceberg-rust 0.10 commits only appends, so the snapshot is built here from its public
//! manifest writers, as the Iceberg spec lays it out ("Manifests", "Snapshots"):
//! - a manifest holding none of the removed files is kept as it is;
//! - one holding some is rewritten, those entries marked DELETED and the others EXISTING
//!   with their original snapshot and sequence numbers;
//! - the new files go in a new manifest, and the summary carries the parent's positions
//!   (`lineage::carried`), so the table still says where every partition stands.
//!
//! Like an append, the snapshot lands only on the one it was built on
//! (`RefSnapshotIdMatch`, checked atomically by the catalog). When the table moved (a
//! broker appended a window) it is rebuilt on the new snapshot: appends remove nothing,
//! so that is safe while every file to remove is still live. If one is gone, another
//! replacement took it first and this one is dropped ([`Replaced::Stale`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use iceberg::spec::{
    DataFile, FormatVersion, ManifestContentType, ManifestFile, ManifestListWriter, ManifestWriter,
    ManifestWriterBuilder, Operation, PartitionSpecRef, Snapshot, SnapshotReference,
    SnapshotRetention, SnapshotSummaryCollector, Summary, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, TableCommit, TableIdent, TableRequirement, TableUpdate};
use uuid::Uuid;

use crate::commit::{pause_after_conflict, snapshot_of_commit, still_conflicting, ATTEMPTS};
use crate::error::{LakeError, Result};
use crate::lineage::{carried, COMMIT};

/// One replacement of data files.
pub struct Replace<'a> {
    pub ident: &'a TableIdent,
    /// Paths of live data files that leave the table.
    pub removed: BTreeSet<String>,
    /// Files that enter it (written against the table's default partition spec).
    pub added: Vec<DataFile>,
    /// `Replace` when the rows stay the same (compaction).
    pub operation: Operation,
    /// Unique per replacement and kept across retries, recorded as `sluice.commit`:
    /// finding it in the table means an attempt whose answer was lost did land.
    pub id: &'a str,
    /// More summary properties (e.g. what the replacement was for).
    pub properties: HashMap<String, String>,
    /// Table properties set by the same commit (they outlive snapshot expiry).
    pub table_properties: HashMap<String, String>,
}

/// What a replacement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    Committed {
        snapshot_id: i64,
    },
    /// These files to remove are no longer live: nothing was committed, and the added
    /// files are not part of the table.
    Stale {
        missing: Vec<String>,
    },
}

impl Replace<'_> {
    pub async fn run(&self, catalog: &Arc<dyn Catalog>) -> Result<Replaced> {
        for attempt in 0..ATTEMPTS {
            let table = catalog.load_table(self.ident).await?;
            if let Some(s) = snapshot_of_commit(&table, self.id) {
                return Ok(Replaced::Committed {
                    snapshot_id: s.snapshot_id(),
                });
            }
            let commit = match self.build(&table).await? {
                Built::Commit(commit, snapshot_id) => (commit, snapshot_id),
                Built::Stale(missing) => return Ok(Replaced::Stale { missing }),
            };
            match catalog.update_table(commit.0).await {
                Ok(_) => {
                    return Ok(Replaced::Committed {
                        snapshot_id: commit.1,
                    })
                }
                Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => {
                    pause_after_conflict(self.ident, attempt, &e).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(still_conflicting(self.ident))
    }

    /// The commit of this replacement on the table's current snapshot.
    async fn build(&self, table: &Table) -> Result<Built> {
        let meta = table.metadata();
        if meta.format_version() != FormatVersion::V2 {
            return Err(LakeError::Spec(format!(
                "replacing files needs an Iceberg v2 table; {} is {}",
                self.ident,
                meta.format_version()
            )));
        }
        let Some(parent) = meta.current_snapshot() else {
            return Ok(Built::Stale(self.removed.iter().cloned().collect()));
        };
        let snapshot_id = unique_snapshot_id(table);
        let mut out = Output {
            table,
            snapshot_id,
            uuid: Uuid::new_v4(),
            counter: 0,
        };
        let schema = meta.current_schema().clone();
        let mut summary = SnapshotSummaryCollector::default();
        let mut found = BTreeSet::new();
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let list = table.manifest_list_reader(parent).load().await?;
        for manifest in list.entries() {
            if manifest.content != ManifestContentType::Data {
                manifests.push(manifest.clone());
                continue;
            }
            let entries = manifest.load_manifest(table.file_io()).await?;
            let touched = entries
                .entries()
                .iter()
                .any(|e| e.is_alive() && self.removed.contains(e.file_path()));
            if !touched {
                manifests.push(manifest.clone());
                continue;
            }
            let spec = meta
                .partition_spec_by_id(manifest.partition_spec_id)
                .cloned()
                .ok_or_else(|| {
                    LakeError::Spec(format!(
                        "manifest {} names unknown partition spec {}",
                        manifest.manifest_path, manifest.partition_spec_id
                    ))
                })?;
            let mut writer = out.manifest_writer(spec.clone())?;
            for e in entries.entries().iter().filter(|e| e.is_alive()) {
                let file = e.data_file().clone();
                let seq = e.sequence_number().unwrap_or_default();
                if self.removed.contains(e.file_path()) {
                    found.insert(e.file_path().to_string());
                    summary.remove_file(&file, schema.clone(), spec.clone());
                    writer.add_delete_file(file, seq, e.file_sequence_number)?;
                } else {
                    let added_by = e.snapshot_id().unwrap_or(manifest.added_snapshot_id);
                    writer.add_existing_file(file, added_by, seq, e.file_sequence_number)?;
                }
            }
            manifests.push(writer.write_manifest_file().await?);
        }
        if found != self.removed {
            return Ok(Built::Stale(
                self.removed.difference(&found).cloned().collect(),
            ));
        }
        if !self.added.is_empty() {
            let spec = meta.default_partition_spec().clone();
            let mut writer = out.manifest_writer(spec.clone())?;
            for file in &self.added {
                summary.add_file(file, schema.clone(), spec.clone());
                // A negative sequence number leaves it to be inherited from the snapshot.
                writer.add_file(file.clone(), -1)?;
            }
            manifests.push(writer.write_manifest_file().await?);
        }

        let sequence = meta.next_sequence_number();
        let list_path = format!(
            "{}/metadata/snap-{snapshot_id}-0-{}.avro",
            meta.location(),
            out.uuid
        );
        let mut list_writer = ManifestListWriter::v2(
            table.file_io().new_output(&list_path)?.writer().await?,
            snapshot_id,
            Some(parent.snapshot_id()),
            sequence,
        );
        list_writer.add_manifests(manifests.into_iter())?;
        list_writer.close().await?;

        let parent_summary = &parent.summary().additional_properties;
        let mut properties = summary.build();
        properties.extend(totals(parent_summary, &properties));
        properties.extend(carried(parent_summary));
        properties.extend(self.properties.clone());
        properties.insert(COMMIT.into(), self.id.into());
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(Some(parent.snapshot_id()))
            .with_sequence_number(sequence)
            .with_summary(Summary {
                operation: self.operation.clone(),
                additional_properties: properties,
            })
            .with_schema_id(meta.current_schema_id())
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .build();
        let mut updates = vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: MAIN_BRANCH.to_string(),
                reference: SnapshotReference::new(
                    snapshot_id,
                    SnapshotRetention::branch(None, None, None),
                ),
            },
        ];
        if !self.table_properties.is_empty() {
            updates.push(TableUpdate::SetProperties {
                updates: self.table_properties.clone(),
            });
        }
        let commit = TableCommit::builder()
            .ident(self.ident.clone())
            .updates(updates)
            .requirements(vec![
                TableRequirement::UuidMatch { uuid: meta.uuid() },
                TableRequirement::RefSnapshotIdMatch {
                    r#ref: MAIN_BRANCH.to_string(),
                    snapshot_id: Some(parent.snapshot_id()),
                },
            ])
            .build();
        Ok(Built::Commit(commit, snapshot_id))
    }
}

enum Built {
    Commit(TableCommit, i64),
    Stale(Vec<String>),
}

/// Names and writes the new snapshot's manifests.
struct Output<'a> {
    table: &'a Table,
    snapshot_id: i64,
    uuid: Uuid,
    counter: u32,
}

impl Output<'_> {
    fn manifest_writer(&mut self, spec: PartitionSpecRef) -> Result<ManifestWriter> {
        let meta = self.table.metadata();
        let path = format!(
            "{}/metadata/{}-m{}.avro",
            meta.location(),
            self.uuid,
            self.counter
        );
        self.counter += 1;
        Ok(ManifestWriterBuilder::new(
            self.table.file_io().new_output(path)?,
            Some(self.snapshot_id),
            meta.current_schema().clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data())
    }
}

/// The table totals after this snapshot: the parent's, moved by what it adds and removes
/// (what iceberg-java's `SnapshotProducer` records; engines show them as table stats).
fn totals(
    parent: &HashMap<String, String>,
    own: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let num = |m: &HashMap<String, String>, k: &str| -> Option<i64> { m.get(k)?.parse().ok() };
    let moved = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
    ];
    let mut out: Vec<(String, String)> = moved
        .iter()
        .filter_map(|(total, added, removed)| {
            let before = num(parent, total)?;
            let after = before + num(own, added).unwrap_or(0) - num(own, removed).unwrap_or(0);
            Some((total.to_string(), after.max(0).to_string()))
        })
        .collect();
    for kept in [
        "total-delete-files",
        "total-position-deletes",
        "total-equality-deletes",
    ] {
        if let Some(v) = parent.get(kept) {
            out.push((kept.to_string(), v.clone()));
        }
    }
    out
}

/// A positive snapshot id no snapshot of the table has.
fn unique_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) >> 1) as i64;
        if id != 0 && table.metadata().snapshots().all(|s| s.snapshot_id() != id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_move_by_what_the_snapshot_adds_and_removes() {
        let parent = HashMap::from([
            ("total-data-files".to_string(), "10".to_string()),
            ("total-records".to_string(), "1000".to_string()),
            ("total-files-size".to_string(), "50000".to_string()),
            ("total-delete-files".to_string(), "0".to_string()),
        ]);
        let own = HashMap::from([
            ("added-data-files".to_string(), "1".to_string()),
            ("deleted-data-files".to_string(), "8".to_string()),
            ("added-records".to_string(), "800".to_string()),
            ("deleted-records".to_string(), "800".to_string()),
            ("added-files-size".to_string(), "30000".to_string()),
            ("removed-files-size".to_string(), "40000".to_string()),
        ]);
        let t: HashMap<_, _> = totals(&parent, &own).into_iter().collect();
        assert_eq!(t["total-data-files"], "3");
        assert_eq!(t["total-records"], "1000");
        assert_eq!(t["total-files-size"], "40000");
        assert_eq!(t["total-delete-files"], "0");
    }
}
