//! Values to columns: JSON, framed JSON and Avro values with their exact column values,
//! and the rows that get null columns instead of failing the batch.

use std::collections::HashMap;

use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use arrow_array::Array;
use bytes::Bytes;
use iceberg::arrow::schema_to_arrow_schema;
use serde_json::json;

use super::*;
use crate::evolution::new_table;

fn row(offset: i64, value: Option<Vec<u8>>) -> Row {
    Row {
        partition: 0,
        offset,
        timestamp_ms: 1_700_000_000_000,
        key: None,
        value: value.map(Bytes::from),
        headers: vec![],
        schema_id: Some(1),
        principal: None,
    }
}

fn arrow_schema(format: Format, text: &str) -> Arc<ArrowSchema> {
    Arc::new(schema_to_arrow_schema(&new_table(format, text).unwrap()).unwrap())
}

/// The batch's rows as JSON objects (arrow-json's writer; nulls left out).
fn as_json(batch: &RecordBatch) -> Vec<Value> {
    let mut w = arrow_json::ArrayWriter::new(Vec::new());
    w.write(batch).unwrap();
    w.finish().unwrap();
    serde_json::from_slice(&w.into_inner()).unwrap()
}

const JSON_SCHEMA: &str = r#"{"type":"object","properties":{
    "user":{"type":"string"},
    "n":{"type":"integer"},
    "at":{"type":"string","format":"date-time"},
    "tags":{"type":"array","items":{"type":"string"}},
    "geo":{"type":"object","properties":{"lat":{"type":"number"}},"required":["lat"]}}}"#;

#[test]
fn json_values_become_columns_and_misfits_become_null_rows() {
    let schema = arrow_schema(Format::Json, JSON_SCHEMA);
    let rows = vec![
        row(
            0,
            Some(
                br#"{"user":"ann","n":3,"at":"2024-05-01T12:00:00+02:00","tags":["a","b"],"geo":{"lat":1.5},"extra":true}"#
                    .to_vec(),
            ),
        ),
        row(1, Some(br#"{"user":"bob"}"#.to_vec())),
        row(2, Some(br#"{"user":"carl","n":"many"}"#.to_vec())),
        row(3, Some(b"not json".to_vec())),
        row(4, Some(b"[1,2]".to_vec())),
        row(5, None),
        row(6, Some(br#"{"geo":{}}"#.to_vec())),
    ];
    let (batch, undecoded) = schema_batch(&schema, "t", &rows, &ValueFormat::Json).unwrap();
    assert_eq!(undecoded, 5);
    assert_eq!(batch.num_rows(), 7);
    let out = as_json(&batch);
    let user = |i: usize| {
        let mut o = out[i].as_object().unwrap().clone();
        o.retain(|k, _| !k.starts_with("sluice_"));
        Value::Object(o)
    };
    assert_eq!(
        user(0),
        json!({"user":"ann","n":3,"at":"2024-05-01T10:00:00","tags":["a","b"],"geo":{"lat":1.5}})
    );
    assert_eq!(user(1), json!({"user":"bob"}));
    for i in 2..7 {
        assert_eq!(user(i), json!({}), "row {i}");
    }
    // Lineage is kept for every row.
    assert_eq!(out[6]["sluice_offset"], json!(6));
    assert_eq!(out[3]["sluice_topic"], json!("t"));
    assert_eq!(batch.schema(), schema);
}

#[test]
fn json_schema_values_are_framed() {
    let schema = arrow_schema(Format::JsonSchema, JSON_SCHEMA);
    let rows = vec![
        row(0, Some(wire::frame(7, br#"{"user":"ann"}"#))),
        row(1, Some(br#"{"user":"unframed"}"#.to_vec())),
    ];
    let (batch, undecoded) = schema_batch(&schema, "t", &rows, &ValueFormat::JsonSchema).unwrap();
    assert_eq!(undecoded, 1);
    let users = batch.column_by_name("user").unwrap();
    assert!(users.is_valid(0) && users.is_null(1));
}

const AVRO: &str = r#"{"type":"record","name":"E","fields":[
    {"name":"id","type":{"type":"string","logicalType":"uuid"}},
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"day","type":{"type":"int","logicalType":"date"}},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
    {"name":"raw","type":"bytes"},
    {"name":"level","type":{"type":"enum","name":"L","symbols":["INFO","WARN"]}},
    {"name":"note","type":["null","string"],"default":null},
    {"name":"src","type":{"type":"record","name":"S","fields":[{"name":"ip","type":"string"}]}},
    {"name":"ports","type":{"type":"array","items":"int"}},
    {"name":"labels","type":{"type":"map","values":"long"}}]}"#;

fn avro_value(note: Option<&str>) -> Avro {
    Avro::Record(vec![
        (
            "id".into(),
            Avro::Uuid("6a2f41a3-c54c-fce8-32d2-0324e1c32e22".parse().unwrap()),
        ),
        ("at".into(), Avro::TimestampMillis(1_714_557_600_250)),
        ("day".into(), Avro::Date(19_844)),
        (
            "price".into(),
            Avro::Decimal(apache_avro::Decimal::from([0x30, 0x39])),
        ),
        ("raw".into(), Avro::Bytes(vec![0xde, 0xad])),
        ("level".into(), Avro::Enum(1, "WARN".into())),
        (
            "note".into(),
            match note {
                Some(n) => Avro::Union(1, Box::new(Avro::String(n.into()))),
                None => Avro::Union(0, Box::new(Avro::Null)),
            },
        ),
        (
            "src".into(),
            Avro::Record(vec![("ip".into(), Avro::String("10.0.0.1".into()))]),
        ),
        (
            "ports".into(),
            Avro::Array(vec![Avro::Int(53), Avro::Int(443)]),
        ),
        (
            "labels".into(),
            Avro::Map(HashMap::from([("k".to_string(), Avro::Long(9))])),
        ),
    ])
}

#[test]
fn avro_values_decode_with_the_schema_of_their_id() {
    let parsed = Arc::new(apache_avro::Schema::parse_str(AVRO).unwrap());
    let datum = |v: Avro| {
        GenericDatumWriter::builder(&parsed)
            .build()
            .unwrap()
            .write_value_to_vec(v)
            .unwrap()
    };
    let schemas: AvroSchemas = {
        let parsed = parsed.clone();
        Arc::new(move |id| (id == 1).then(|| parsed.clone()))
    };
    let schema = arrow_schema(Format::Avro, AVRO);
    let rows = vec![
        row(0, Some(wire::frame(1, &datum(avro_value(Some("hi")))))),
        row(1, Some(wire::frame(1, &datum(avro_value(None))))),
        row(2, Some(wire::frame(2, &datum(avro_value(None))))),
        row(3, Some(wire::frame(1, &[0x02]))),
    ];
    let (batch, undecoded) =
        schema_batch(&schema, "t", &rows, &ValueFormat::Avro(schemas)).unwrap();
    assert_eq!(undecoded, 2, "unknown id and a short datum");
    let out = as_json(&batch);
    let want = json!({
        "id": "6a2f41a3-c54c-fce8-32d2-0324e1c32e22",
        "at": "2024-05-01T10:00:00.250",
        "day": "2024-05-01",
        "price": 123.45,
        "raw": "dead",
        "level": "WARN",
        "note": "hi",
        "src": {"ip": "10.0.0.1"},
        "ports": [53, 443],
        "labels": {"k": 9},
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&out[0][k], v, "{k}");
    }
    assert!(out[1].get("note").is_none());
    assert_eq!(out[1]["price"], json!(123.45));
    assert!(out[2].get("id").is_none() && out[3].get("id").is_none());
}
