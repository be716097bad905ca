//! The commit rule on AWS Glue (moto's Glue and S3 on loopback): table files in an S3
//! bucket under `tables/`, the table registered in Glue, commits landing once with
//! their positions, a second writer from the same start superseded.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{rows, spec, write_window};
use futures::TryStreamExt;
use iceberg::Catalog;
use sluice_lake::catalog::CatalogConfig;
use sluice_lake::commit::Outcome;
use sluice_lake::table::{ident, positions};
use sluice_testkit::Moto;

#[tokio::test]
async fn commits_land_once_on_glue_with_files_in_s3() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let endpoint = moto.endpoint();
    let props = HashMap::from(
        [
            ("region_name", "us-east-1"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("s3.endpoint", endpoint.as_str()),
            ("s3.region", "us-east-1"),
            ("s3.access-key-id", "testing"),
            ("s3.secret-access-key", "testing"),
            ("s3.path-style-access", "true"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let cfg = CatalogConfig::new(&format!("glue:{endpoint}"), "s3://lake/tables", props).unwrap();
    let catalog: Arc<dyn Catalog> = cfg.connect().await.unwrap();

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
    let batches: Vec<_> = t
        .scan()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 150);
}
