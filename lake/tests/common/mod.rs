//! What the lake tests share: a table spec, rows with lineage, and one writer window
//! (write the rows into data files, commit them from a start position).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iceberg::Catalog;
use sluice_lake::catalog::{sqlite_uri, CatalogConfig};
use sluice_lake::commit::{Commit, Outcome};
use sluice_lake::lineage::{Coverage, Positions};
use sluice_lake::spec::{Partitioning, TableMode, TableSpec};
use sluice_lake::table::{ident, open_or_create};
use sluice_lake::writer::DataWriter;
use sluice_lake::Row;

pub fn spec() -> TableSpec {
    TableSpec {
        namespace: "sec".into(),
        name: "dns".into(),
        mode: TableMode::Raw,
        partitioning: Partitioning::Hour,
        commit_interval: Duration::from_secs(1),
        target_file_bytes: 1 << 20,
        generation: Some(4),
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
