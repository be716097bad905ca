//! The evolution decisions, one rule a test, on Avro and JSON Schema versions.

use super::*;
use crate::columns::raw_schema;
use iceberg::spec::PrimitiveType;

fn avro(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Event","fields":[{fields}]}}"#)
}

const V1: &str = r#"{"name":"host","type":"string"},
    {"name":"n","type":"long"},
    {"name":"s","type":{"type":"record","name":"S","fields":[
        {"name":"a","type":"int"},{"name":"b","type":["null","string"]}]}},
    {"name":"l","type":{"type":"array","items":{"type":"record","name":"I","fields":[
        {"name":"x","type":"int"}]}}}"#;

fn created(fields: &str) -> Schema {
    match table_schema(Format::Avro, &avro(fields), None).unwrap() {
        Evolution::Create(s) => s,
        other => panic!("{other:?}"),
    }
}

fn evolve(table: &Schema, fields: &str) -> Result<Evolution> {
    table_schema(Format::Avro, &avro(fields), Some(table))
}

fn id(schema: &Schema, path: &str) -> i32 {
    schema
        .field_by_name(path)
        .unwrap_or_else(|| panic!("{path}"))
        .id
}

fn reason(e: LakeError) -> String {
    match e {
        LakeError::Incompatible { reason, .. } => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_new_table_has_lineage_then_optional_fields_numbered_as_iceberg_does() {
    let s = created(V1);
    let names: Vec<&str> = s
        .as_struct()
        .fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "sluice_topic",
            "sluice_partition",
            "sluice_offset",
            "sluice_timestamp",
            "sluice_schema_id",
            "sluice_principal",
            "host",
            "n",
            "s",
            "l"
        ]
    );
    for (i, l) in lineage_fields().iter().enumerate() {
        assert_eq!(s.as_struct().fields()[i].as_ref(), l);
    }
    // A level's fields first, then what is inside each, as iceberg-rust reassigns.
    assert_eq!(
        [id(&s, "host"), id(&s, "n"), id(&s, "s"), id(&s, "l")],
        [7, 8, 9, 10]
    );
    assert_eq!([id(&s, "s.a"), id(&s, "s.b")], [11, 12]);
    assert_eq!([id(&s, "l.element"), id(&s, "l.element.x")], [13, 14]);
    assert!(!s.field_by_name("host").unwrap().required);
    assert!(s.field_by_name("s.a").unwrap().required);
    assert!(!s.field_by_name("s.b").unwrap().required);
}

#[test]
fn the_same_schema_again_changes_nothing() {
    let s = created(V1);
    assert_eq!(evolve(&s, V1).unwrap(), Evolution::Same);
    // Field order does not matter: columns are matched by name.
    let reordered = r#"{"name":"n","type":"long"},{"name":"host","type":"string"},
        {"name":"s","type":{"type":"record","name":"S","fields":[
            {"name":"b","type":["null","string"]},{"name":"a","type":"int"}]}},
        {"name":"l","type":{"type":"array","items":{"type":"record","name":"I","fields":[
            {"name":"x","type":"int"}]}}}"#;
    assert_eq!(evolve(&s, reordered).unwrap(), Evolution::Same);
}

#[test]
fn new_fields_are_added_optional_with_ids_above_the_table() {
    let s = created(V1);
    let v2 = r#"{"name":"host","type":"string"},
        {"name":"n","type":"long"},
        {"name":"s","type":{"type":"record","name":"S","fields":[
            {"name":"a","type":"int"},{"name":"b","type":["null","string"]},
            {"name":"c","type":"double"}]}},
        {"name":"l","type":{"type":"array","items":{"type":"record","name":"I","fields":[
            {"name":"x","type":"int"},{"name":"y","type":"string"}]}}},
        {"name":"geo","type":{"type":"record","name":"G","fields":[
            {"name":"lat","type":"double"},{"name":"tags","type":{"type":"map","values":"string"}}]}}"#;
    let Evolution::Add { columns, schema } = evolve(&s, v2).unwrap() else {
        panic!()
    };
    let added: Vec<(Option<&str>, &str, i32, bool)> = columns
        .iter()
        .map(|c| {
            (
                c.parent.as_deref(),
                c.field.name.as_str(),
                c.field.id,
                c.field.required,
            )
        })
        .collect();
    assert_eq!(
        added,
        [
            (Some("s"), "c", 15, false),
            (Some("l.element"), "y", 16, false),
            (None, "geo", 17, false),
        ]
    );
    // Inside a new column: each field followed by its insides, as the add-column
    // action numbers them; requiredness inside is the schema's.
    assert_eq!(
        [
            id(&schema, "geo.lat"),
            id(&schema, "geo.tags"),
            id(&schema, "geo.tags.key"),
            id(&schema, "geo.tags.value")
        ],
        [18, 19, 20, 21]
    );
    assert!(schema.field_by_name("geo.lat").unwrap().required);
    // Existing columns keep their ids.
    for path in ["host", "s", "s.a", "l.element.x"] {
        assert_eq!(id(&schema, path), id(&s, path), "{path}");
    }
    assert_eq!(evolve(&schema, v2).unwrap(), Evolution::Same);
}

