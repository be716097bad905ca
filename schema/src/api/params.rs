//! Reading a request: percent-decoding of path segments and query values, boolean query
//! flags, and the JSON bodies (a body that is not JSON is Confluent's 400).

use serde_json::Value;

use super::ApiResponse;
use crate::error::RegistryError;
use crate::stored::SchemaType;

/// Decodes `%XX` escapes (invalid ones stay as they are); the bytes are read as UTF-8,
/// lossily.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's parameters, decoded (`+` is a space there).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (
                        percent_decode(&k.replace('+', " ")),
                        percent_decode(&v.replace('+', " ")),
                    )
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag as JAX-RS reads one: true only when it says `true`.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The body as a JSON object; anything else is Confluent's 400.
pub fn object_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiResponse::error(
            400,
            400,
            "Request body must be a JSON object",
        )),
        Err(e) => Err(ApiResponse::error(
            400,
            400,
            format!("Unexpected content: {e}"),
        )),
    }
}

/// A register/lookup/compatibility body: `schema`, `schemaType` (default AVRO), `references`.
pub fn schema_body(body: &[u8]) -> Result<(SchemaType, String), ApiResponse> {
    let m = object_body(body)?;
    let schema = match m.get("schema") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiResponse::error(
                400,
                400,
                "Field 'schema' must be a string",
            ))
        }
    };
    let schema_type = match m.get("schemaType") {
        None | Some(Value::Null) => SchemaType::Avro,
        Some(Value::String(t)) => SchemaType::parse(t)?,
        Some(_) => {
            return Err(ApiResponse::error(
                400,
                400,
                "Field 'schemaType' must be a string",
            ))
        }
    };
    if m.get("references")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(RegistryError::InvalidSchema(
            "Schema references are not supported by this registry".into(),
        )
        .into());
    }
    match schema {
        Some(s) if !s.trim().is_empty() => Ok((schema_type, s)),
        _ => Err(RegistryError::InvalidSchema("Empty schema".into()).into()),
    }
}
