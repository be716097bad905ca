//! Confluent's Schema Registry REST API as a pure function: [`route`] answers one request
//! against a registry state and hands back the new state when the request changed it. The
//! caller owns the I/O: it serves HTTP (content type `application/vnd.schemaregistry.v1+json`),
//! and writes a new state with compare-and-swap, calling `route` again on the fresher state
//! when another writer won.

mod config;
mod params;
mod schemas;
mod subjects;

use serde_json::{json, Value};

use crate::error::RegistryError;
use crate::registry::Registry;

pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The path without the query, still percent-encoded.
    pub path: &'a str,
    /// The query without its `?`.
    pub query: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
}

impl ApiResponse {
    fn ok(body: Value) -> ApiResponse {
        ApiResponse { status: 200, body }
    }

    /// Confluent's error body.
    fn error(status: u16, error_code: i32, message: impl Into<String>) -> ApiResponse {
        let message: String = message.into();
        ApiResponse {
            status,
            body: json!({ "error_code": error_code, "message": message }),
        }
    }

    fn not_found() -> ApiResponse {
        ApiResponse::error(404, 404, "HTTP 404 Not Found")
    }

    fn method_not_allowed() -> ApiResponse {
        ApiResponse::error(405, 405, "HTTP 405 Method Not Allowed")
    }
}

impl From<RegistryError> for ApiResponse {
    fn from(e: RegistryError) -> ApiResponse {
        ApiResponse::error(e.http_status(), e.error_code(), e.to_string())
    }
}

/// What a handler answers: a body, or a ready response (an error).
type Answer = Result<Value, ApiResponse>;

/// The state a request reads, and the copy it writes (made on the first write).
struct Ctx<'r, 'q> {
    current: &'r Registry,
    next: Option<Registry>,
    query: params::Query,
    req: &'q ApiRequest<'q>,
}

impl Ctx<'_, '_> {
    fn read(&self) -> &Registry {
        self.next.as_ref().unwrap_or(self.current)
    }

    fn write(&mut self) -> &mut Registry {
        self.next.get_or_insert_with(|| self.current.clone())
    }
}

/// Answers one request against `registry`. Returns the new state when the request changed it
/// (the caller writes it with compare-and-swap and, on conflict, calls route again on the
/// fresher state).
pub fn route(registry: &Registry, req: &ApiRequest) -> (ApiResponse, Option<Registry>) {
    let segments: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(params::percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut ctx = Ctx {
        current: registry,
        next: None,
        query: params::Query::parse(req.query),
        req,
    };
    let method = req.method.to_ascii_uppercase();
    let answer = match segs.as_slice() {
        [] => only(&method, "GET", || Ok(json!({}))),
        ["schemas", rest @ ..] => schemas::route(&mut ctx, &method, rest),
        ["subjects", rest @ ..] => subjects::route(&mut ctx, &method, rest),
        ["compatibility", "subjects", subject, "versions", rest @ ..] if rest.len() <= 1 => {
            let version = rest.first().copied();
            only(&method, "POST", || config::check(&ctx, subject, version))
        }
        ["config", rest @ ..] if rest.len() <= 1 => {
            config::route(&mut ctx, &method, rest.first().copied())
        }
        ["mode", rest @ ..] if rest.len() <= 1 => {
            only(&method, "GET", || Ok(json!({ "mode": "READWRITE" })))
        }
        _ => Err(ApiResponse::not_found()),
    };
    let response = match answer {
        Ok(body) => ApiResponse::ok(body),
        Err(r) => r,
    };
    let changed = ctx.next.filter(|n| response.status == 200 && n != registry);
    (response, changed)
}

/// Runs `f` when the method is `allowed`, else 405.
fn only(method: &str, allowed: &str, f: impl FnOnce() -> Answer) -> Answer {
    if method == allowed {
        f()
    } else {
        Err(ApiResponse::method_not_allowed())
    }
}

#[cfg(test)]
mod tests;