#[test]
fn a_dropped_optional_field_keeps_its_column() {
    let s = created(V1);
    let without_host_and_b = r#"{"name":"n","type":"long"},
        {"name":"s","type":{"type":"record","name":"S","fields":[{"name":"a","type":"int"}]}},
        {"name":"l","type":{"type":"array","items":{"type":"record","name":"I","fields":[
            {"name":"x","type":"int"}]}}}"#;
    assert_eq!(evolve(&s, without_host_and_b).unwrap(), Evolution::Same);
    // A required nested column could not be filled: refused.
    let without_a = r#"{"name":"s","type":{"type":"record","name":"S","fields":[
        {"name":"b","type":["null","string"]}]}}"#;
    let r = reason(evolve(&s, without_a).unwrap_err());
    assert!(r.contains("\"s.a\"") && r.contains("required"), "{r}");
}

#[test]
fn a_changed_type_is_refused_naming_the_column_and_both_types() {
    let s = created(V1);
    let r = reason(evolve(&s, r#"{"name":"n","type":"string"}"#).unwrap_err());
    assert!(
        r.contains("\"n\"") && r.contains("long") && r.contains("string"),
        "{r}"
    );
    // Widening is legal Iceberg but iceberg-rust 0.10.1 cannot do it.
    let ints = created(r#"{"name":"i","type":"int"},{"name":"f","type":"float"}"#);
    let r = reason(evolve(&ints, r#"{"name":"i","type":"long"}"#).unwrap_err());
    assert!(
        r.contains("\"i\"") && r.contains("int") && r.contains("long"),
        "{r}"
    );
    let r = reason(evolve(&ints, r#"{"name":"f","type":"double"}"#).unwrap_err());
    assert!(r.contains("\"f\"") && r.contains("double"), "{r}");
    // A struct is not a list.
    let r =
        reason(evolve(&s, r#"{"name":"s","type":{"type":"array","items":"int"}}"#).unwrap_err());
    assert!(r.contains("\"s\""), "{r}");
    let r = reason(
        evolve(
            &s,
            r#"{"name":"l","type":{"type":"array","items":{"type":"record","name":"I",
                "fields":[{"name":"x","type":"string"}]}}}"#,
        )
        .unwrap_err(),
    );
    assert!(r.contains("\"l.element.x\""), "{r}");
}

#[test]
fn nullability_may_tighten_but_not_loosen() {
    let s = created(V1);
    // s.b optional -> required: the column stays optional; nothing breaks.
    let tighter = r#"{"name":"s","type":{"type":"record","name":"S","fields":[
        {"name":"a","type":"int"},{"name":"b","type":"string"}]}}"#;
    assert_eq!(evolve(&s, tighter).unwrap(), Evolution::Same);
    // s.a required -> optional: the table would need nulls in a required column.
    let looser = r#"{"name":"s","type":{"type":"record","name":"S","fields":[
        {"name":"a","type":["null","int"]},{"name":"b","type":["null","string"]}]}}"#;
    let r = reason(evolve(&s, looser).unwrap_err());
    assert!(r.contains("\"s.a\"") && r.contains("optional"), "{r}");
    // Top-level fields are optional columns, whatever the schema says.
    assert_eq!(
        evolve(&s, r#"{"name":"host","type":["null","string"]}"#).unwrap(),
        Evolution::Same
    );
}

#[test]
fn json_schema_tables_evolve_the_same_way() {
    let v1 = r#"{"type":"object","properties":{"user":{"type":"string"},
        "at":{"type":"string","format":"date-time"}},"required":["user"]}"#;
    let Evolution::Create(s) = table_schema(Format::Json, v1, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        *s.field_by_name("at").unwrap().field_type,
        Type::Primitive(crate::columns::INSTANT)
    );
    assert!(!s.field_by_name("user").unwrap().required);
    let v2 = r#"{"type":"object","properties":{"user":{"type":"string"},
        "at":{"type":"string","format":"date-time"},"bytes":{"type":"integer"}}}"#;
    let Evolution::Add { columns, .. } = table_schema(Format::JsonSchema, v2, Some(&s)).unwrap()
    else {
        panic!()
    };
    assert_eq!(columns.len(), 1);
    assert_eq!(columns[0].field.id, 9);
    let retyped = r#"{"type":"object","properties":{"user":{"type":"integer"}}}"#;
    let r = reason(table_schema(Format::Json, retyped, Some(&s)).unwrap_err());
    assert!(
        r.contains("\"user\"") && r.contains("string") && r.contains("long"),
        "{r}"
    );
}

#[test]
fn names_that_cannot_be_columns_and_foreign_tables_are_refused() {
    let err = table_schema(
        Format::Avro,
        &avro(r#"{"name":"sluice_offset","type":"long"}"#),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, LakeError::Schema(_)), "{err}");
    let dotted = r#"{"type":"object","properties":{"o":{"type":"object","properties":{"a.b":{"type":"string"}}}}}"#;
    let err = table_schema(Format::Json, dotted, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("o.a.b"), "{err}");
    // A raw-mode table has a required headers column the schema does not fill.
    let r = reason(evolve(&raw_schema().unwrap(), V1).unwrap_err());
    assert!(r.contains("headers"), "{r}");
    // A table without the lineage columns.
    let bare = Schema::builder()
        .with_fields([Arc::new(NestedField::optional(
            1,
            "n",
            Type::Primitive(PrimitiveType::Long),
        ))])
        .build()
        .unwrap();
    let r = reason(evolve(&bare, V1).unwrap_err());
    assert!(r.contains("sluice_topic"), "{r}");
}
