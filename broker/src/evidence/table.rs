//! The table's side of an evidence report: the snapshots whose recorded offset ranges
//! (`sluice.offsets.*` added, `sluice.replaced.*` replaced) overlap the window's, the
//! table's position per partition, and the rows it holds for each partition's range,
//! counted by a scan of the lineage columns, so that table and log can be compared.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use iceberg::expr::Reference;
use iceberg::spec::Datum;
use iceberg::table::Table;
use sluice_lake::lineage::{self, added_ranges, WRITER};
use sluice_schema::evidence::SnapshotEvidence;
use sluice_schema::replay::summary::{REPLACED_PREFIX, REPLAY_ID};

use super::EvidenceError;
use sluice_lake::columns::{OFFSET, PARTITION};

/// Per partition, offsets `[first, last]`.
pub type Ranges = BTreeMap<i32, (i64, i64)>;

/// The snapshots of `table` whose ranges overlap `window`, oldest first.
pub fn snapshots(table: &Table, window: &Ranges) -> Vec<SnapshotEvidence> {
    let mut out: Vec<SnapshotEvidence> = table
        .metadata()
        .snapshots()
        .filter_map(|s| {
            let summary = &s.summary().additional_properties;
            let mut ranges = added_ranges(summary);
            ranges.extend(lineage::ranges(summary, REPLACED_PREFIX));
            if !overlaps(&ranges, window) {
                return None;
            }
            let count = |k: &str| summary.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            Some(SnapshotEvidence {
                snapshot_id: s.snapshot_id(),
                timestamp_ms: s.timestamp_ms(),
                operation: s.summary().operation.as_str().to_string(),
                ranges,
                added_files: count("added-data-files"),
                added_rows: count("added-records"),
                deleted_rows: count("deleted-records"),
                replay_id: summary.get(REPLAY_ID).cloned(),
                writer: summary.get(WRITER).cloned(),
            })
        })
        .collect();
    out.sort_by_key(|s| (s.timestamp_ms, s.snapshot_id));
    out
}

fn overlaps(ranges: &Ranges, window: &Ranges) -> bool {
    ranges
        .iter()
        .any(|(p, (a, b))| window.get(p).is_some_and(|(wa, wb)| *a <= *wb && *wa <= *b))
}

/// Rows the table holds for each partition's range.
pub async fn rows_in(table: &Table, window: &Ranges) -> Result<BTreeMap<i32, u64>, EvidenceError> {
    let mut out = BTreeMap::new();
    for (p, (a, b)) in window {
        let filter = Reference::new(PARTITION)
            .equal_to(Datum::int(*p))
            .and(Reference::new(OFFSET).greater_than_or_equal_to(Datum::long(*a)))
            .and(Reference::new(OFFSET).less_than_or_equal_to(Datum::long(*b)));
        let batches: Vec<_> = table
            .scan()
            .select([PARTITION, OFFSET])
            .with_filter(filter)
            .build()?
            .to_arrow()
            .await?
            .try_collect()
            .await?;
        out.insert(*p, batches.iter().map(|b| b.num_rows() as u64).sum());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlap_per_partition_only() {
        let window = Ranges::from([(0, (10, 20))]);
        assert!(overlaps(&Ranges::from([(0, (20, 30))]), &window));
        assert!(overlaps(&Ranges::from([(0, (0, 10))]), &window));
        assert!(!overlaps(&Ranges::from([(0, (21, 30))]), &window));
        assert!(!overlaps(&Ranges::from([(1, (10, 20))]), &window));
        let summary = std::collections::HashMap::from([
            ("sluice.replaced.3".to_string(), "5-9".to_string()),
            ("sluice.replay.id".to_string(), "r".to_string()),
        ]);
        assert_eq!(
            lineage::ranges(&summary, REPLACED_PREFIX),
            Ranges::from([(3, (5, 9))])
        );
    }
}
