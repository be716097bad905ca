//! JSON Schema documents: parsing and compiling (no remote `$ref`: the crate is built without
//! HTTP or file resolution, so a schema that needs one does not compile), and the canonical
//! text that decides whether two registrations are the same schema.

use serde_json::Value;

/// Parses and compiles a JSON Schema; the error is the parser's or compiler's message.
pub fn compile(text: &str) -> Result<(Value, jsonschema::Validator), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !matches!(value, Value::Object(_) | Value::Bool(_)) {
        return Err("a JSON Schema is an object or a boolean".to_string());
    }
    let validator = jsonschema::validator_for(&value).map_err(|e| e.to_string())?;
    Ok((value, validator))
}

/// The JSON re-serialised: whitespace and key order do not make a new schema.
pub fn canonical(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_valid_and_refuses_invalid_schemas() {
        let (_, v) = compile(r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#).unwrap();
        assert!(v.is_valid(&serde_json::json!({"a": 1})));
        assert!(!v.is_valid(&serde_json::json!({"a": "x"})));
        assert!(compile("{not json").is_err());
        assert!(compile(r#"{"type": 12}"#).is_err());
        assert!(compile("[1]").is_err());
    }

    #[test]
    fn canonical_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"type":"string","maxLength":3}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "maxLength": 3, "type": "string" }"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }
}
