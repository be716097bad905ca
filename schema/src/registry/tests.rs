//! Registry semantics: ids, idempotence, versions, soft and permanent deletes, configs.

use super::*;

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":""}]}"#;
const BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"c","type":"string"}]}"#;

fn reg(r: &mut Registry, s: &str, schema: &str) -> i32 {
    r.register(s, SchemaType::Avro, schema).unwrap()
}

#[test]
fn ids_are_global_reused_across_subjects_and_idempotent() {
    let mut r = Registry::default();
    let a = reg(&mut r, "a", V1);
    assert_eq!(a, 1);
    // Same text again: same id, no new version.
    assert_eq!(reg(&mut r, "a", V1), a);
    // Same schema modulo whitespace: still the same schema.
    let spaced = V1.replace(',', " , ");
    assert_eq!(reg(&mut r, "a", &spaced), a);
    assert_eq!(r.versions("a", false).unwrap(), vec![1]);
    // Another subject reuses the global id, at its own version 1.
    assert_eq!(reg(&mut r, "b", V1), a);
    assert_eq!(r.versions("b", false).unwrap(), vec![1]);
    let b = reg(&mut r, "a", V2);
    assert_eq!(b, 2);
    assert_eq!(r.subject_ids("a", None).unwrap(), vec![1, 2]);
    assert_eq!(r.subject_ids("a", Some(1)).unwrap(), vec![1]);
    assert_eq!(r.subject_ids("a", Some(-1)).unwrap(), vec![2]);
    assert_eq!(r.latest_id("a").unwrap(), 2);
    assert_eq!(
        r.versions_for_id(1, false).unwrap(),
        vec![("a".into(), 1), ("b".into(), 1)]
    );
    assert_eq!(r.subjects_for_id(1, false).unwrap(), vec!["a", "b"]);
}

#[test]
fn incompatible_and_invalid_schemas_are_refused_without_change() {
    let mut r = Registry::default();
    reg(&mut r, "s", V1);
    let before = r.clone();
    let e = r.register("s", SchemaType::Avro, BAD).unwrap_err();
    assert_eq!(e.error_code(), 409);
    assert_eq!(e.http_status(), 409);
    assert!(e.to_string().contains("'c'"), "{e}");
    let e = r
        .register("s", SchemaType::Avro, "{\"type\":\"nope\"}")
        .unwrap_err();
    assert_eq!((e.error_code(), e.http_status()), (42201, 422));
    assert_eq!(r, before);
    // NONE lets anything through.
    r.set_compatibility(Some("s"), Compatibility::None);
    assert_eq!(reg(&mut r, "s", BAD), 2);
}

#[test]
fn soft_then_permanent_delete_of_a_subject() {
    let mut r = Registry::default();
    reg(&mut r, "s", V1);
    reg(&mut r, "s", V2);
    r.set_compatibility(Some("s"), Compatibility::Full);
    assert_eq!(r.delete_subject("s", true).unwrap_err().error_code(), 40405);
    assert_eq!(r.delete_subject("s", false).unwrap(), vec![1, 2]);
    assert_eq!(
        r.delete_subject("s", false).unwrap_err().error_code(),
        40404
    );
    assert_eq!(r.subjects(false, ""), Vec::<String>::new());
    assert_eq!(r.subjects(true, ""), vec!["s"]);
    assert_eq!(r.versions("s", false).unwrap_err().error_code(), 40401);
    assert_eq!(r.versions("s", true).unwrap(), vec![1, 2]);
    assert_eq!(r.subject_ids("s", None).unwrap_err().error_code(), 40401);
    // Soft-deleted schemas are still served by id; the subject config survives.
    assert!(r.schema_by_id(1).is_some());
    assert_eq!(r.compatibility(Some("s")), Some(Compatibility::Full));
    assert_eq!(r.delete_subject("s", true).unwrap(), vec![1, 2]);
    assert_eq!(r.delete_subject("s", true).unwrap_err().error_code(), 40401);
    assert_eq!(r.compatibility(Some("s")), None);
    // Nothing refers to ids 1 and 2 any more; they are forgotten and never handed out again.
    assert!(r.schema_by_id(1).is_none());
    assert_eq!(reg(&mut r, "s", V1), 3);
    assert_eq!(r.versions("s", false).unwrap(), vec![1]);
}

