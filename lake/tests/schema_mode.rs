//! Schema mode against a real SQL catalog on sqlite with local files: a table created
//! from an Avro schema takes Confluent-framed rows, evolves when a version adds fields
//! (the catalog's schema is the one `table_schema` derived, ids included), keeps taking
//! rows of the older version, refuses a retyped field without touching the table, and
//! reads back through iceberg-rust's scan with exact values; the same for plain JSON.
//! Two brokers evolving at once on Apache Iceberg's own REST catalog (Java, requirements
//! checked server-side) add the columns once; Glue (moto) takes the timestamp columns
//! and the evolution too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use bytes::Bytes;
use iceberg::expr::Reference;
use iceberg::spec::Datum;
use iceberg::table::Table;
use iceberg::Catalog;
use serde_json::{json, Value};
use sluice_lake::catalog::CatalogConfig;
use sluice_lake::commit::{Commit, Outcome};
use sluice_lake::lineage::Coverage;
use sluice_lake::spec::{Partitioning, TableMode, TableSpec};
use sluice_lake::table::{evolve, ident, open_or_create_with, positions};
use sluice_lake::writer::DataWriter;
use sluice_lake::{table_schema, Evolution, FeedSchema, LakeError, Row, ValueFormat};
use sluice_schema::{wire, Format};
use sluice_testkit::{IcebergRest, Moto};

// The raw-mode helpers there are not used here.
#[allow(dead_code)]
mod common;
use common::{glue_catalog, scan_batches, sql_catalog};

const TOPIC: &str = "dns";

const V1: &str = r#"{"type":"record","name":"Dns","fields":[
    {"name":"query","type":"string"},
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"client","type":{"type":"record","name":"C","fields":[
        {"name":"ip","type":"string"}]}},
    {"name":"answers","type":["null",{"type":"array","items":"string"}],"default":null}]}"#;

/// V1 plus a field inside `client` and a top-level one.
const V2: &str = r#"{"type":"record","name":"Dns","fields":[
    {"name":"query","type":"string"},
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"client","type":{"type":"record","name":"C","fields":[
        {"name":"ip","type":"string"},
        {"name":"port","type":["null","int"],"default":null}]}},
    {"name":"answers","type":["null",{"type":"array","items":"string"}],"default":null},
    {"name":"resolver","type":["null","string"],"default":null}]}"#;

fn spec(name: &str) -> TableSpec {
    TableSpec {
        namespace: "sec".into(),
        name: name.into(),
        mode: TableMode::Schema,
        partitioning: Partitioning::Hour,
        commit_interval: Duration::from_secs(1),
        target_file_bytes: 1 << 20,
        generation: None,
        maintenance_interval: Duration::from_secs(3600),
        replays: Vec::new(),
    }
}

fn row(offset: i64, schema_id: Option<i32>, value: Vec<u8>) -> Row {
    Row {
        partition: 0,
        offset,
        timestamp_ms: 1_714_557_600_000 + offset,
        key: None,
        value: Some(Bytes::from(value)),
        headers: vec![],
        schema_id,
        principal: None,
    }
}

/// Writes `rows` (partition 0, consecutive offsets from the table's position) in schema
/// mode and commits them; how many had no columns.
async fn write(
    catalog: &Arc<dyn Catalog>,
    table: &Table,
    values: ValueFormat,
    rows: Vec<Row>,
) -> u64 {
    // Unique per window: the first offset of the window.
    let id = format!("commit-{}", rows[0].offset);
    let mut w = DataWriter::new(table, TOPIC, 1 << 20, format!("test-{id}"))
        .await
        .unwrap()
        .with_values(values);
    w.write(&rows).await.unwrap();
    let undecoded = w.undecoded();
    let coverage = Coverage {
        start: BTreeMap::from([(0, positions(table).get(&0).copied())]),
        end: BTreeMap::from([(0, rows.last().unwrap().offset + 1)]),
    };
    let outcome = Commit {
        ident: table.identifier(),
        topic: TOPIC,
        coverage: &coverage,
        files: w.finish().await.unwrap(),
        commit_id: &id,
        writer: "node-0",
        generation: None,
    }
    .run(catalog)
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");
    undecoded
}

