//! The commit rule on AWS Glue (moto's Glue and S3 on loopback): table files in an S3
//! bucket under `tables/`, the table registered in Glue, commits landing once with
//! their positions, a second writer from the same start superseded.

mod common;

use std::collections::BTreeMap;

use common::{glue_catalog, rows, scan_batches, spec, write_window};
use sluice_lake::commit::Outcome;
use sluice_lake::table::{ident, positions};
use sluice_testkit::Moto;

#[tokio::test]
async fn commits_land_once_on_glue_with_files_in_s3() {
    let moto = Moto::start();
    let (catalog, cfg) = glue_catalog(&moto).await;

    let first = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, None)]),
        rows(0, 0..100),
        "g1",
    )
    .await;
    assert!(matches!(first, Outcome::Committed { .. }), "{first:?}");
    let second = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, Some(100))]),
        rows(0, 100..150),
        "g2",
    )
    .await;
    assert!(matches!(second, Outcome::Committed { .. }), "{second:?}");
    let stale = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, Some(100))]),
        rows(0, 100..150),
        "g3",
    )
    .await;
    assert_eq!(
        stale,
        Outcome::Superseded {
            positions: BTreeMap::from([(0, 150)])
        }
    );

    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    assert_eq!(positions(&t), BTreeMap::from([(0, 150)]));
    assert!(
        t.metadata().location().starts_with("s3://lake/tables/"),
        "{}",
        t.metadata().location()
    );
    let batches = scan_batches(t.scan()).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 150);
}