#[test]
fn version_deletes_follow_confluent_rules() {
    let mut r = Registry::default();
    reg(&mut r, "s", V1);
    reg(&mut r, "s", V2);
    let one = VersionRef::Number(1);
    assert_eq!(
        r.delete_version("s", one, true).unwrap_err().error_code(),
        40407
    );
    assert_eq!(r.delete_version("s", one, false).unwrap(), 1);
    assert_eq!(
        r.delete_version("s", one, false).unwrap_err().error_code(),
        40406
    );
    assert_eq!(
        r.delete_version("s", VersionRef::Number(9), false)
            .unwrap_err()
            .error_code(),
        40402
    );
    assert_eq!(
        r.delete_version("x", one, false).unwrap_err().error_code(),
        40401
    );
    assert_eq!(r.version("s", one, false).unwrap_err().error_code(), 40402);
    assert!(r.version("s", one, true).unwrap().deleted);
    assert_eq!(r.subject_ids("s", None).unwrap(), vec![2]);
    assert_eq!(r.delete_version("s", one, true).unwrap(), 1);
    assert_eq!(r.versions("s", true).unwrap(), vec![2]);
    // Re-registering a soft-deleted schema makes a new version with the old id.
    r.delete_version("s", VersionRef::Latest, false).unwrap();
    assert_eq!(reg(&mut r, "s", V2), 2);
    assert_eq!(r.versions("s", true).unwrap(), vec![2, 3]);
}

#[test]
fn lookup_finds_the_version_or_says_what_is_missing() {
    let mut r = Registry::default();
    reg(&mut r, "s", V1);
    let v = r.lookup("s", SchemaType::Avro, V1, false).unwrap();
    assert_eq!((v.version, v.id), (1, 1));
    assert_eq!(
        r.lookup("s", SchemaType::Avro, V2, false)
            .unwrap_err()
            .error_code(),
        40403
    );
    assert_eq!(
        r.lookup("t", SchemaType::Avro, V1, false)
            .unwrap_err()
            .error_code(),
        40401
    );
    r.delete_subject("s", false).unwrap();
    assert_eq!(
        r.lookup("s", SchemaType::Avro, V1, false)
            .unwrap_err()
            .error_code(),
        40401
    );
    assert!(r.lookup("s", SchemaType::Avro, V1, true).unwrap().deleted);
}

#[test]
fn config_inherits_global_then_default() {
    let mut r = Registry::default();
    assert_eq!(r.effective_compatibility("s"), Compatibility::Backward);
    assert_eq!(r.compatibility(None), None);
    r.set_compatibility(None, Compatibility::Forward);
    assert_eq!(r.effective_compatibility("s"), Compatibility::Forward);
    r.set_compatibility(Some("s"), Compatibility::None);
    assert_eq!(r.effective_compatibility("s"), Compatibility::None);
    assert_eq!(r.effective_compatibility("t"), Compatibility::Forward);
    assert_eq!(
        r.delete_compatibility(Some("s")).unwrap(),
        Compatibility::None
    );
    assert_eq!(
        r.delete_compatibility(Some("s")).unwrap_err().error_code(),
        40401
    );
    assert_eq!(
        r.delete_compatibility(None).unwrap(),
        Compatibility::Forward
    );
    assert_eq!(r.effective_compatibility("s"), Compatibility::Backward);
}

#[test]
fn state_round_trips_through_json() {
    let mut r = Registry::default();
    reg(&mut r, "s", V1);
    r.register("j", SchemaType::Json, r#"{"type":"object"}"#)
        .unwrap();
    r.delete_version("s", VersionRef::Latest, false).unwrap();
    r.set_compatibility(Some("j"), Compatibility::FullTransitive);
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains("FULL_TRANSITIVE"), "{text}");
    let back: Registry = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}

#[test]
fn version_refs_parse_like_confluent() {
    assert_eq!(VersionRef::parse("latest").unwrap(), VersionRef::Latest);
    assert_eq!(VersionRef::parse("-1").unwrap(), VersionRef::Latest);
    assert_eq!(VersionRef::parse("3").unwrap(), VersionRef::Number(3));
    for bad in ["0", "-2", "x", "99999999999"] {
        assert_eq!(
            VersionRef::parse(bad).unwrap_err().error_code(),
            42202,
            "{bad}"
        );
    }
}
