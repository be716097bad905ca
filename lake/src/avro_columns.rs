//! An Avro record schema as table columns (schema mode). Each field becomes a column of
//! the closest Iceberg type; a union with `null` makes it optional. Named types used
//! again (a record defined once and referred to by name later) are expanded again;
//! a record that refers to itself has no finite columns and is refused.
//!
//! | Avro | Iceberg |
//! |---|---|
//! | boolean, int, long, float, double, string | the same |
//! | bytes, fixed | binary |
//! | enum, uuid | string (the symbol; the canonical text) |
//! | record / array / map | struct / list / map with string keys |
//! | `["null", T]` (either order) | T, optional |
//! | date; time-millis, time-micros | date; time |
//! | timestamp-millis, timestamp-micros | timestamp (UTC; `columns::INSTANT`) |
//! | local-timestamp-millis, local-timestamp-micros | timestamp |
//! | decimal(p, s), p <= 38 | decimal(p, s) |
//!
//! Refused, naming the field: recursive records, unions of several non-null types, the
//! `null` type alone, nanosecond timestamps (Iceberg v3 only), durations and
//! big-decimal (no Iceberg type holds them). Ids are left 0: `evolution.rs` assigns them.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{RecordSchema, Schema as Avro};
use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType, Type};

use crate::columns::INSTANT;
use crate::error::{LakeError, Result};
use crate::evolution::join;

/// Iceberg's largest decimal precision (16 bytes).
const MAX_DECIMAL_PRECISION: usize = 38;

/// The top-level record's fields as columns, in the schema's order.
pub(crate) fn columns(text: &str) -> Result<Vec<NestedField>> {
    let schema = sluice_schema::avro::parse(text)
        .map_err(|e| LakeError::Schema(format!("not an Avro schema: {e}")))?;
    let Avro::Record(record) = &schema else {
        return Err(LakeError::Schema(
            "the Avro schema is not a record at the top level".into(),
        ));
    };
    let mut walk = Walk::default();
    walk.named.insert(record.name.fullname(None), &schema);
    walk.fields(record, "")
}

fn unsupported(path: &str, what: &str) -> LakeError {
    LakeError::Schema(format!("field {path:?}: {what}"))
}

#[derive(Default)]
struct Walk<'a> {
    /// Named types defined so far, by full name: a later use of the name is a `Ref`.
    named: HashMap<String, &'a Avro>,
    /// Records being expanded, outermost first: a reference to one is recursion.
    open: Vec<String>,
}

impl<'a> Walk<'a> {
    fn fields(&mut self, record: &'a RecordSchema, path: &str) -> Result<Vec<NestedField>> {
        self.open.push(record.name.fullname(None));
        let fields = record
            .fields
            .iter()
            .map(|f| {
                let (ty, nullable) = self.field_type(&f.schema, &join(path, &f.name))?;
                let field = NestedField::new(0, &f.name, ty, !nullable);
                Ok(match &f.doc {
                    Some(doc) => field.with_doc(doc),
                    None => field,
                })
            })
            .collect();
        self.open.pop();
        fields
    }

    /// The type of a field, list element or map value, and whether it may be null.
    fn field_type(&mut self, schema: &'a Avro, path: &str) -> Result<(Type, bool)> {
        let Avro::Union(union) = schema else {
            return Ok((self.value_type(schema, path)?, false));
        };
        let others: Vec<&'a Avro> = union
            .variants()
            .iter()
            .filter(|s| !matches!(s, Avro::Null))
            .collect();
        match others[..] {
            [one] => Ok((
                self.value_type(one, path)?,
                others.len() < union.variants().len(),
            )),
            [] => Err(unsupported(path, "a union of null alone has no values")),
            _ => Err(unsupported(
                path,
                "a union of several non-null types has no single column type",
            )),
        }
    }

