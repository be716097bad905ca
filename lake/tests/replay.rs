//! Replacing a window's rows against a real SQL catalog on sqlite with local files: the
//! rows of the replaced ranges are exactly the replayed ones afterwards, rows of other
//! offsets and partitions sharing their files are untouched, the snapshot names the
//! replay and its ranges, positions stay, and applying the replay again does nothing.

mod common;

use std::collections::{BTreeMap, HashMap};

use arrow_array::{Int32Array, Int64Array, LargeBinaryArray};
use bytes::Bytes;
use common::{rows, scan_batches, spec, sql_catalog, summary_of, write_window};
use iceberg::spec::Operation;
use iceberg::table::Table;
use sluice_lake::commit::Outcome;
use sluice_lake::replay::Overwrite;
use sluice_lake::table::{ident, positions};
use sluice_lake::writer::DataWriter;

/// Every row's (partition, offset) -> value.
async fn values(t: &Table) -> BTreeMap<(i32, i64), Vec<u8>> {
    let mut out = BTreeMap::new();
    for b in scan_batches(
        t.scan()
            .select(["sluice_partition", "sluice_offset", "value"]),
    )
    .await
    {
        let p = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let o = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let v = b
            .column(2)
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            assert!(
                out.insert((p.value(i), o.value(i)), v.value(i).to_vec())
                    .is_none(),
                "row {}/{} twice",
                p.value(i),
                o.value(i)
            );
        }
    }
    out
}

#[tokio::test]
async fn a_window_is_replaced_once_and_nothing_else_moves() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    // Partitions 0 and 1 in the same windows: their rows share files.
    for w in 0..6i64 {
        let start = (w > 0).then_some(w * 20);
        let mut data = rows(0, w * 20..w * 20 + 20);
        data.extend(rows(1, w * 20..w * 20 + 20));
        let out = write_window(
            &catalog,
            &cfg,
            BTreeMap::from([(0, start), (1, start)]),
            data,
            &format!("w{w}"),
        )
        .await;
        assert!(matches!(out, Outcome::Committed { .. }), "{out:?}");
    }
    let id = ident(&spec());
    let before = values(&catalog.load_table(&id).await.unwrap()).await;
    assert_eq!(before.len(), 240);

    // The "parser fix": partition 0's offsets 30..=59 come back with new values, and
    // offset 45 is not there any more (e.g. it now goes to the dead-letter topic).
    let table = catalog.load_table(&id).await.unwrap();
    let mut fixed = rows(0, 30..60);
    fixed.retain(|r| r.offset != 45);
    for r in &mut fixed {
        r.value = Some(Bytes::from(format!("fixed {}", r.offset)));
    }
    let mut writer = DataWriter::new(&table, "dns", 1 << 20, "replay-r1".into())
        .await
        .unwrap();
    writer.write(&fixed).await.unwrap();
    let added = writer.finish().await.unwrap();
    let ranges = BTreeMap::from([(0, (30, 59))]);
    let overwrite = Overwrite {
        ident: &id,
        ranges: &ranges,
        added,
        id: "replay-r1-node-0",
        properties: HashMap::from([("sluice.replay.id".to_string(), "r1".to_string())]),
        table_properties: HashMap::from([("sluice.replay.r1.0".to_string(), "30-59".to_string())]),
        target_file_bytes: 1 << 20,
        file_prefix: "replay-r1-node-0",
    };
    let done = overwrite.run(&catalog).await.unwrap();
    assert_eq!((done.rows_removed, done.rows_added), (30, 29), "{done:?}");
    // Only the files whose lineage bounds overlap the range are rewritten: windows 1
    // and 2, the latter in two hour partitions.
    assert_eq!(done.files_rewritten, 3, "{done:?}");

    let t = catalog.load_table(&id).await.unwrap();
    let after = values(&t).await;
    assert_eq!(after.len(), 239);
    for (key, value) in &before {
        match key {
            (0, 45) => assert!(!after.contains_key(key)),
            (0, o) if (30..60).contains(o) => {
                assert_eq!(after[key], format!("fixed {o}").into_bytes())
            }
            _ => assert_eq!(&after[key], value, "{key:?} changed"),
        }
    }
    let snapshot = t.metadata().current_snapshot().unwrap();
    assert_eq!(snapshot.summary().operation, Operation::Overwrite);
    let summary = summary_of(&t);
    assert_eq!(summary["sluice.replaced.0"], "30-59");
    assert_eq!(summary["sluice.replay.id"], "r1");
    assert_eq!(summary["total-records"], "239");
    assert_eq!(positions(&t), BTreeMap::from([(0, 120), (1, 120)]));
    assert_eq!(t.metadata().properties()["sluice.replay.r1.0"], "30-59");

    // Again (the operator re-applied the same spec, or the answer was lost): the same
    // snapshot, nothing added.
    let again = overwrite.run(&catalog).await.unwrap();
    assert_eq!(again, done);
    let t = catalog.load_table(&id).await.unwrap();
    assert_eq!(values(&t).await, after);
    assert_eq!(t.metadata().snapshots().count(), 7);
}

#[tokio::test]
async fn a_table_evolved_since_its_last_commit_is_replaced_with_its_new_columns() {
    use iceberg::spec::{PrimitiveType, Type};
    use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    write_window(
        &catalog,
        &cfg,
        BTreeMap::from([(0, None)]),
        rows(0, 0..20),
        "w0",
    )
    .await;
    // A column added after the last commit: the current snapshot still has the old
    // columns, so reading it back gives rows one column short.
    let id = ident(&spec());
    let t = catalog.load_table(&id).await.unwrap();
    // The replayed rows, in files of the columns they have (raw mode fills no "src").
    let mut writer = DataWriter::new(&t, "dns", 1 << 20, "replay-evolved".into())
        .await
        .unwrap();
    writer.write(&rows(0, 5..10)).await.unwrap();
    let added = writer.finish().await.unwrap();
    let tx = Transaction::new(&t);
    let tx = tx
        .update_schema()
        .add_column(AddColumn::optional(
            "src",
            Type::Primitive(PrimitiveType::String),
        ))
        .apply(tx)
        .unwrap();
    tx.commit(catalog.as_ref()).await.unwrap();
    let ranges = BTreeMap::from([(0, (5, 9))]);
    let done = Overwrite {
        ident: &id,
        ranges: &ranges,
        added,
        id: "replay-evolved",
        properties: HashMap::new(),
        table_properties: HashMap::new(),
        target_file_bytes: 1 << 20,
        file_prefix: "replay-evolved",
    }
    .run(&catalog)
    .await
    .unwrap();
    assert_eq!((done.rows_removed, done.rows_added), (5, 5));
    let t = catalog.load_table(&id).await.unwrap();
    assert_eq!(values(&t).await.len(), 20);
}
