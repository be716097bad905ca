//! The validator: one test per reason, and the happy paths of each format and level.

use super::*;
use crate::wire::frame;

const AVRO: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"s","type":"string"}]}"#;
const JSON: &str = r#"{"type":"object","properties":{"n":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["n"]}"#;

fn registry() -> Registry {
    let mut r = Registry::default();
    assert_eq!(r.register("a", SchemaType::Avro, AVRO).unwrap(), 1);
    assert_eq!(r.register("j", SchemaType::Json, JSON).unwrap(), 2);
    assert_eq!(
        r.register("other", SchemaType::Json, r#"{"type":"string"}"#)
            .unwrap(),
        3
    );
    r
}

fn reason(v: &Validator, value: Option<&[u8]>) -> Reason {
    v.validate(value).unwrap_err().reason
}

/// Avro datum for {a: 1, s: "hi"}: zigzag long 1 = 0x02, string length 2 = 0x04, "hi".
const DATUM: &[u8] = &[0x02, 0x04, b'h', b'i'];

#[test]
fn avro_full_and_id() {
    let r = registry();
    let full = Validator::for_subject(&r, "a", None, Format::Avro, Level::Full).unwrap();
    assert_eq!(full.validate(Some(&frame(1, DATUM))), Ok(1));
    assert_eq!(reason(&full, None), Reason::NoValue);
    assert_eq!(reason(&full, Some(&[0, 0])), Reason::Framing);
    assert_eq!(reason(&full, Some(&frame(1, DATUM)[..4])), Reason::Framing);
    let mut bad_magic = frame(1, DATUM);
    bad_magic[0] = 1;
    let e = full.validate(Some(&bad_magic)).unwrap_err();
    assert_eq!((e.reason, e.schema_id), (Reason::Framing, None));
    assert!(e.detail.contains("magic"), "{}", e.detail);
    assert_eq!(reason(&full, Some(&frame(77, DATUM))), Reason::UnknownId);
    let e = full.validate(Some(&frame(2, b"{}"))).unwrap_err();
    assert_eq!((e.reason, e.schema_id), (Reason::WrongSubject, Some(2)));
    // Truncated datum, and a datum with trailing bytes.
    assert_eq!(reason(&full, Some(&frame(1, &DATUM[..3]))), Reason::Decode);
    let mut long = DATUM.to_vec();
    long.push(0);
    let e = full.validate(Some(&frame(1, &long))).unwrap_err();
    assert_eq!((e.reason, e.schema_id), (Reason::Decode, Some(1)));
    assert!(e.detail.contains("trailing"), "{}", e.detail);
    // Id level: the payload is not looked at.
    let id = Validator::for_subject(&r, "a", None, Format::Avro, Level::Id).unwrap();
    assert_eq!(id.validate(Some(&frame(1, b"garbage"))), Ok(1));
    assert_eq!(reason(&id, Some(&frame(2, b""))), Reason::WrongSubject);
}

#[test]
fn json_schema_framed() {
    let r = registry();
    let v = Validator::for_subject(&r, "j", None, Format::JsonSchema, Level::Full).unwrap();
    assert_eq!(
        v.validate(Some(&frame(2, br#"{"n":1,"tags":["x"]}"#))),
        Ok(2)
    );
    assert_eq!(reason(&v, Some(&frame(2, b"{\"n\":"))), Reason::NotJson);
    let e = v
        .validate(Some(&frame(2, br#"{"n":1,"tags":["x",5]}"#)))
        .unwrap_err();
    assert_eq!((e.reason, e.schema_id), (Reason::Schema, Some(2)));
    assert!(e.detail.starts_with("/tags/1"), "{}", e.detail);
    let e = v.validate(Some(&frame(2, br#"{"tags":[]}"#))).unwrap_err();
    assert!(e.detail.contains('n'), "{}", e.detail);
    assert_eq!(reason(&v, Some(&frame(3, b"\"s\""))), Reason::WrongSubject);
    assert_eq!(reason(&v, Some(&frame(9, b"{}"))), Reason::UnknownId);
}

#[test]
fn plain_json_validates_against_the_latest() {
    let mut r = registry();
    // A second version that also requires tags (compatibility off for the test).
    r.set_compatibility(Some("j"), crate::compat::Compatibility::None);
    let v2 = r#"{"type":"object","required":["n","tags"]}"#;
    assert_eq!(r.register("j", SchemaType::Json, v2).unwrap(), 4);
    let v = Validator::for_subject(&r, "j", None, Format::Json, Level::Full).unwrap();
    assert_eq!(reason(&v, Some(br#"{"n":1}"#)), Reason::Schema);
    assert_eq!(v.validate(Some(br#"{"n":1,"tags":[]}"#)), Ok(4));
    assert_eq!(reason(&v, Some(b"not json")), Reason::NotJson);
    assert_eq!(reason(&v, None), Reason::NoValue);
    // Pinned to version 1: validated against that one.
    let v1 = Validator::for_subject(&r, "j", Some(1), Format::Json, Level::Full).unwrap();
    assert_eq!(v1.validate(Some(br#"{"n":1}"#)), Ok(2));
    // Id level: JSON syntax only.
    let id = Validator::for_subject(&r, "j", None, Format::Json, Level::Id).unwrap();
    assert_eq!(id.validate(Some(br#"{"x":true}"#)), Ok(4));
    assert_eq!(reason(&id, Some(b"{")), Reason::NotJson);
}

#[test]
fn new_without_known_ids_says_wrong_subject() {
    let s = StoredSchema::parse(SchemaType::Json, JSON).unwrap();
    let v = Validator::new(Format::JsonSchema, Level::Full, vec![(5, s.clone())]).unwrap();
    assert_eq!(reason(&v, Some(&frame(6, b"{}"))), Reason::WrongSubject);
    let v = v.with_known_ids([5]);
    assert_eq!(reason(&v, Some(&frame(6, b"{}"))), Reason::UnknownId);
    // Schemas that do not suit the format, or none at all, are refused.
    assert!(Validator::new(Format::Avro, Level::Full, vec![(5, s)]).is_err());
    assert!(Validator::new(Format::Json, Level::Full, vec![]).is_err());
    assert!(
        Validator::for_subject(&registry(), "missing", None, Format::Json, Level::Full).is_err()
    );
}

#[test]
fn details_are_short() {
    let long_schema = r#"{"type":"object","properties":{"k":{"enum":["a"]}}}"#;
    let s = StoredSchema::parse(SchemaType::Json, long_schema).unwrap();
    let v = Validator::new(Format::Json, Level::Full, vec![(1, s)]).unwrap();
    let value = format!(r#"{{"k":"{}"}}"#, "x".repeat(1000));
    let e = v.validate(Some(value.as_bytes())).unwrap_err();
    assert_eq!(e.reason, Reason::Schema);
    assert!(e.detail.len() <= MAX_DETAIL + 3, "{}", e.detail.len());
}

#[test]
fn labels_and_parsing() {
    let all = [
        Reason::NoValue,
        Reason::Framing,
        Reason::UnknownId,
        Reason::WrongSubject,
        Reason::Decode,
        Reason::Schema,
        Reason::NotJson,
    ];
    let labels: Vec<&str> = all.iter().map(Reason::label).collect();
    assert_eq!(
        labels,
        [
            "no_value",
            "framing",
            "unknown_id",
            "wrong_subject",
            "decode",
            "schema",
            "not_json"
        ]
    );
    assert_eq!("json-schema".parse::<Format>(), Ok(Format::JsonSchema));
    assert_eq!("avro".parse::<Format>(), Ok(Format::Avro));
    assert_eq!("json".parse::<Format>(), Ok(Format::Json));
    assert!("xml".parse::<Format>().is_err());
    assert_eq!("full".parse::<Level>(), Ok(Level::Full));
    assert_eq!("id".parse::<Level>(), Ok(Level::Id));
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Validator>();
}
