//! The commit rule against a real SQL catalog on sqlite with local files: rows land with
//! their lineage, the summary records ranges and positions, a second writer that started
//! from the same positions is superseded instead of duplicating, and a lost answer is
//! recognised as committed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{expire_all_but_current, rows, spec, sql_catalog, summary_of, write_window};
use sluice_lake::commit::Outcome;
use sluice_lake::lineage::added_ranges;
use sluice_lake::table::{ident, open_or_create, positions};

#[tokio::test]
async fn commits_once_and_supersedes_a_second_writer_from_the_same_start() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;

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

    // A writer of another partition commits on top, carrying partition 0's position;
    // retrying that window (its answer lost) finds it committed, appending nothing.
    for attempt in ["first", "retry"] {
        let out = write_window(
            &catalog,
            &cfg,
            BTreeMap::from([(1, None)]),
            rows(1, 0..10),
            "c3",
        )
        .await;
        assert!(
            matches!(out, Outcome::Committed { .. }),
            "{attempt}: {out:?}"
        );
    }

    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    assert_eq!(positions(&t), BTreeMap::from([(0, 150), (1, 10)]));
    let summary = summary_of(&t);
    assert_eq!(added_ranges(summary), BTreeMap::from([(1, (0, 9))]));
    assert_eq!(summary["sluice.generation"], "4");
    assert_eq!(summary["total-records"], "160");
    assert_eq!(t.metadata().snapshots().count(), 2);
}

#[tokio::test]
async fn an_incompatible_existing_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
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

#[tokio::test]
async fn expiry_keeps_positions_and_drops_old_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    for w in 0..4i64 {
        let start = (w > 0).then_some(w * 10);
        let out = write_window(
            &catalog,
            &cfg,
            BTreeMap::from([(0, start)]),
            rows(0, w * 10..w * 10 + 10),
            &format!("w{w}"),
        )
        .await;
        assert!(matches!(out, Outcome::Committed { .. }), "{out:?}");
    }
    expire_all_but_current(&catalog).await;
    let expired = sluice_lake::maintenance::expire_snapshots(&catalog, &ident(&spec()))
        .await
        .unwrap();
    assert_eq!((expired.before, expired.after), (4, 1));
    let t = catalog.load_table(&ident(&spec())).await.unwrap();
    assert_eq!(positions(&t), BTreeMap::from([(0, 40)]));
    let rows = t.scan().build().unwrap().to_arrow().await.unwrap();
    use futures::TryStreamExt;
    let batches: Vec<_> = rows.try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 40);
}
