//! Committing a window's data files exactly once. A commit is built on the table's
//! current snapshot and lands only on it ([`FencedCatalog`]); it is made only when that
//! snapshot's positions for our partitions are where our reading started. Otherwise
//! someone else (an older leader, a writer from before a restart) already committed
//! those offsets, and the caller drops its files and resumes from the table.
//!
//! Crash points (`docs/lake.md`, "Exactly once"): killed before the files are written
//! or after but before the commit, the files are orphans (never in a snapshot) and the
//! next writer resumes from the table's positions; killed during the commit, the commit
//! either landed (positions moved: the next writer continues after it) or did not.

use std::sync::Arc;
use std::time::Duration;

use iceberg::spec::{DataFile, SnapshotRef};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, TableIdent};

use crate::error::{LakeError, Result};
use crate::fence::FencedCatalog;
use crate::lineage::{Coverage, Positions, COMMIT};
use crate::table;

/// Commit attempts before giving up for now (each after the table moved for a reason
/// that did not touch our partitions: another broker committing its own).
pub(crate) const ATTEMPTS: usize = 10;

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The files are in the table as this snapshot.
    Committed {
        snapshot_id: i64,
        positions: Positions,
    },
    /// The table's positions for our partitions are not where we started: our files are
    /// not committed and must not be; resume from these positions.
    Superseded { positions: Positions },
}

/// One commit of a window.
pub struct Commit<'a> {
    pub ident: &'a TableIdent,
    pub topic: &'a str,
    pub coverage: &'a Coverage,
    pub files: Vec<DataFile>,
    /// Unique per window, kept across retries of the same window: finding it in the
    /// table means an earlier attempt whose answer was lost did land.
    pub commit_id: &'a str,
    pub writer: &'a str,
    pub generation: Option<i64>,
}

impl Commit<'_> {
    pub async fn run(self, catalog: &Arc<dyn Catalog>) -> Result<Outcome> {
        for attempt in 0..ATTEMPTS {
            let t = catalog.load_table(self.ident).await?;
            let parent = table::positions(&t);
            if let Some(s) = snapshot_of_commit(&t, self.commit_id) {
                return Ok(Outcome::Committed {
                    snapshot_id: s.snapshot_id(),
                    positions: parent,
                });
            }
            if !self.coverage.fits(&parent) {
                return Ok(Outcome::Superseded { positions: parent });
            }
            let props = self.coverage.summary(
                self.topic,
                &parent,
                self.commit_id,
                self.writer,
                self.generation,
            );
            let tx = Transaction::new(&t);
            let tx = tx
                .fast_append()
                .add_data_files(self.files.clone())
                .set_snapshot_properties(props)
                .apply(tx)?;
            let fenced = FencedCatalog {
                inner: catalog.clone(),
                parent: t.metadata().current_snapshot_id(),
            };
            match tx.commit(&fenced).await {
                Ok(committed) => {
                    return Ok(Outcome::Committed {
                        snapshot_id: committed
                            .metadata()
                            .current_snapshot_id()
                            .unwrap_or_default(),
                        positions: table::positions(&committed),
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
}

/// The snapshot a commit with this `sluice.commit` id made, if the table has it.
pub fn snapshot_of_commit<'a>(table: &'a Table, commit_id: &str) -> Option<&'a SnapshotRef> {
    table.metadata().snapshots().find(|s| {
        s.summary()
            .additional_properties
            .get(COMMIT)
            .map(String::as_str)
            == Some(commit_id)
    })
}

/// Waits a little longer after each conflict, before reading the table again.
pub(crate) async fn pause_after_conflict(ident: &TableIdent, attempt: usize, e: &iceberg::Error) {
    tracing::debug!(table = %ident, attempt, "commit conflict, re-reading: {e}");
    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
}

/// The error after [`ATTEMPTS`] conflicts in a row.
pub(crate) fn still_conflicting(ident: &TableIdent) -> LakeError {
    LakeError::Iceberg(iceberg::Error::new(
        ErrorKind::CatalogCommitConflicts,
        format!("{ident}: still conflicting after {ATTEMPTS} attempts"),
    ))
}
