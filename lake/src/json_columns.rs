//! A JSON Schema as table columns (schema mode), for the `json-schema` and `json`
//! formats. The top level must be an object with `properties`; each property becomes a
//! column, optional unless `required` names it and its type does not allow `null`.
//!
//! | JSON Schema | Iceberg |
//! |---|---|
//! | string | string; `format: date-time` timestamp (UTC; `columns::INSTANT`), `format: date` date |
//! | integer / number / boolean | long / double / boolean |
//! | object with `properties` | struct |
//! | object with only `additionalProperties: {schema}` | map with string keys |
//! | array with `items: {schema}` | list |
//! | `type: [T, "null"]`, `anyOf`/`oneOf` of one schema and `{"type":"null"}` | T, optional |
//! | `$ref` to `#/...` in the same document | what it points at |
//!
//! Refused, naming the property: several non-null types, a schema with no type, an
//! object with neither, an array without `items`, a `$ref` to another document, and a
//! `$ref` that contains itself (no fixed columns).
//!
//! Columns come in property-name order: the JSON parser (serde_json without
//! `preserve_order`, which would change how the registry compares schemas) sorts keys.

use std::collections::HashSet;
use std::sync::Arc;

use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType, Type};
use serde_json::{Map, Value};

use crate::columns::INSTANT;
use crate::error::{LakeError, Result};
use crate::evolution::join;

/// The top-level object's properties as columns.
pub(crate) fn columns(text: &str) -> Result<Vec<NestedField>> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| LakeError::Schema(format!("not a JSON Schema: {e}")))?;
    let mut walk = Walk {
        root: &root,
        open: Vec::new(),
    };
    match walk.field_type(&root, "")? {
        (Type::Struct(s), _) => Ok(s.fields().iter().map(|f| f.as_ref().clone()).collect()),
        _ => Err(LakeError::Schema(
            "the JSON Schema is not an object with properties at the top level".into(),
        )),
    }
}

fn unsupported(path: &str, what: &str) -> LakeError {
    if path.is_empty() {
        LakeError::Schema(format!("the top level: {what}"))
    } else {
        LakeError::Schema(format!("property {path:?}: {what}"))
    }
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
}

