//! The compatibility table: each level against evolutions of an Avro and a JSON schema, and
//! the JSON Schema rules one by one.

use super::*;
use crate::stored::{SchemaType, StoredSchema};

fn avro(fields: &str) -> StoredSchema {
    let text = format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#);
    StoredSchema::parse(SchemaType::Avro, &text).unwrap()
}

fn json(text: &str) -> StoredSchema {
    StoredSchema::parse(SchemaType::Json, text).unwrap()
}

fn ok(level: Compatibility, new: &StoredSchema, old: &[&StoredSchema]) -> bool {
    let existing: Vec<(i32, &StoredSchema)> = old
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i32 + 1, *s))
        .collect();
    check(level, new, &existing).is_empty()
}

#[test]
fn avro_levels() {
    use Compatibility::*;
    let a = avro(r#"{"name":"a","type":"long"}"#);
    // Added with a default: new reads old (backward) and old reads new (forward).
    let ab_default =
        avro(r#"{"name":"a","type":"long"},{"name":"b","type":"string","default":"x"}"#);
    // Added without a default: old data lacks it (not backward); old readers ignore it (forward).
    let ab = avro(r#"{"name":"a","type":"long"},{"name":"b","type":"string"}"#);
    // Removed field without default in old: old readers miss it (not forward); backward fine.
    let none = avro("");
    let table = [
        (&ab_default, [true, true, true]), // backward, forward, full
        (&ab, [false, true, false]),
        (&none, [true, false, false]),
    ];
    for (new, [b, f, full]) in table {
        assert_eq!(ok(Backward, new, &[&a]), b, "{}", new.schema);
        assert_eq!(ok(Forward, new, &[&a]), f, "{}", new.schema);
        assert_eq!(ok(Full, new, &[&a]), full, "{}", new.schema);
        assert!(ok(None, new, &[&a]));
    }
    // int → long is a promotion the reader can do; long → int is not.
    let int = avro(r#"{"name":"a","type":"int"}"#);
    assert!(ok(Backward, &a, &[&int]));
    assert!(!ok(Backward, &int, &[&a]));
    // An enum that loses a symbol cannot read old data.
    let e2 = StoredSchema::parse(
        SchemaType::Avro,
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
    )
    .unwrap();
    let e1 = StoredSchema::parse(
        SchemaType::Avro,
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
    )
    .unwrap();
    assert!(!ok(Backward, &e1, &[&e2]));
    assert!(ok(Backward, &e2, &[&e1]));
}

#[test]
fn transitive_levels_check_every_version() {
    use Compatibility::*;
    // v1 has b without default, v2 drops b, v3 adds b back with a different type.
    let v1 = avro(r#"{"name":"b","type":"string"}"#);
    let v2 = avro("");
    let v3 = avro(r#"{"name":"b","type":"long","default":0}"#);
    // v3 reads v2 (b defaults) but not v1 (string → long).
    assert!(ok(Backward, &v3, &[&v1, &v2]));
    assert!(!ok(BackwardTransitive, &v3, &[&v1, &v2]));
    let msgs = check(BackwardTransitive, &v3, &[(1, &v1), (2, &v2)]);
    assert!(
        msgs.iter().any(|m| m == "{oldSchemaVersion: 1}"),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("BACKWARD_TRANSITIVE")),
        "{msgs:?}"
    );
    // Forward transitive: v1 readers need b, which v2 lacks.
    assert!(!ok(ForwardTransitive, &v2, &[&v1]));
    assert!(!ok(FullTransitive, &v3, &[&v1, &v2]));
    assert!(ok(Full, &v3, &[&v1, &v2]));
}

#[test]
fn schema_type_change_is_incompatible() {
    let a = avro(r#"{"name":"a","type":"long"}"#);
    let j = json(r#"{"type":"object"}"#);
    assert!(!ok(Compatibility::Backward, &j, &[&a]));
    assert!(ok(Compatibility::None, &j, &[&a]));
}

/// (old, new, backward-compatible, rule expected in the messages when not)
const JSON_RULES: &[(&str, &str, bool, &str)] = &[
    // Closed content model: an optional property may be added.
    (
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false}"#,
        true,
        "",
    ),
    // Open content model: adding a typed property is not, old data may have any "b".
    (
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#,
        false,
        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    // ... unless its schema accepts anything.
    (
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"},"b":{}}}"#,
        true,
        "",
    ),
    // Removing a property from an open model is fine; from a closed one it is not.
    (
        r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
        true,
        "",
    ),
    (
        r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
        false,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    // Closing an open model narrows it; opening a closed one widens it.
    (
        r#"{"type":"object"}"#,
        r#"{"type":"object","additionalProperties":false}"#,
        false,
        "ADDITIONAL_PROPERTIES_REMOVED",
    ),
    (
        r#"{"type":"object","additionalProperties":false}"#,
        r#"{"type":"object"}"#,
        true,
        "",
    ),
    // Partially open: a property covered by the old additionalProperties may be added.
    (
        r#"{"type":"object","additionalProperties":{"type":"string"}}"#,
        r#"{"type":"object","properties":{"x":{"type":"string"}},"additionalProperties":{"type":"string"}}"#,
        true,
        "",
    ),
    (
        r#"{"type":"object","additionalProperties":{"type":"string"}}"#,
        r#"{"type":"object","properties":{"x":{"type":"integer"}},"additionalProperties":{"type":"string"}}"#,
        false,
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    ),
    // Required: adding one is incompatible, unless it has a default; dropping one is fine.
    (
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
        false,
        "REQUIRED_ATTRIBUTE_ADDED",
    ),
    (
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"a":{"type":"string","default":"x"}},"required":["a"]}"#,
        true,
        "",
    ),
    (
        r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
        r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
        true,
        "",
    ),
    // Types: integer → number widens, number → integer narrows, string → integer changes.
    (r#"{"type":"integer"}"#, r#"{"type":"number"}"#, true, ""),
    (
        r#"{"type":"number"}"#,
        r#"{"type":"integer"}"#,
        false,
        "TYPE_CHANGED",
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"type":["string","null"]}"#,
        true,
        "",
    ),
    (
        r#"{"type":["string","null"]}"#,
        r#"{"type":"string"}"#,
        false,
        "TYPE_NARROWED",
    ),
    (r#"{}"#, r#"{"type":"string"}"#, false, "TYPE_NARROWED"),
    // Enums: adding items widens, removing narrows.
    (
        r#"{"enum":["a","b"]}"#,
        r#"{"enum":["a","b","c"]}"#,
        true,
        "",
    ),
    (
        r#"{"enum":["a","b"]}"#,
        r#"{"enum":["a"]}"#,
        false,
        "ENUM_ARRAY_NARROWED",
    ),
    // Bounds.
    (
        r#"{"type":"string","maxLength":5}"#,
        r#"{"type":"string","maxLength":10}"#,
        true,
        "",
    ),
    (
        r#"{"type":"string","maxLength":10}"#,
        r#"{"type":"string","maxLength":5}"#,
        false,
        "MAX_LENGTH_DECREASED",
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"type":"string","maxLength":5}"#,
        false,
        "MAX_LENGTH_ADDED",
    ),
    (
        r#"{"type":"string","minLength":2}"#,
        r#"{"type":"string"}"#,
        true,
        "",
    ),
    (
        r#"{"type":"integer","minimum":0}"#,
        r#"{"type":"integer","minimum":1}"#,
        false,
        "MINIMUM_INCREASED",
    ),
    (
        r#"{"type":"integer"}"#,
        r#"{"type":"integer","minimum":0}"#,
        false,
        "MINIMUM_ADDED",
    ),
    (
        r#"{"type":"integer","maximum":9}"#,
        r#"{"type":"integer"}"#,
        true,
        "",
    ),
    (
        r#"{"type":"integer","multipleOf":4}"#,
        r#"{"type":"integer","multipleOf":2}"#,
        true,
        "",
    ),
    (
        r#"{"type":"integer","multipleOf":2}"#,
        r#"{"type":"integer","multipleOf":4}"#,
        false,
        "MULTIPLE_OF_CHANGED",
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"type":"string","pattern":"^a"}"#,
        false,
        "PATTERN_ADDED",
    ),
    // Arrays and nesting.
    (
        r#"{"type":"array","items":{"type":"integer"}}"#,
        r#"{"type":"array","items":{"type":"number"}}"#,
        true,
        "",
    ),
    (
        r#"{"type":"array","items":{"type":"number"}}"#,
        r#"{"type":"array","items":{"type":"integer"}}"#,
        false,
        "TYPE_CHANGED",
    ),
    (
        r#"{"type":"array"}"#,
        r#"{"type":"array","uniqueItems":true}"#,
        false,
        "UNIQUE_ITEMS_ADDED",
    ),
    // Sum types.
    (
        r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"null"}]}"#,
        true,
        "",
    ),
    (
        r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"oneOf":[{"type":"string"}]}"#,
        false,
        "SUM_TYPE_NARROWED",
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#,
        true,
        "",
    ),
    // Local references are followed.
    (
        r##"{"$defs":{"n":{"type":"integer"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"}}}"##,
        r##"{"$defs":{"n":{"type":"number"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"}}}"##,
        true,
        "",
    ),
    (
        r##"{"$defs":{"n":{"type":"number"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"}}}"##,
        r##"{"$defs":{"n":{"type":"integer"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"}}}"##,
        false,
        "TYPE_CHANGED",
    ),
    // Annotations never matter.
    (
        r#"{"type":"string","description":"x"}"#,
        r#"{"type":"string","title":"y","description":"z"}"#,
        true,
        "",
    ),
];

#[test]
fn json_schema_rules() {
    for (old, new, compatible, rule) in JSON_RULES {
        let msgs = check(Compatibility::Backward, &json(new), &[(1, &json(old))]);
        assert_eq!(msgs.is_empty(), *compatible, "{old} -> {new}: {msgs:?}");
        if !compatible {
            assert!(
                msgs.iter().any(|m| m.contains(rule)),
                "{old} -> {new}: want {rule} in {msgs:?}"
            );
        }
    }
}

#[test]
fn json_messages_name_the_property() {
    let old = json(r#"{"type":"object","properties":{"age":{"type":"number"}}}"#);
    let new = json(r#"{"type":"object","properties":{"age":{"type":"integer"}}}"#);
    let msgs = check(Compatibility::Backward, &new, &[(3, &old)]);
    assert!(
        msgs[0].contains("TYPE_CHANGED") && msgs[0].contains("#/properties/age"),
        "{msgs:?}"
    );
    assert_eq!(msgs[1], "{oldSchemaVersion: 3}");
    // Forward swaps the roles: the old schema must read what the new one allows.
    assert!(check(Compatibility::Forward, &new, &[(3, &old)]).is_empty());
    assert!(!check(Compatibility::Full, &new, &[(3, &old)]).is_empty());
}

#[test]
fn recursive_json_schemas_terminate() {
    let tree = r##"{"$defs":{"t":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/t"}}}}},"$ref":"#/$defs/t"}"##;
    assert!(check(Compatibility::Full, &json(tree), &[(1, &json(tree))]).is_empty());
}

#[test]
fn levels_parse_case_insensitively() {
    assert_eq!(
        Compatibility::parse("backward_transitive"),
        Some(Compatibility::BackwardTransitive)
    );
    assert_eq!(Compatibility::parse("FULL"), Some(Compatibility::Full));
    assert_eq!(Compatibility::parse("sideways"), Option::None);
    assert_eq!(
        serde_json::to_string(&Compatibility::ForwardTransitive).unwrap(),
        "\"FORWARD_TRANSITIVE\""
    );
}