/// The table's rows as JSON objects (nulls left out) in offset order: `columns` of
/// `snapshot` (None: the current one), only offsets from `from` on.
async fn read(
    catalog: &Arc<dyn Catalog>,
    table: &Table,
    columns: &[&str],
    snapshot: Option<i64>,
    from: i64,
) -> Vec<Value> {
    let t = catalog.load_table(table.identifier()).await.unwrap();
    let mut scan = t
        .scan()
        .select(columns.iter().copied())
        .with_filter(Reference::new("sluice_offset").greater_than_or_equal_to(Datum::long(from)));
    if let Some(id) = snapshot {
        scan = scan.snapshot_id(id);
    }
    let batches = scan_batches(scan).await;
    let mut w = arrow_json::ArrayWriter::new(Vec::new());
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    let mut rows: Vec<Value> = serde_json::from_slice(&w.into_inner()).unwrap();
    rows.sort_by_key(|r| r["sluice_offset"].as_i64());
    rows
}

fn avro(schema: &apache_avro::Schema, id: i32, fields: Vec<(&str, Avro)>) -> Vec<u8> {
    let record = Avro::Record(fields.into_iter().map(|(k, v)| (k.into(), v)).collect());
    let datum = GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(record)
        .unwrap();
    wire::frame(id, &datum)
}

fn s(v: &str) -> Avro {
    Avro::String(v.into())
}

