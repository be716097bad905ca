//! What the lake tests share: a table spec, rows with lineage, and one writer window
//! (write the rows into data files, commit them from a start position).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use iceberg::scan::TableScanBuilder;
use iceberg::Catalog;
use sluice_lake::catalog::{sqlite_uri, CatalogConfig};
use sluice_lake::commit::{Commit, Outcome};
use sluice_lake::lineage::{Coverage, Positions};
use sluice_lake::spec::{Partitioning, TableMode, TableSpec};
use sluice_lake::table::{ident, open_or_create};
use sluice_lake::writer::DataWriter;
use sluice_lake::Row;
use sluice_testkit::Moto;

pub fn spec() -> TableSpec {
    TableSpec {
        namespace: "sec".into(),
        name: "dns".into(),
        mode: TableMode::Raw,
        partitioning: Partitioning::Hour,
        commit_interval: Duration::from_secs(1),
        target_file_bytes: 1 << 20,
        generation: Some(4),
        maintenance_interval: Duration::from_secs(3600),
        replays: Vec::new(),
    }
}

pub fn rows(partition: i32, offsets: std::ops::Range<i64>) -> Vec<Row> {
    offsets
        .map(|o| Row {
            partition,
            offset: o,
            // Two hours apart at the ends: rows spread over table partitions.
            timestamp_ms: 1_700_000_000_000 + o * 60_000,
            key: Some(Bytes::from(format!("k{o}"))),
            value: Some(Bytes::from(format!("{{\"n\":{o}}}"))),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
            schema_id: None,
            principal: Some("User:collector".into()),
        })
        .collect()
}

#[allow(dead_code)] // not every test file uses the SQL catalog
pub async fn sql_catalog(dir: &std::path::Path) -> (Arc<dyn Catalog>, CatalogConfig) {
    let cfg = CatalogConfig::new(
        &sqlite_uri(&dir.join("catalog.db")),
        &format!("file://{}/tables", dir.display()),
        HashMap::new(),
    )
    .unwrap();
    (cfg.connect().await.unwrap(), cfg)
}

pub async fn write_window(
    catalog: &Arc<dyn Catalog>,
    cfg: &CatalogConfig,
    start: BTreeMap<i32, Option<i64>>,
    data: Vec<Row>,
    commit_id: &str,
) -> Outcome {
    let t = open_or_create(catalog, cfg, &spec(), "dns").await.unwrap();
    let mut w = DataWriter::new(&t, "dns", 1 << 20, format!("test-{commit_id}"))
        .await
        .unwrap();
    w.write(&data).await.unwrap();
    let mut end: Positions = start.iter().map(|(p, s)| (*p, s.unwrap_or(0))).collect();
    for r in &data {
        end.insert(r.partition, r.offset + 1);
    }
    let files = w.finish().await.unwrap();
    assert!(!files.is_empty());
    let coverage = Coverage { start, end };
    Commit {
        ident: &ident(&spec()),
        topic: "dns",
        coverage: &coverage,
        files,
        commit_id,
        writer: "node-0",
        generation: Some(4),
    }
    .run(catalog)
    .await
    .unwrap()
}

/// A Glue catalog on `moto` (Glue and S3 on loopback), tables under `s3://lake/tables`.
#[allow(dead_code)] // not every test file uses Glue
pub async fn glue_catalog(moto: &Moto) -> (Arc<dyn Catalog>, CatalogConfig) {
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
    (cfg.connect().await.unwrap(), cfg)
}

/// Every batch a scan reads.
#[allow(dead_code)] // not every test file reads rows back
pub async fn scan_batches(scan: TableScanBuilder<'_>) -> Vec<RecordBatch> {
    scan.build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The current snapshot's summary properties of `t`.
#[allow(dead_code)] // not every test file reads summaries
pub fn summary_of(t: &iceberg::table::Table) -> &HashMap<String, String> {
    &t.metadata()
        .current_snapshot()
        .expect("the table has a snapshot")
        .summary()
        .additional_properties
}

/// Sets the table's expiry properties so that the next expiry keeps only the current
/// snapshot (everything older than now, at least one kept).
#[allow(dead_code)] // not every test file expires snapshots
pub async fn expire_all_but_current(catalog: &Arc<dyn Catalog>) {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    let tx = Transaction::new(&t);
    let tx = tx
        .update_table_properties()
        .set("history.expire.max-snapshot-age-ms".into(), "1".into())
        .set("history.expire.min-snapshots-to-keep".into(), "1".into())
        .apply(tx)
        .unwrap();
    tx.commit(catalog.as_ref()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
}
