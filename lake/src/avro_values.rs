//! A decoded Avro record as the JSON object arrow-json's decoder turns into the table's
//! columns (`values.rs`), shaped by the column types: timestamps and times in
//! microseconds, dates in days, bytes as hex (arrow-json's binary encoding), decimals
//! as their text at the column's scale, enums and uuids as text. Fields the table has
//! no column for are left out; columns the record has no field for stay null.
//!
//! Records are matched to columns by name, not resolved against the newest schema
//! version: a field added later with a non-null Avro `default` is null in older rows,
//! not its default.

use apache_avro::types::Value as Avro;
use arrow_schema::{DataType, Fields};
use serde_json::{Map, Number, Value};

/// The record's fields that have columns in `fields`, converted for their types.
pub(crate) fn record(value: &Avro, fields: &Fields) -> Result<Value, String> {
    match value {
        Avro::Record(values) => {
            let mut out = Map::new();
            for (name, v) in values {
                if let Some((_, f)) = fields.find(name) {
                    out.insert(name.clone(), convert(v, f.data_type())?);
                }
            }
            Ok(Value::Object(out))
        }
        Avro::Union(_, inner) => record(inner, fields),
        other => Err(format!("{} is not a record", kind(other))),
    }
}

fn kind(v: &Avro) -> String {
    format!("{:?}", apache_avro::schema::SchemaKind::from(v))
}

fn convert(v: &Avro, ty: &DataType) -> Result<Value, String> {
    let mismatch = || format!("{} does not fit a {ty} column", kind(v));
    Ok(match v {
        Avro::Null => Value::Null,
        Avro::Union(_, inner) => return convert(inner, ty),
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(i) | Avro::Date(i) => Value::from(*i),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMicros(i)
        | Avro::LocalTimestampMicros(i) => Value::from(*i),
        Avro::TimeMillis(ms) => Value::from(i64::from(*ms) * 1000),
        Avro::TimestampMillis(ms) | Avro::LocalTimestampMillis(ms) => Value::from(
            ms.checked_mul(1000)
                .ok_or_else(|| format!("timestamp {ms} ms is out of range"))?,
        ),
        Avro::Float(f) => float(f64::from(*f)),
        Avro::Double(f) => float(*f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(hex(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
        Avro::Uuid(u) => Value::String(u.to_string()),
        Avro::Decimal(d) => {
            let DataType::Decimal128(_, scale) = ty else {
                return Err(mismatch());
            };
            let bytes = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
            Value::String(decimal_text(&bytes, *scale)?)
        }
        Avro::Array(items) => {
            let DataType::List(element) = ty else {
                return Err(mismatch());
            };
            let items: Result<Vec<Value>, String> = items
                .iter()
                .map(|i| convert(i, element.data_type()))
                .collect();
            Value::Array(items?)
        }
        Avro::Map(entries) => {
            let DataType::Map(kv, _) = ty else {
                return Err(mismatch());
            };
            let DataType::Struct(kv) = kv.data_type() else {
                return Err(mismatch());
            };
            let value_type = kv.get(1).ok_or_else(mismatch)?.data_type();
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k.clone(), convert(v, value_type)?);
            }
            Value::Object(out)
        }
        Avro::Record(_) => {
            let DataType::Struct(fields) = ty else {
                return Err(mismatch());
            };
            record(v, fields)?
        }
        other => return Err(format!("{} has no column type", kind(other))),
    })
}

/// JSON has no NaN or infinity; arrow parses their names from text.
fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A big-endian two's-complement unscaled value as decimal text with `scale` digits
/// after the point (`-5` at scale 2 is `-0.05`).
fn decimal_text(bytes: &[u8], scale: i8) -> Result<String, String> {
    if bytes.len() > 16 {
        return Err(format!(
            "a decimal of {} bytes is over 38 digits",
            bytes.len()
        ));
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xff; 16] } else { [0; 16] };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(buf);
    let scale = usize::try_from(scale).map_err(|_| format!("negative scale {scale}"))?;
    let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Ok(if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_schema::{Field, TimeUnit};

    #[test]
    fn decimals_keep_their_scale_and_sign() {
        assert_eq!(decimal_text(&[0x30, 0x39], 2).unwrap(), "123.45");
        assert_eq!(decimal_text(&[0xfb], 2).unwrap(), "-0.05");
        assert_eq!(decimal_text(&[0x07], 0).unwrap(), "7");
        assert_eq!(decimal_text(&[], 1).unwrap(), "0.0");
        assert!(decimal_text(&[1; 17], 0).is_err());
    }

    #[test]
    fn values_take_the_shape_of_their_columns() {
        let fields = Fields::from(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new("b", DataType::LargeBinary, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                true,
            ),
        ]);
        let v = Avro::Record(vec![
            ("ts".into(), Avro::TimestampMillis(1_700_000_000_123)),
            ("b".into(), Avro::Bytes(vec![0x00, 0xab])),
            (
                "l".into(),
                Avro::Array(vec![
                    Avro::Enum(1, "B".into()),
                    Avro::Union(0, Box::new(Avro::Null)),
                ]),
            ),
            ("gone".into(), Avro::Int(1)),
        ]);
        assert_eq!(
            record(&v, &fields).unwrap(),
            serde_json::json!({"ts": 1_700_000_000_123_000i64, "b": "00ab", "l": ["B", null]})
        );
        assert!(record(&Avro::Int(1), &fields).is_err());
        // Scalars are left for arrow-json to check; shapes are checked here.
        let bad = Avro::Record(vec![("ts".into(), Avro::Array(vec![]))]);
        assert!(record(&bad, &fields).unwrap_err().contains("does not fit"));
        assert_eq!(float(f64::NAN), Value::String("NaN".into()));
    }
}
