//! The brokers' schema registry (Confluent's REST API on their HTTP listener): setting a
//! subject's compatibility and registering a schema under it.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{self, Http, JsonBody};

/// Content type of Confluent's API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A schema to register, as the Feed describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub subject: String,
    /// `AVRO` or `JSON`.
    pub schema_type: &'static str,
    pub schema: String,
    /// `BACKWARD`, `FULL_TRANSITIVE`, …; set on the subject first when present.
    pub compatibility: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the schema: incompatible (409) or unparsable (422). Retrying
    /// the same schema cannot help.
    #[error("{what} (HTTP {status}, error code {code}): {message}")]
    Rejected {
        what: &'static str,
        status: u16,
        code: i64,
        message: String,
    },
    /// Another answer than success or a refusal; the broker may do better later.
    #[error("{url}: HTTP {status}: {body}")]
    Failed {
        url: String,
        status: u16,
        body: String,
    },
    /// No answer (connection refused, timeout): try another broker.
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Sets the subject's compatibility (when asked) and registers the schema at the broker
/// whose HTTP listener is `addr`; the schema's id. Registering the same schema again
/// returns the same id.
pub async fn register(
    http: &Http,
    addr: &str,
    registration: &Registration,
    timeout: Duration,
) -> Result<i32, RegistryError> {
    let subject = urlencoding::encode(&registration.subject);
    if let Some(level) = registration.compatibility {
        let url = format!("http://{addr}/config/{subject}");
        send(
            http,
            Method::PUT,
            &url,
            &json!({ "compatibility": level }),
            timeout,
        )
        .await?;
    }
    let url = format!("http://{addr}/subjects/{subject}/versions");
    let body = json!({ "schema": registration.schema, "schemaType": registration.schema_type });
    let answer = send(http, Method::POST, &url, &body, timeout).await?;
    answer["id"]
        .as_i64()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| RegistryError::Failed {
            url,
            status: 200,
            body: format!("no schema id in {answer}"),
        })
}

async fn send(
    http: &Http,
    method: Method,
    url: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, RegistryError> {
    let body = JsonBody {
        content_type: CONTENT_TYPE,
        json: body,
    };
    let answer = http::call(http, method, url, Some(body), timeout)
        .await
        .map_err(|reason| RegistryError::Unreachable {
            url: url.to_string(),
            reason,
        })?;
    interpret(url, answer.status, &answer.body)
}

/// A registry answer as a result: the JSON of a success, or the error it stands for.
pub fn interpret(url: &str, status: StatusCode, body: &str) -> Result<Value, RegistryError> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    if status.is_success() {
        return json.ok_or_else(|| RegistryError::Failed {
            url: url.to_string(),
            status: status.as_u16(),
            body: format!("not JSON: {}", body.trim()),
        });
    }
    let what = match status {
        StatusCode::CONFLICT => "the schema is incompatible with the subject's versions",
        StatusCode::UNPROCESSABLE_ENTITY => "the schema or request is invalid",
        _ => {
            return Err(RegistryError::Failed {
                url: url.to_string(),
                status: status.as_u16(),
                body: body.trim().to_string(),
            })
        }
    };
    let field = |name: &str| json.as_ref().and_then(|j| j.get(name).cloned());
    Err(RegistryError::Rejected {
        what,
        status: status.as_u16(),
        code: field("error_code")
            .and_then(|c| c.as_i64())
            .unwrap_or(i64::from(status.as_u16())),
        message: field("message")
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_is_its_json() {
        let ok = interpret("u", StatusCode::OK, r#"{"id": 7}"#).unwrap();
        assert_eq!(ok["id"], 7);
    }

    #[test]
    fn conflicts_and_unparsable_schemas_are_rejections_with_the_registry_message() {
        let err = interpret(
            "u",
            StatusCode::CONFLICT,
            r#"{"error_code":409,"message":"field user removed"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RegistryError::Rejected {
                what: "the schema is incompatible with the subject's versions",
                status: 409,
                code: 409,
                message: "field user removed".into()
            }
        );
        let err = interpret(
            "u",
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"error_code":42201,"message":"Invalid schema"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Rejected { code: 42201, message, .. } if message == "Invalid schema"),
            "{err:?}"
        );
    }

    #[test]
    fn other_answers_are_failures() {
        let err = interpret("u", StatusCode::NOT_FOUND, "no route").unwrap_err();
        assert!(matches!(err, RegistryError::Failed { status: 404, .. }));
        let err = interpret("u", StatusCode::OK, "<html>").unwrap_err();
        assert!(matches!(err, RegistryError::Failed { status: 200, .. }));
    }
}