#[tokio::test]
async fn an_avro_table_is_created_evolved_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    let v1 = Arc::new(apache_avro::Schema::parse_str(V1).unwrap());
    let v2 = Arc::new(apache_avro::Schema::parse_str(V2).unwrap());
    let schemas = {
        let (v1, v2) = (v1.clone(), v2.clone());
        ValueFormat::Avro(Arc::new(move |id| match id {
            1 => Some(v1.clone()),
            2 => Some(v2.clone()),
            _ => None,
        }))
    };
    let feed1 = FeedSchema {
        format: Format::Avro,
        text: V1,
    };
    let spec = spec("dns_records");
    let t = open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed1))
        .await
        .unwrap();
    let Evolution::Create(derived) = table_schema(Format::Avro, V1, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        t.metadata().current_schema().as_struct(),
        derived.as_struct()
    );

    let client = |ip: &str| Avro::Record(vec![("ip".into(), s(ip))]);
    let at = |offset: i64| Avro::TimestampMillis(1_714_557_600_000 + offset * 1000);
    let v1_row = |offset: i64, answers: Avro| {
        let query = s(&format!("q{offset}.example"));
        let fields = vec![
            ("query", query),
            ("at", at(offset)),
            ("client", client(&format!("10.0.0.{offset}"))),
            ("answers", answers),
        ];
        row(offset, Some(1), avro(&v1, 1, fields))
    };
    let some_answers = Avro::Union(
        1,
        Box::new(Avro::Array(vec![s("192.0.2.1"), s("192.0.2.2")])),
    );
    let none = || Avro::Union(0, Box::new(Avro::Null));
    let rows = vec![v1_row(0, some_answers.clone()), v1_row(1, none())];
    assert_eq!(write(&catalog, &t, schemas.clone(), rows).await, 0);
    let first_snapshot = catalog
        .load_table(&ident(&spec))
        .await
        .unwrap()
        .metadata()
        .current_snapshot_id()
        .unwrap();

    // A stale copy of the table, as a second broker would hold it.
    let stale = catalog.load_table(&ident(&spec)).await.unwrap();
    let Evolution::Add {
        schema: wanted,
        columns,
    } = table_schema(Format::Avro, V2, Some(stale.metadata().current_schema())).unwrap()
    else {
        panic!()
    };
    assert_eq!(columns.len(), 2);
    let feed2 = FeedSchema {
        format: Format::Avro,
        text: V2,
    };
    let t = open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed2))
        .await
        .unwrap();
    assert_eq!(
        t.metadata().current_schema().as_struct(),
        wanted.as_struct()
    );
    // The stale writer's update finds the columns there and changes nothing.
    let again = evolve(&catalog, stale, &feed2).await.unwrap();
    assert_eq!(
        again.metadata().current_schema().as_struct(),
        wanted.as_struct()
    );
    assert_eq!(again.metadata().schemas_iter().count(), 2);

    let v2_fields = vec![
        ("query", s("q3.example")),
        ("at", at(3)),
        (
            "client",
            Avro::Record(vec![
                ("ip".into(), s("10.0.0.3")),
                ("port".into(), Avro::Union(1, Box::new(Avro::Int(5353)))),
            ]),
        ),
        ("answers", none()),
        ("resolver", Avro::Union(1, Box::new(s("ns1")))),
    ];
    let rows = vec![
        // An older producer still on V1.
        v1_row(2, some_answers),
        row(3, Some(2), avro(&v2, 2, v2_fields)),
        // Let in by `observe`: not framed.
        row(4, None, b"garbage".to_vec()),
    ];
    assert_eq!(write(&catalog, &t, schemas, rows).await, 1);

    // iceberg-rust 0.10.1's scan cannot read `client` from files written before it
    // gained `port` (it casts struct to struct); other engines can. So: the top-level
    // columns of every row, then `client` of the old snapshot and of the new rows.
    let top = [
        "sluice_offset",
        "sluice_schema_id",
        "query",
        "at",
        "answers",
        "resolver",
    ];
    assert_eq!(
        read(&catalog, &t, &top, None, 0).await,
        [
            json!({"sluice_offset":0,"sluice_schema_id":1,"query":"q0.example","at":"2024-05-01T10:00:00","answers":["192.0.2.1","192.0.2.2"]}),
            json!({"sluice_offset":1,"sluice_schema_id":1,"query":"q1.example","at":"2024-05-01T10:00:01"}),
            json!({"sluice_offset":2,"sluice_schema_id":1,"query":"q2.example","at":"2024-05-01T10:00:02","answers":["192.0.2.1","192.0.2.2"]}),
            json!({"sluice_offset":3,"sluice_schema_id":2,"query":"q3.example","at":"2024-05-01T10:00:03","resolver":"ns1"}),
            json!({"sluice_offset":4}),
        ]
    );
    let client_cols = ["sluice_offset", "client"];
    assert_eq!(
        read(&catalog, &t, &client_cols, Some(first_snapshot), 0).await,
        [
            json!({"sluice_offset":0,"client":{"ip":"10.0.0.0"}}),
            json!({"sluice_offset":1,"client":{"ip":"10.0.0.1"}}),
        ]
    );
    assert_eq!(
        read(&catalog, &t, &client_cols, None, 2).await,
        [
            json!({"sluice_offset":2,"client":{"ip":"10.0.0.2"}}),
            json!({"sluice_offset":3,"client":{"ip":"10.0.0.3","port":5353}}),
            json!({"sluice_offset":4}),
        ]
    );

    // A version that retypes a field is refused, naming the table, and changes nothing.
    let retyped = V2.replace(
        r#"{"name":"query","type":"string"}"#,
        r#"{"name":"query","type":"long"}"#,
    );
    let feed3 = FeedSchema {
        format: Format::Avro,
        text: &retyped,
    };
    let err = open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed3))
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::Incompatible { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("sec.dns_records") && msg.contains("\"query\"") && msg.contains("long"),
        "{msg}"
    );
    let t = catalog.load_table(&ident(&spec)).await.unwrap();
    assert_eq!(
        t.metadata().current_schema().as_struct(),
        wanted.as_struct()
    );
}

