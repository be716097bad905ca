//! `/schemas/...`: schemas by global id (soft-deleted versions' schemas included, as the
//! deserializers of old records need them), and the supported schema types.

use serde_json::{json, Value};

use super::{only, Answer, ApiResponse, Ctx};
use crate::error::RegistryError;
use crate::stored::{SchemaType, StoredSchema};

pub(super) fn route(ctx: &mut Ctx, method: &str, rest: &[&str]) -> Answer {
    if rest == ["types"] {
        return only(method, "GET", || Ok(json!(["AVRO", "JSON"])));
    }
    let ["ids", id, tail @ ..] = rest else {
        return Err(ApiResponse::not_found());
    };
    // A path parameter that is not an int32 matches no resource (JAX-RS answers 404).
    let Ok(id) = id.parse::<i32>() else {
        return Err(ApiResponse::not_found());
    };
    let r = ctx.read();
    let deleted = ctx.query.flag("deleted");
    let stored = || {
        r.schema_by_id(id)
            .ok_or(RegistryError::SchemaIdNotFound(id))
    };
    match tail {
        // `?subject=` selects a context in Confluent; with one context it changes nothing.
        [] => only(method, "GET", || Ok(schema_body(stored()?, json!({})))),
        ["schema"] => only(method, "GET", || Ok(raw(stored()?))),
        ["subjects"] => only(method, "GET", || Ok(json!(r.subjects_for_id(id, deleted)?))),
        ["versions"] => only(method, "GET", || {
            let pairs = r.versions_for_id(id, deleted)?;
            Ok(pairs
                .into_iter()
                .map(|(subject, version)| json!({ "subject": subject, "version": version }))
                .collect())
        }),
        _ => Err(ApiResponse::not_found()),
    }
}

/// Adds `schema` (and `schemaType` unless AVRO, as Confluent omits it) to `fields`.
pub(super) fn schema_body(s: &StoredSchema, mut fields: Value) -> Value {
    fields["schema"] = json!(s.schema);
    if s.schema_type != SchemaType::Avro {
        fields["schemaType"] = json!(s.schema_type.as_str());
    }
    fields
}

/// The schema itself as the body (`.../schema` endpoints).
pub(super) fn raw(s: &StoredSchema) -> Value {
    serde_json::from_str(&s.schema).unwrap_or_else(|_| json!(s.schema))
}