    fn value_type(&mut self, schema: &'a Avro, path: &str) -> Result<Type> {
        let p = |t: PrimitiveType| Ok(Type::Primitive(t));
        match schema {
            Avro::Boolean => p(PrimitiveType::Boolean),
            Avro::Int => p(PrimitiveType::Int),
            Avro::Long => p(PrimitiveType::Long),
            Avro::Float => p(PrimitiveType::Float),
            Avro::Double => p(PrimitiveType::Double),
            Avro::String => p(PrimitiveType::String),
            Avro::Bytes => p(PrimitiveType::Binary),
            Avro::Uuid(_) => p(PrimitiveType::String),
            Avro::Date => p(PrimitiveType::Date),
            Avro::TimeMillis | Avro::TimeMicros => p(PrimitiveType::Time),
            Avro::TimestampMillis | Avro::TimestampMicros => p(INSTANT),
            Avro::LocalTimestampMillis | Avro::LocalTimestampMicros => p(PrimitiveType::Timestamp),
            Avro::Fixed(f) => {
                self.named.insert(f.name.fullname(None), schema);
                p(PrimitiveType::Binary)
            }
            Avro::Enum(e) => {
                self.named.insert(e.name.fullname(None), schema);
                p(PrimitiveType::String)
            }
            Avro::Decimal(d) => {
                if let apache_avro::schema::InnerDecimalSchema::Fixed(f) = &d.inner {
                    self.named.insert(f.name.fullname(None), schema);
                }
                if d.precision > MAX_DECIMAL_PRECISION {
                    return Err(unsupported(
                        path,
                        &format!(
                            "decimal precision {} is over Iceberg's {MAX_DECIMAL_PRECISION}",
                            d.precision
                        ),
                    ));
                }
                p(PrimitiveType::Decimal {
                    precision: d.precision as u32,
                    scale: d.scale as u32,
                })
            }
            Avro::Array(a) => {
                let (ty, nullable) = self.field_type(&a.items, &join(path, "element"))?;
                Ok(Type::List(ListType::new(Arc::new(
                    NestedField::list_element(0, ty, !nullable),
                ))))
            }
            Avro::Map(m) => {
                let (ty, nullable) = self.field_type(&m.types, &join(path, "value"))?;
                Ok(Type::Map(MapType::new(
                    Arc::new(NestedField::map_key_element(
                        0,
                        Type::Primitive(PrimitiveType::String),
                    )),
                    Arc::new(NestedField::map_value_element(0, ty, !nullable)),
                )))
            }
            Avro::Record(r) => {
                self.named.insert(r.name.fullname(None), schema);
                let fields = self.fields(r, path)?;
                Ok(Type::Struct(StructType::new(
                    fields.into_iter().map(Arc::new).collect(),
                )))
            }
            Avro::Ref { name } => {
                let full = name.fullname(None);
                if self.open.contains(&full) {
                    return Err(unsupported(
                        path,
                        &format!("record {full} contains itself; a recursive record has no fixed columns"),
                    ));
                }
                let Some(&def) = self.named.get(&full) else {
                    return Err(unsupported(path, &format!("type {full} is not defined")));
                };
                self.value_type(def, path)
            }
            Avro::Null => Err(unsupported(path, "the null type alone has no values")),
            Avro::Union(_) => Err(unsupported(path, "a union directly inside a union")),
            Avro::TimestampNanos | Avro::LocalTimestampNanos => Err(unsupported(
                path,
                "nanosecond timestamps need Iceberg v3 tables, which this writer does not make",
            )),
            Avro::Duration(_) => Err(unsupported(path, "Iceberg has no duration type")),
            Avro::BigDecimal => Err(unsupported(
                path,
                "big-decimal has no fixed precision, which an Iceberg decimal needs",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","namespace":"ns","fields":[{fields}]}}"#)
    }

    fn one(field_type: &str) -> Result<NestedField> {
        let fields = columns(&record(&format!(r#"{{"name":"f","type":{field_type}}}"#)))?;
        Ok(fields.into_iter().next().unwrap())
    }

    fn prim(field_type: &str) -> (PrimitiveType, bool) {
        let f = one(field_type).unwrap();
        (
            f.field_type.as_primitive_type().unwrap().clone(),
            f.required,
        )
    }

    #[test]
    fn primitives_map_to_their_iceberg_types() {
        use PrimitiveType as P;
        for (avro, want) in [
            (r#""boolean""#, P::Boolean),
            (r#""int""#, P::Int),
            (r#""long""#, P::Long),
            (r#""float""#, P::Float),
            (r#""double""#, P::Double),
            (r#""string""#, P::String),
            (r#""bytes""#, P::Binary),
            (r#"{"type":"fixed","name":"F","size":4}"#, P::Binary),
            (
                r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
                P::String,
            ),
        ] {
            assert_eq!(prim(avro), (want, true), "{avro}");
        }
    }

    #[test]
    fn logical_types_map_to_dates_times_and_decimals() {
        use PrimitiveType as P;
        let logical = |t: &str, l: &str| format!(r#"{{"type":"{t}","logicalType":"{l}"}}"#);
        for (avro, want) in [
            (logical("long", "timestamp-millis"), INSTANT),
            (logical("long", "timestamp-micros"), INSTANT),
            (logical("long", "local-timestamp-micros"), P::Timestamp),
            (logical("int", "date"), P::Date),
            (logical("int", "time-millis"), P::Time),
            (logical("string", "uuid"), P::String),
            (
                r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#.into(),
                P::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
        ] {
            assert_eq!(prim(&avro).0, want, "{avro}");
        }
    }

    #[test]
    fn a_union_with_null_is_optional_either_way_round() {
        assert_eq!(prim(r#"["null","long"]"#), (PrimitiveType::Long, false));
        assert_eq!(prim(r#"["string","null"]"#), (PrimitiveType::String, false));
        let err = one(r#"["null","long","string"]"#).unwrap_err().to_string();
        assert!(err.contains("\"f\"") && err.contains("several"), "{err}");
        assert!(one(r#"["null"]"#).is_err());
    }

    #[test]
    fn records_arrays_and_maps_nest() {
        let f = one(r#"{"type":"record","name":"In","fields":[
                {"name":"a","type":{"type":"array","items":["null","int"]}},
                {"name":"m","type":{"type":"map","values":"string"}}]}"#)
        .unwrap();
        let Type::Struct(s) = f.field_type.as_ref() else {
            panic!("{f:?}")
        };
        let Type::List(l) = s.fields()[0].field_type.as_ref() else {
            panic!("{s:?}")
        };
        assert!(!l.element_field.required);
        assert!(s.fields()[0].required);
        let Type::Map(m) = s.fields()[1].field_type.as_ref() else {
            panic!("{s:?}")
        };
        assert_eq!(
            *m.key_field.field_type,
            Type::Primitive(PrimitiveType::String)
        );
        assert!(m.value_field.required);
    }

    #[test]
    fn a_named_type_used_twice_expands_twice() {
        let fields = columns(&record(
            r#"{"name":"a","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}},
               {"name":"b","type":["null","P"]},
               {"name":"c","type":"ns.P"}"#,
        ))
        .unwrap();
        assert_eq!(fields[1].field_type, fields[0].field_type);
        assert_eq!(fields[2].field_type, fields[0].field_type);
        assert!(!fields[1].required);
    }

    #[test]
    fn recursion_and_types_without_columns_are_refused_by_field() {
        let err = columns(&record(
            r#"{"name":"next","type":["null","R"]},{"name":"v","type":"int"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"next\"") && err.contains("recursive"),
            "{err}"
        );
        let err = one(r#"{"type":"long","logicalType":"timestamp-nanos"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("v3"), "{err}");
        let err = one(r#"{"type":"bytes","logicalType":"decimal","precision":40,"scale":0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("38"), "{err}");
        assert!(columns(r#""string""#).is_err());
        assert!(columns("{").is_err());
    }
}
