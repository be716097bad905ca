//! One schema as the registry stores it: its type, its text as registered, and the canonical
//! text that decides whether a later registration is the same schema. Constructed only by
//! parsing, so every stored schema is known to compile.

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::{avro, json_schema};

/// Confluent's `schemaType`. PROTOBUF is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchemaType {
    Avro,
    Json,
}

impl SchemaType {
    pub fn as_str(&self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
        }
    }

    /// Parses Confluent's `schemaType` field (case-insensitive, as Confluent's is);
    /// anything else, PROTOBUF included, is Confluent's invalid-schema-type error.
    pub fn parse(s: &str) -> Result<SchemaType, RegistryError> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            _ => Err(RegistryError::InvalidSchema(format!(
                "Invalid schema type {s}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchema {
    pub schema_type: SchemaType,
    /// The text as first registered.
    pub schema: String,
    canonical: String,
}

impl StoredSchema {
    /// Parses (and for JSON Schema compiles) `text`; a schema that does not parse is
    /// Confluent's 42201 with the parser's message.
    pub fn parse(schema_type: SchemaType, text: &str) -> Result<StoredSchema, RegistryError> {
        let invalid = |detail: String| {
            RegistryError::InvalidSchema(format!(
                "Invalid schema of type {}, details: {detail}",
                schema_type.as_str()
            ))
        };
        let canonical = match schema_type {
            SchemaType::Avro => {
                avro::parse(text).map_err(invalid)?;
                avro::canonical(text).map_err(invalid)?
            }
            SchemaType::Json => {
                let (value, _) = json_schema::compile(text).map_err(invalid)?;
                json_schema::canonical(&value)
            }
        };
        Ok(StoredSchema {
            schema_type,
            schema: text.to_string(),
            canonical,
        })
    }

    /// Whether `other` is the same schema (same type, same canonical text).
    pub fn same_as(&self, other: &StoredSchema) -> bool {
        self.schema_type == other.schema_type && self.canonical == other.canonical
    }
}