struct Walk<'a> {
    root: &'a Value,
    /// `$ref`s being expanded: meeting one again is recursion.
    open: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    /// The type of a property, array item or map value, and whether it may be null.
    fn field_type(&mut self, schema: &'a Value, path: &str) -> Result<(Type, bool)> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.reference(r, path);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(choices)) = schema.get(key) {
                let others: Vec<&'a Value> =
                    choices.iter().filter(|c| !is_null_schema(c)).collect();
                let [one] = others[..] else {
                    return Err(unsupported(
                        path,
                        &format!("{key} of several non-null schemas has no single column type"),
                    ));
                };
                let (ty, nullable) = self.field_type(one, path)?;
                return Ok((ty, nullable || others.len() < choices.len()));
            }
        }
        let (name, nullable) = match schema.get("type") {
            Some(Value::String(t)) => (t.as_str(), false),
            Some(Value::Array(types)) => {
                let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                let others: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                let [one] = others[..] else {
                    return Err(unsupported(
                        path,
                        "several non-null types have no single column type",
                    ));
                };
                (one, others.len() < names.len())
            }
            None if schema.get("properties").is_some() => ("object", false),
            _ => return Err(unsupported(path, "no \"type\"")),
        };
        let p = Type::Primitive;
        let ty = match name {
            "string" => p(match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => INSTANT,
                Some("date") => PrimitiveType::Date,
                _ => PrimitiveType::String,
            }),
            "integer" => p(PrimitiveType::Long),
            "number" => p(PrimitiveType::Double),
            "boolean" => p(PrimitiveType::Boolean),
            "object" => self.object(schema, path)?,
            "array" => {
                let Some(items) = schema.get("items").filter(|i| i.is_object()) else {
                    return Err(unsupported(path, "an array needs one \"items\" schema"));
                };
                let (ty, nullable) = self.field_type(items, &join(path, "element"))?;
                Type::List(ListType::new(Arc::new(NestedField::list_element(
                    0, ty, !nullable,
                ))))
            }
            other => return Err(unsupported(path, &format!("type {other:?} has no column"))),
        };
        Ok((ty, nullable))
    }

    fn reference(&mut self, r: &'a str, path: &str) -> Result<(Type, bool)> {
        if self.open.contains(&r) {
            return Err(unsupported(
                path,
                &format!("{r} contains itself; a recursive schema has no fixed columns"),
            ));
        }
        let Some(target) = r.strip_prefix('#').and_then(|p| self.root.pointer(p)) else {
            return Err(unsupported(
                path,
                &format!("$ref {r:?} is not a place in this document"),
            ));
        };
        self.open.push(r);
        let out = self.field_type(target, path);
        self.open.pop();
        out
    }

    fn object(&mut self, schema: &'a Value, path: &str) -> Result<Type> {
        if let Some(Value::Object(props)) = schema.get("properties") {
            let fields = self.properties(schema, props, path)?;
            return Ok(Type::Struct(StructType::new(
                fields.into_iter().map(Arc::new).collect(),
            )));
        }
        if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
            let (ty, nullable) = self.field_type(values, &join(path, "value"))?;
            return Ok(Type::Map(MapType::new(
                Arc::new(NestedField::map_key_element(
                    0,
                    Type::Primitive(PrimitiveType::String),
                )),
                Arc::new(NestedField::map_value_element(0, ty, !nullable)),
            )));
        }
        Err(unsupported(
            path,
            "an object needs \"properties\" or an \"additionalProperties\" schema",
        ))
    }

    fn properties(
        &mut self,
        schema: &'a Value,
        props: &'a Map<String, Value>,
        path: &str,
    ) -> Result<Vec<NestedField>> {
        let required: HashSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        props
            .iter()
            .map(|(name, s)| {
                let (ty, nullable) = self.field_type(s, &join(path, name))?;
                let field =
                    NestedField::new(0, name, ty, required.contains(name.as_str()) && !nullable);
                Ok(match s.get("description").and_then(Value::as_str) {
                    Some(doc) => field.with_doc(doc),
                    None => field,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(property: &str, required: bool) -> Result<NestedField> {
        let req = if required { r#","required":["f"]"# } else { "" };
        let text = format!(r#"{{"type":"object","properties":{{"f":{property}}}{req}}}"#);
        Ok(columns(&text)?.into_iter().next().unwrap())
    }

    fn prim(property: &str) -> PrimitiveType {
        let f = one(property, false).unwrap();
        f.field_type.as_primitive_type().unwrap().clone()
    }

    #[test]
    fn scalar_types_and_formats() {
        use PrimitiveType as P;
        for (schema, want) in [
            (r#"{"type":"string"}"#, P::String),
            (r#"{"type":"string","format":"date-time"}"#, INSTANT),
            (r#"{"type":"string","format":"date"}"#, P::Date),
            (r#"{"type":"string","format":"email"}"#, P::String),
            (r#"{"type":"integer"}"#, P::Long),
            (r#"{"type":"number"}"#, P::Double),
            (r#"{"type":"boolean"}"#, P::Boolean),
        ] {
            assert_eq!(prim(schema), want, "{schema}");
        }
    }

    #[test]
    fn required_unless_null_is_allowed() {
        assert!(!one(r#"{"type":"integer"}"#, false).unwrap().required);
        assert!(one(r#"{"type":"integer"}"#, true).unwrap().required);
        assert!(
            !one(r#"{"type":["integer","null"]}"#, true)
                .unwrap()
                .required
        );
        let any = one(r#"{"anyOf":[{"type":"null"},{"type":"string"}]}"#, true).unwrap();
        assert!(!any.required);
        assert_eq!(*any.field_type, Type::Primitive(PrimitiveType::String));
    }

    #[test]
    fn objects_arrays_maps_and_local_refs_nest() {
        let text = r##"{"type":"object","$defs":{"P":{"type":"object",
            "properties":{"x":{"type":"integer"}},"required":["x"]}},
            "properties":{
              "s":{"$ref":"#/$defs/P"},
              "l":{"type":"array","items":{"$ref":"#/$defs/P"}},
              "m":{"type":"object","additionalProperties":{"type":"string"}}}}"##;
        let cols = columns(text).unwrap();
        let names: Vec<&str> = cols.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["l", "m", "s"]);
        let Type::Struct(s) = cols[2].field_type.as_ref() else {
            panic!("{cols:?}")
        };
        assert!(s.fields()[0].required);
        let Type::List(l) = cols[0].field_type.as_ref() else {
            panic!("{cols:?}")
        };
        assert_eq!(*l.element_field.field_type, *cols[2].field_type);
        assert!(matches!(cols[1].field_type.as_ref(), Type::Map(_)));
    }

    #[test]
    fn what_has_no_columns_is_refused_by_property() {
        for (schema, words) in [
            (r#"{"type":["string","integer"]}"#, "several"),
            (
                r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
                "several",
            ),
            (r#"{"description":"anything"}"#, "no \"type\""),
            (r#"{"type":"object"}"#, "properties"),
            (r#"{"type":"array"}"#, "items"),
            (r#"{"$ref":"other.json#/x"}"#, "not a place"),
        ] {
            let err = one(schema, false).unwrap_err().to_string();
            assert!(
                err.contains("\"f\"") && err.contains(words),
                "{schema}: {err}"
            );
        }
        let recursive = r##"{"type":"object","$defs":{"N":{"type":"object",
            "properties":{"next":{"$ref":"#/$defs/N"}}}},
            "properties":{"head":{"$ref":"#/$defs/N"}}}"##;
        let err = columns(recursive).unwrap_err().to_string();
        assert!(
            err.contains("head.next") && err.contains("recursive"),
            "{err}"
        );
        assert!(columns(r#"{"type":"string"}"#).is_err());
    }
}
