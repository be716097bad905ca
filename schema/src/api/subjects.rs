//! `/subjects/...`: listing subjects and versions, registering, looking a schema up under a
//! subject, and deleting (soft first, permanent second).

use serde_json::{json, Value};

use super::schemas::{raw, schema_body};
use super::{only, params, Answer, ApiResponse, Ctx};
use crate::registry::{SubjectVersion, VersionRef};

pub(super) fn route(ctx: &mut Ctx, method: &str, rest: &[&str]) -> Answer {
    let deleted = ctx.query.flag("deleted");
    match rest {
        [] => only(method, "GET", || {
            let prefix = ctx.query.get("subjectPrefix").unwrap_or("");
            Ok(json!(ctx.read().subjects(deleted, prefix)))
        }),
        [subject] => match method {
            "POST" => {
                let (schema_type, schema) = params::schema_body(ctx.req.body)?;
                let found = ctx.read().lookup(subject, schema_type, &schema, deleted)?;
                Ok(version_body(subject, &found))
            }
            "DELETE" => {
                let permanent = ctx.query.flag("permanent");
                Ok(json!(ctx.write().delete_subject(subject, permanent)?))
            }
            _ => Err(ApiResponse::method_not_allowed()),
        },
        [subject, "versions"] => match method {
            "GET" => Ok(json!(ctx.read().versions(subject, deleted)?)),
            "POST" => {
                let (schema_type, schema) = params::schema_body(ctx.req.body)?;
                let id = ctx.write().register(subject, schema_type, &schema)?;
                Ok(json!({ "id": id }))
            }
            _ => Err(ApiResponse::method_not_allowed()),
        },
        [subject, "versions", version, tail @ ..] => {
            let v = VersionRef::parse(version)?;
            match (tail, method) {
                ([], "GET") => Ok(version_body(
                    subject,
                    &ctx.read().version(subject, v, deleted)?,
                )),
                ([], "DELETE") => {
                    let permanent = ctx.query.flag("permanent");
                    Ok(json!(ctx.write().delete_version(subject, v, permanent)?))
                }
                (["schema"], "GET") => Ok(raw(ctx.read().version(subject, v, deleted)?.schema)),
                // References are not supported, so nothing refers to any version.
                (["referencedby"], "GET") => {
                    ctx.read().version(subject, v, true)?;
                    Ok(json!([]))
                }
                ([] | ["schema"] | ["referencedby"], _) => Err(ApiResponse::method_not_allowed()),
                _ => Err(ApiResponse::not_found()),
            }
        }
        _ => Err(ApiResponse::not_found()),
    }
}

fn version_body(subject: &str, v: &SubjectVersion) -> Value {
    schema_body(
        v.schema,
        json!({ "subject": subject, "version": v.version, "id": v.id }),
    )
}
