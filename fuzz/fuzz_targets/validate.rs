//! Arbitrary bytes as a record value, through the produce path's schema validators: Avro and
//! JSON Schema (framed) and plain JSON, each at the full and the id level, built once from a
//! small registry. Any panic is a finding: in the broker it would kill a produce request's task.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_schema::registry::{Registry, SchemaType};
use sluice_schema::validate::{Format, Level, Validator};

const AVRO: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"a","type":"long"},{"name":"s","type":"string"},{"name":"b","type":"bytes"},
  {"name":"xs","type":{"type":"array","items":"int"}},{"name":"m","type":{"type":"map","values":"double"}},
  {"name":"u","type":["null","string",{"type":"enum","name":"E","symbols":["X","Y"]}]},
  {"name":"f","type":{"type":"fixed","name":"F","size":4}}]}"#;
const JSON: &str = r##"{"type":"object","properties":{"n":{"type":"integer","minimum":0},
  "tags":{"type":"array","items":{"type":"string","maxLength":8}},"o":{"$ref":"#"}},"required":["n"]}"##;

fn validators() -> &'static Vec<Validator> {
    static V: OnceLock<Vec<Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let mut r = Registry::default();
        r.register("a", SchemaType::Avro, AVRO).unwrap();
        r.register("j", SchemaType::Json, JSON).unwrap();
        let mut out = Vec::new();
        for level in [Level::Full, Level::Id] {
            out.push(Validator::for_subject(&r, "a", None, Format::Avro, level).unwrap());
            out.push(Validator::for_subject(&r, "j", None, Format::JsonSchema, level).unwrap());
            out.push(Validator::for_subject(&r, "j", None, Format::Json, level).unwrap());
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    for v in validators() {
        if let Err(e) = v.validate(Some(data)) {
            assert!(e.detail.len() <= 210, "detail too long: {}", e.detail.len());
        }
    }
});
