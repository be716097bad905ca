//! Table upkeep on a schedule: snapshots older than the table's
//! `history.expire.max-snapshot-age-ms` are expired (keeping at least
//! `history.expire.min-snapshots-to-keep`), so a year of one-minute commits does not
//! grow the table's metadata without bound. Expiry only rewrites metadata: every data
//! file of an append-only table stays referenced by the current snapshot.
//!
//! Not here yet: compacting small files. iceberg-rust 0.10 commits only appends and
//! expiries; replacing files needs a rewrite action it does not offer (docs/lake.md,
//! "Maintenance").

use std::sync::Arc;

use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableIdent};

use crate::error::Result;

/// What one expiry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub before: usize,
    pub after: usize,
}

/// Expires the table's old snapshots by its own properties. Safe to re-apply on a newer
/// snapshot, so iceberg-rust's rebase on conflict is fine here.
pub async fn expire_snapshots(catalog: &Arc<dyn Catalog>, ident: &TableIdent) -> Result<Expired> {
    let table = catalog.load_table(ident).await?;
    let before = table.metadata().snapshots().count();
    if before <= 1 {
        return Ok(Expired {
            before,
            after: before,
        });
    }
    let tx = Transaction::new(&table);
    let tx = tx.expire_snapshots().apply(tx)?;
    let table = tx.commit(catalog.as_ref()).await?;
    Ok(Expired {
        before,
        after: table.metadata().snapshots().count(),
    })
}