#[tokio::test]
async fn a_json_table_evolves_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, cfg) = sql_catalog(dir.path()).await;
    let v1 = r#"{"type":"object","properties":{"path":{"type":"string"},
        "at":{"type":"string","format":"date-time"}},"required":["path"]}"#;
    let v2 = r#"{"type":"object","properties":{"path":{"type":"string"},
        "at":{"type":"string","format":"date-time"},"status":{"type":"integer"}},"required":["path"]}"#;
    let spec = spec("http");
    let feed = |text| FeedSchema {
        format: Format::Json,
        text,
    };
    let t = open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed(v1)))
        .await
        .unwrap();
    let rows = vec![
        row(
            0,
            None,
            br#"{"path":"/a","at":"2024-05-01T10:00:00Z"}"#.to_vec(),
        ),
        row(1, None, br#"{"path":"/b","status":200}"#.to_vec()),
    ];
    assert_eq!(write(&catalog, &t, ValueFormat::Json, rows).await, 0);
    let t = open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed(v2)))
        .await
        .unwrap();
    let rows = vec![
        row(2, None, br#"{"path":"/c","status":404}"#.to_vec()),
        row(3, None, br#"{"path":"/d","status":"teapot"}"#.to_vec()),
    ];
    assert_eq!(write(&catalog, &t, ValueFormat::Json, rows).await, 1);
    let cols = ["sluice_offset", "path", "at", "status"];
    let got: Vec<Value> = read(&catalog, &t, &cols, None, 0)
        .await
        .into_iter()
        .map(|r| json!([r["path"], r["at"], r["status"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["/a", "2024-05-01T10:00:00", null]),
            // Written before the table had the column: the field was left out.
            json!(["/b", null, null]),
            json!(["/c", null, 404]),
            json!([null, null, null]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_evolving_at_once_on_the_java_rest_catalog_add_the_columns_once() {
    let dir = tempfile::tempdir().unwrap();
    let rest = IcebergRest::start(&dir.path().join("rest"));
    let warehouse = format!("file://{}", rest.warehouse().display());
    let cfg =
        CatalogConfig::new(&rest.uri(), &warehouse, std::collections::HashMap::new()).unwrap();
    let catalog: Arc<dyn Catalog> = cfg.connect().await.unwrap();
    let spec = spec("dns_rest");
    let (feed1, feed2) = (
        FeedSchema {
            format: Format::Avro,
            text: V1,
        },
        FeedSchema {
            format: Format::Avro,
            text: V2,
        },
    );
    let t = open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed1))
        .await
        .unwrap();
    let Evolution::Add { schema: wanted, .. } =
        table_schema(Format::Avro, V2, Some(t.metadata().current_schema())).unwrap()
    else {
        panic!()
    };
    let (a, b) = tokio::join!(
        evolve(&catalog, t.clone(), &feed2),
        evolve(&catalog, t.clone(), &feed2)
    );
    for t in [a.unwrap(), b.unwrap()] {
        assert_eq!(
            t.metadata().current_schema().as_struct(),
            wanted.as_struct()
        );
    }
    let t = catalog.load_table(&ident(&spec)).await.unwrap();
    assert_eq!(t.metadata().schemas_iter().count(), 2);

    one_v2_row(&catalog, &t).await;
}

/// Writes one V2 row into the evolved table `t` and reads it back.
async fn one_v2_row(catalog: &Arc<dyn Catalog>, t: &Table) {
    let v2 = Arc::new(apache_avro::Schema::parse_str(V2).unwrap());
    let fields = vec![
        ("query", s("q0.example")),
        ("at", Avro::TimestampMillis(1_714_557_600_000)),
        (
            "client",
            Avro::Record(vec![
                ("ip".into(), s("10.0.0.9")),
                ("port".into(), Avro::Union(0, Box::new(Avro::Null))),
            ]),
        ),
        ("answers", Avro::Union(0, Box::new(Avro::Null))),
        ("resolver", Avro::Union(1, Box::new(s("ns1")))),
    ];
    let values = {
        let v2 = v2.clone();
        ValueFormat::Avro(Arc::new(move |_| Some(v2.clone())))
    };
    let rows = vec![row(0, Some(2), avro(&v2, 2, fields))];
    assert_eq!(write(catalog, t, values, rows).await, 0);
    assert_eq!(
        read(
            catalog,
            t,
            &["sluice_offset", "client", "resolver"],
            None,
            0
        )
        .await,
        [json!({"sluice_offset":0,"client":{"ip":"10.0.0.9"},"resolver":"ns1"})]
    );
}

#[tokio::test]
async fn a_table_with_timestamps_is_created_and_evolved_on_glue() {
    let moto = Moto::start();
    let (catalog, cfg) = glue_catalog(&moto).await;
    let spec = spec("dns_glue");
    for text in [V1, V2] {
        let feed = FeedSchema {
            format: Format::Avro,
            text,
        };
        open_or_create_with(&catalog, &cfg, &spec, TOPIC, Some(&feed))
            .await
            .unwrap();
    }
    let t = catalog.load_table(&ident(&spec)).await.unwrap();
    assert!(t
        .metadata()
        .current_schema()
        .field_by_name("client.port")
        .is_some());
    one_v2_row(&catalog, &t).await;
}
