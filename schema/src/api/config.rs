//! `/config` (global and per-subject compatibility levels) and `/compatibility/...` (checking
//! a schema against a subject's versions without registering it).

use serde_json::{json, Value};

use super::{params, Answer, ApiResponse, Ctx};
use crate::compat::Compatibility;
use crate::error::RegistryError;
use crate::registry::VersionRef;

pub(super) fn route(ctx: &mut Ctx, method: &str, subject: Option<&str>) -> Answer {
    match method {
        "GET" => {
            let r = ctx.read();
            let level = match subject {
                None => r.compatibility(None).unwrap_or_default(),
                Some(s) => match r.compatibility(Some(s)) {
                    Some(level) => level,
                    None if ctx.query.flag("defaultToGlobal") => r.effective_compatibility(s),
                    None => {
                        return Err(
                            RegistryError::SubjectCompatibilityNotConfigured(s.to_string()).into(),
                        )
                    }
                },
            };
            Ok(json!({ "compatibilityLevel": level.as_str() }))
        }
        "PUT" => {
            let body = params::object_body(ctx.req.body)?;
            let level = body
                .get("compatibility")
                .and_then(Value::as_str)
                .and_then(Compatibility::parse)
                .ok_or(RegistryError::InvalidCompatibility)?;
            ctx.write().set_compatibility(subject, level);
            Ok(json!({ "compatibility": level.as_str() }))
        }
        "DELETE" => {
            let level = ctx.write().delete_compatibility(subject)?;
            Ok(json!({ "compatibilityLevel": level.as_str() }))
        }
        _ => Err(ApiResponse::method_not_allowed()),
    }
}

/// `POST /compatibility/subjects/{s}/versions[/{v}]`: `{"is_compatible": bool}`, plus the
/// reasons under `messages` with `?verbose=true`.
pub(super) fn check(ctx: &Ctx, subject: &str, version: Option<&str>) -> Answer {
    let against = version.map(VersionRef::parse).transpose()?;
    let (schema_type, schema) = params::schema_body(ctx.req.body)?;
    let verbose = ctx.query.flag("verbose");
    let messages = match ctx
        .read()
        .check_compatibility(subject, schema_type, &schema, against)
    {
        Ok(m) => m,
        // Confluent reports an unparsable schema as a message when verbose.
        Err(RegistryError::InvalidSchema(m)) if verbose => vec![m],
        Err(e) => return Err(e.into()),
    };
    let mut body = json!({ "is_compatible": messages.is_empty() });
    if verbose {
        body["messages"] = json!(messages);
    }
    Ok(body)
}
