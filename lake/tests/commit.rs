//! The commit rule against a real SQL catalog on sqlite with local files: rows land with
//! their lineage, the summary records ranges and positions, a second writer that started
//! from the same positions is superseded instead of duplicating, and a lost answer is
//! recognised as committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iceberg::Catalog;
use sluice_lake::catalog::{sqlite_uri, CatalogConfig};
use sluice_lake::commit::{Commit, Outcome};
use sluice_lake::lineage::{added_ranges, Coverage, Positions};
use sluice_lake::spec::{Partitioning, TableMode, TableSpec};
use sluice_lake::table::{ident, open_or_create, positions};
use sluice_lake::writer::DataWriter;
use sluice_lake::Row;

fn spec() -> TableSpec {
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

fn rows(partition: i32, offsets: std::ops::Range<i64>) -> Vec<Row> {
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

async fn setup(dir: &std::path::Path) -> (Arc<dyn Catalog>, CatalogConfig) {
    let cfg = CatalogConfig::new(
        &sqlite_uri(&dir.join("catalog.db")),
        &format!("file://{}/tables", dir.display()),
        HashMap::new(),
    )
    .unwrap();
    (cfg.connect().await.unwrap(), cfg)
}

async fn write_window(
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

#[tokio::test]
async fn commits_once_and_supersedes_a_second_writer_from_the_same_start() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = setup(dir.path()).await;

    let first = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, None)]),
        rows(0, 0..150),
        "c1",
    )
    .await;
    let Outcome::Committed { positions: p, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(p, BTreeMap::from([(0, 150)]));

    // Another writer that read partition 0 from the start too: superseded, not appended.
    let second = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, None)]),
        rows(0, 0..150),
        "c2",
    )
    .await;
    assert_eq!(
        second,
        Outcome::Superseded {
            positions: BTreeMap::from([(0, 150)])
        }
    );

    // A writer of another partition commits on top, carrying partition 0's position.
    let third = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(1, None)]),
        rows(1, 0..10),
        "c3",
    )
    .await;
    assert!(matches!(third, Outcome::Committed { .. }), "{third:?}");

    // Retrying c3 (its answer lost) finds it committed rather than appending again.
    let again = write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(1, None)]),
        rows(1, 0..10),
        "c3",
    )
    .await;
    assert!(matches!(again, Outcome::Committed { .. }), "{again:?}");

    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    assert_eq!(positions(&t), BTreeMap::from([(0, 150), (1, 10)]));
    let summary = &t
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(added_ranges(summary), BTreeMap::from([(1, (0, 9))]));
    assert_eq!(summary["sluice.generation"], "4");
    assert_eq!(summary["total-records"], "160");
    assert_eq!(t.metadata().snapshots().count(), 2);
}

#[tokio::test]
async fn an_incompatible_existing_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = setup(dir.path()).await;
    let ns = iceberg::NamespaceIdent::new("sec".into());
    catalog.create_namespace(&ns, HashMap::new()).await.unwrap();
    let schema = iceberg::spec::Schema::builder()
        .with_fields([Arc::new(iceberg::spec::NestedField::required(
            1,
            "sluice_topic",
            iceberg::spec::Type::Primitive(iceberg::spec::PrimitiveType::Long),
        ))])
        .build()
        .unwrap();
    let creation = iceberg::TableCreation::builder()
        .name("dns".into())
        .schema(schema)
        .build();
    catalog.create_table(&ns, creation).await.unwrap();
    let err = open_or_create(&catalog, &cfg, &spec(), "dns")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sluice_topic"), "{err}");
}
