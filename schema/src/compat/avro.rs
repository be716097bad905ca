//! Avro compatibility: apache-avro's schema resolution rules (the Avro specification's, as
//! Confluent applies them through the Java library). A partial match (the reader lacks some
//! enum symbols or union branches the writer has) fails: some written data would not resolve.

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::avro;

/// Messages for each reason a reader with `reader` cannot read data written with `writer`.
pub fn can_read(writer: &str, reader: &str) -> Vec<String> {
    let (writer, reader) = match (avro::parse(writer), avro::parse(reader)) {
        (Ok(w), Ok(r)) => (w, r),
        (Err(e), _) | (_, Err(e)) => {
            return vec![format!("{{errorType:'INVALID_SCHEMA', description:'{e}'}}")]
        }
    };
    match SchemaCompatibility::can_read(&writer, &reader) {
        Ok(Compatibility::Full) => Vec::new(),
        Ok(Compatibility::Partial) => vec![
            "{errorType:'MISSING_ENUM_SYMBOLS_OR_UNION_BRANCHES', description:'The reader schema lacks some enum symbols or union branches that the writer schema has, and no default covers them'}".to_string(),
        ],
        Err(e) => {
            // The top error names the field; its sources say what is wrong with it.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            vec![format!("{{errorType:'READER_CANNOT_READ_WRITER', description:'{text}'}}")]
        }
    }
}
