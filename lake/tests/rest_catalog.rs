//! The commit rule against Apache Iceberg's own REST catalog server (Java, its
//! requirements checked server-side): writers of different partitions committing at the
//! same time all land, each snapshot carrying every partition's position; two writers
//! of the same partition from the same start land once.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{rows, spec, summary_of, write_window};
use iceberg::Catalog;
use sluice_lake::catalog::CatalogConfig;
use sluice_lake::commit::Outcome;
use sluice_lake::lineage::added_ranges;
use sluice_lake::table::{ident, positions};
use sluice_testkit::IcebergRest;

const PARTITIONS: i32 = 4;
const WINDOWS: i64 = 4;
const ROWS_PER_WINDOW: i64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_land_once_on_the_java_rest_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let rest = IcebergRest::start(&dir.path().join("rest"));
    let warehouse = format!("file://{}", rest.warehouse().display());
    let cfg = CatalogConfig::new(&rest.uri(), &warehouse, HashMap::new()).unwrap();
    let catalog: Arc<dyn Catalog> = cfg.connect().await.unwrap();

    // One writer per partition, all at once, window after window.
    let writers = (0..PARTITIONS).map(|p| {
        let (catalog, cfg) = (catalog.clone(), cfg.clone());
        tokio::spawn(async move {
            for w in 0..WINDOWS {
                let start = (w > 0).then_some(w * ROWS_PER_WINDOW);
                let data = rows(p, w * ROWS_PER_WINDOW..(w + 1) * ROWS_PER_WINDOW);
                let id = format!("p{p}-w{w}");
                let outcome =
                    write_window(&catalog, &cfg, BTreeMap::from([(p, start)]), data, &id).await;
                assert!(
                    matches!(outcome, Outcome::Committed { .. }),
                    "{id}: {outcome:?}"
                );
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    let end = WINDOWS * ROWS_PER_WINDOW;
    assert_eq!(
        positions(&t),
        (0..PARTITIONS)
            .map(|p| (p, end))
            .collect::<BTreeMap<_, _>>()
    );
    let mut covered: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for s in t.metadata().snapshots() {
        for (p, r) in added_ranges(&s.summary().additional_properties) {
            covered.entry(p).or_default().push(r);
        }
    }
    for p in 0..PARTITIONS {
        let mut ranges = covered.remove(&p).unwrap_or_default();
        ranges.sort();
        let expected: Vec<(i64, i64)> = (0..WINDOWS)
            .map(|w| (w * ROWS_PER_WINDOW, (w + 1) * ROWS_PER_WINDOW - 1))
            .collect();
        assert_eq!(ranges, expected, "partition {p}");
    }
    let summary = summary_of(&t);
    assert_eq!(
        summary["total-records"],
        (PARTITIONS as i64 * end).to_string()
    );

    // Two writers of partition 0 from the same start: one lands, one is superseded.
    let race = (0..2).map(|i| {
        let (catalog, cfg) = (catalog.clone(), cfg.clone());
        tokio::spawn(async move {
            let data = rows(0, end..end + 10);
            write_window(
                &catalog,
                &cfg,
                BTreeMap::from([(0, Some(end))]),
                data,
                &format!("race{i}"),
            )
            .await
        })
    });
    let mut outcomes = Vec::new();
    for r in race.collect::<Vec<_>>() {
        outcomes.push(r.await.unwrap());
    }
    let committed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Committed { .. }))
        .count();
    assert_eq!(committed, 1, "{outcomes:?}");
    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    let summary = summary_of(&t);
    assert_eq!(
        summary["total-records"],
        (PARTITIONS as i64 * end + 10).to_string()
    );
}
