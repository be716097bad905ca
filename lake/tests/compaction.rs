//! Compaction against a real SQL catalog on sqlite with local files: small files of the
//! same table partition become one, the rows and their lineage stay exactly the same,
//! the table still says where every partition stands, writers keep appending after it,
//! and a replacement whose files are already gone commits nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::{Int32Array, Int64Array};
use common::{
    expire_all_but_current, rows, scan_batches, spec, sql_catalog, summary_of, write_window,
};
use iceberg::spec::Operation;
use iceberg::table::Table;
use iceberg::Catalog;
use sluice_lake::catalog::CatalogConfig;
use sluice_lake::commit::Outcome;
use sluice_lake::compaction::{compact, live_files, Policy};
use sluice_lake::rewrite::{Replace, Replaced};
use sluice_lake::table::{ident, positions};

/// `windows` commits of `size` rows each to partition 0, one file each unless they
/// straddle an hour.
async fn fill(catalog: &Arc<dyn Catalog>, cfg: &CatalogConfig, windows: i64, size: i64) {
    for w in 0..windows {
        let out = write_window(
            catalog,
            cfg,
            BTreeMap::from([(0, (w > 0).then_some(w * size))]),
            rows(0, w * size..w * size + size),
            &format!("w{w}"),
        )
        .await;
        assert!(matches!(out, Outcome::Committed { .. }), "{out:?}");
    }
}

/// The paths of the table's live data files.
async fn paths(t: &Table) -> Vec<String> {
    live_files(t)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, f)| f.file_path().to_string())
        .collect()
}

/// Every row's (partition, offset), in scan order.
async fn lineage(t: &Table) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    for b in scan_batches(t.scan().select(["sluice_partition", "sluice_offset"])).await {
        let p = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let o = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend((0..b.num_rows()).map(|i| (p.value(i), o.value(i))));
    }
    out.sort();
    out
}

#[tokio::test]
async fn small_files_of_a_table_partition_become_one_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    // Twelve windows of ten rows, a minute apart per offset: three hour partitions with
    // 5, 7 and 2 files.
    fill(&catalog, &cfg, 12, 10).await;
    let id = ident(&spec());
    let before = catalog.load_table(&id).await.unwrap();
    assert_eq!(live_files(&before).await.unwrap().len(), 14);
    let rows_before = lineage(&before).await;
    assert_eq!(rows_before.len(), 120);

    let done = compact(&catalog, &id, Policy::for_target(1 << 20), "compact-1")
        .await
        .unwrap();
    assert_eq!(
        (
            done.partitions,
            done.files_removed,
            done.files_added,
            done.rows
        ),
        (2, 12, 2, 107),
        "{done:?}"
    );

    let after = catalog.load_table(&id).await.unwrap();
    assert_eq!(live_files(&after).await.unwrap().len(), 4);
    assert_eq!(lineage(&after).await, rows_before);
    assert_eq!(positions(&after), BTreeMap::from([(0, 120)]));
    let current = after.metadata().current_snapshot().unwrap();
    assert_eq!(current.summary().operation, Operation::Replace);
    let summary = summary_of(&after);
    assert_eq!(summary["total-records"], "120");
    assert_eq!(summary["total-data-files"], "4");
    assert_eq!(summary["sluice.topic"], "dns");
    assert!(!summary.keys().any(|k| k.starts_with("sluice.offsets.")));

    // Nothing left to merge: a second run commits nothing.
    let again = compact(&catalog, &id, Policy::for_target(1 << 20), "compact-2")
        .await
        .unwrap();
    assert_eq!(again.partitions, 0);
    assert_eq!(
        catalog
            .load_table(&id)
            .await
            .unwrap()
            .metadata()
            .snapshots()
            .count(),
        14
    );

    // The writer resumes from the compacted snapshot's positions.
    let next = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, Some(120))]),
        rows(0, 120..130),
        "w12",
    )
    .await;
    assert!(matches!(next, Outcome::Committed { .. }), "{next:?}");
    let t = catalog.load_table(&id).await.unwrap();
    assert_eq!(lineage(&t).await.len(), 130);
    assert_eq!(positions(&t), BTreeMap::from([(0, 130)]));
}

#[tokio::test]
async fn a_replacement_whose_files_are_gone_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    fill(&catalog, &cfg, 5, 5).await;
    let id = ident(&spec());
    let t = catalog.load_table(&id).await.unwrap();
    let files: BTreeSet<String> = paths(&t).await.into_iter().collect();
    let first = files.iter().next().unwrap().clone();
    let id_ref = id.clone();
    let remove_first = |id| Replace {
        ident: &id_ref,
        removed: BTreeSet::from([first.clone()]),
        added: Vec::new(),
        operation: Operation::Overwrite,
        id,
        properties: Default::default(),
        table_properties: Default::default(),
    };
    let r1 = remove_first("r1");
    assert!(matches!(
        r1.run(&catalog).await.unwrap(),
        Replaced::Committed { .. }
    ));
    // The same replacement again: recognised as landed, not applied twice.
    assert!(matches!(
        r1.run(&catalog).await.unwrap(),
        Replaced::Committed { .. }
    ));
    let r2 = remove_first("r2");
    assert_eq!(
        r2.run(&catalog).await.unwrap(),
        Replaced::Stale {
            missing: vec![first.clone()]
        }
    );
    let t = catalog.load_table(&id).await.unwrap();
    assert_eq!(live_files(&t).await.unwrap().len(), files.len() - 1);
    assert_eq!(positions(&t), BTreeMap::from([(0, 25)]));
}

#[tokio::test]
async fn expiry_deletes_the_files_only_expired_snapshots_reached() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    fill(&catalog, &cfg, 6, 5).await;
    let id = ident(&spec());
    let small = paths(&catalog.load_table(&id).await.unwrap()).await;
    assert_eq!(small.len(), 6);
    let done = compact(&catalog, &id, Policy::for_target(1 << 20), "c")
        .await
        .unwrap();
    assert_eq!(done.files_removed, 6);
    let local = |p: &str| std::path::PathBuf::from(p.strip_prefix("file://").unwrap_or(p));
    // Still reached by the snapshots before the compaction: kept.
    assert!(small.iter().all(|p| local(p).exists()));

    expire_all_but_current(&catalog).await;
    let expired = sluice_lake::maintenance::expire_snapshots(&catalog, &id)
        .await
        .unwrap();
    assert_eq!((expired.before, expired.after), (7, 1));
    // The six small files, and the six appends' manifests and manifest lists.
    assert_eq!(expired.files_deleted, 6 + 6 + 6, "{expired:?}");
    assert!(small.iter().all(|p| !local(p).exists()));
    let t = catalog.load_table(&id).await.unwrap();
    assert_eq!(lineage(&t).await.len(), 30);
    assert_eq!(positions(&t), BTreeMap::from([(0, 30)]));
}
