//! Avro schemas: parsing (with the parser's message on failure), the canonical text that
//! decides whether two registrations are the same schema, and exact decoding of one datum
//! (the produce path checks it; the lake writer turns the value into table columns).

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::Schema;
use std::io::Read;

/// Parses an Avro schema; the error is the parser's message.
pub fn parse(text: &str) -> Result<Schema, String> {
    Schema::parse_str(text).map_err(|e| e.to_string())
}

/// The text two registrations are compared by. Not Avro's Parsing Canonical Form: that drops
/// `default`, `doc` and `aliases`, so adding a default to a field (a real evolution step)
/// would look like re-registering the old schema. Instead: the JSON with whitespace and key
/// order normalised, which keeps every attribute, as Confluent's comparison does.
pub fn canonical(text: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(value.to_string())
}

/// Decodes one datum written with `schema` and checks that it used every byte: a datum
/// followed by trailing bytes is not what a Confluent serializer writes.
pub fn decode_exact(schema: &Schema, payload: &[u8]) -> Result<Value, String> {
    let mut input = Tracked {
        rest: payload,
        short: false,
    };
    // The reader borrows the schema, so it is built per datum: it only resolves named types.
    let reader = GenericDatumReader::builder(schema)
        .build()
        .map_err(|e| e.to_string())?;
    let value = reader.read_value(&mut input).map_err(|e| e.to_string())?;
    // apache-avro decodes a string cut short as null instead of failing; the input knows.
    if input.short {
        return Err(format!("the datum ends early ({} bytes)", payload.len()));
    }
    if !input.rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the datum (at byte {})",
            input.rest.len(),
            payload.len() - input.rest.len()
        ));
    }
    Ok(value)
}

/// The payload as `Read`, remembering whether the decoder ever asked for more than was left.
struct Tracked<'a> {
    rest: &'a [u8],
    short: bool,
}

impl Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.short = true;
        }
        self.rest.read(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.len() > self.rest.len() {
            self.short = true;
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.rest.read_exact(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;

    #[test]
    fn parse_reports_the_parser_message() {
        assert!(parse(RECORD).is_ok());
        let err = parse(r#"{"type":"record","name":"R"}"#).unwrap_err();
        assert!(err.to_lowercase().contains("fields"), "{err}");
    }

    #[test]
    fn canonical_ignores_layout_but_keeps_defaults() {
        let spaced = "{ \"name\":\"R\", \"type\" : \"record\", \"fields\":[{\"type\":\"long\",\"name\":\"a\"}]}";
        assert_eq!(canonical(RECORD).unwrap(), canonical(spaced).unwrap());
        let with_default =
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long","default":1}]}"#;
        assert_ne!(canonical(RECORD).unwrap(), canonical(with_default).unwrap());
    }

    #[test]
    fn decode_exact_refuses_short_and_trailing_bytes() {
        let schema = parse(RECORD).unwrap();
        assert!(decode_exact(&schema, &[0x02]).is_ok()); // zigzag 1
        assert!(decode_exact(&schema, &[]).is_err());
        // A string cut short (apache-avro alone would decode it as null).
        let with_string =
            parse(r#"{"type":"record","name":"S","fields":[{"name":"s","type":"string"}]}"#)
                .unwrap();
        assert!(decode_exact(&with_string, &[0x04, b'h', b'i']).is_ok());
        assert!(decode_exact(&with_string, &[0x04, b'h'])
            .unwrap_err()
            .contains("early"));
        let err = decode_exact(&schema, &[0x02, 0x00]).unwrap_err();
        assert!(err.contains("trailing"), "{err}");
    }
}
