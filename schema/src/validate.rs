//! Record validation for the produce path: a [`Validator`] is built once per topic setting
//! (schemas parsed and compiled then) and checks many record values, allocating only what
//! decoding a payload needs.
//!
//! Ids: a framed value's id must be one of the allowed ids. An id outside them is
//! [`Reason::WrongSubject`] when the validator knows the id exists (ids given with
//! [`Validator::with_known_ids`], as [`Validator::for_subject`] does from the registry) and
//! [`Reason::UnknownId`] when it knows the id does not. A validator built with only
//! [`Validator::new`] knows no other ids, so it says `WrongSubject` ("not one you may use")
//! for every id it does not allow.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use serde::de::IgnoredAny;
use serde_json::Value;

use crate::error::RegistryError;
use crate::registry::{Registry, VersionRef};
use crate::stored::{SchemaType, StoredSchema};
use crate::{avro, json_schema, wire};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Confluent framing, Avro payload.
    Avro,
    /// Confluent framing, JSON payload validated against a JSON Schema.
    JsonSchema,
    /// Plain JSON, no framing (what log collectors send), validated against one schema.
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "avro" => Ok(Format::Avro),
            "json-schema" => Ok(Format::JsonSchema),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "unknown format {s:?}: expected avro, json-schema or json"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Framing and id only (for `Json`: the value is JSON); the payload is not decoded.
    Id,
    /// Also decode the payload and validate it against the id's schema.
    Full,
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "id" => Ok(Level::Id),
            "full" => Ok(Level::Full),
            _ => Err(format!(
                "unknown validation level {s:?}: expected id or full"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NoValue,
    Framing,
    UnknownId,
    WrongSubject,
    Decode,
    Schema,
    NotJson,
}

impl Reason {
    /// The metric label and header value.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::NoValue => "no_value",
            Reason::Framing => "framing",
            Reason::UnknownId => "unknown_id",
            Reason::WrongSubject => "wrong_subject",
            Reason::Decode => "decode",
            Reason::Schema => "schema",
            Reason::NotJson => "not_json",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: Reason,
    /// Short and human; names the field or byte.
    pub detail: String,
    pub schema_id: Option<i32>,
}

/// Longest `detail`, so a rejection stays a short header.
const MAX_DETAIL: usize = 200;

fn invalid(reason: Reason, detail: impl Into<String>, schema_id: Option<i32>) -> Invalid {
    let mut detail: String = detail.into();
    if detail.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push('…');
    }
    Invalid {
        reason,
        detail,
        schema_id,
    }
}

/// One allowed schema, compiled for the level.
enum Compiled {
    /// Level::Id: nothing to decode with.
    IdOnly,
    Avro(apache_avro::Schema),
    Json(Box<jsonschema::Validator>),
}

pub struct Validator {
    format: Format,
    level: Level,
    allowed: HashMap<i32, Compiled>,
    /// For `Json`: the one schema values are validated against.
    json_id: i32,
    /// Every id that exists, when known (see the module doc).
    known: Option<HashSet<i32>>,
}

impl Validator {
    /// `allowed`: (id, schema) pairs a value may use (for Json: the first one is validated
    /// against, and its id reported). Every schema must suit the format (Avro schemas for
    /// `Avro`, JSON Schemas otherwise).
    pub fn new(
        format: Format,
        level: Level,
        allowed: Vec<(i32, StoredSchema)>,
    ) -> Result<Self, RegistryError> {
        let Some(&(json_id, _)) = allowed.first() else {
            return Err(RegistryError::Unusable("no schema allowed".into()));
        };
        let want = match format {
            Format::Avro => SchemaType::Avro,
            Format::JsonSchema | Format::Json => SchemaType::Json,
        };
        let mut compiled = HashMap::new();
        for (id, s) in allowed {
            if s.schema_type != want {
                return Err(RegistryError::Unusable(format!(
                    "schema {id} is {}, the format needs {}",
                    s.schema_type.as_str(),
                    want.as_str()
                )));
            }
            let c = match (level, s.schema_type) {
                (Level::Id, _) => Compiled::IdOnly,
                (Level::Full, SchemaType::Avro) => {
                    Compiled::Avro(avro::parse(&s.schema).map_err(RegistryError::InvalidSchema)?)
                }
                (Level::Full, SchemaType::Json) => {
                    let (_, v) =
                        json_schema::compile(&s.schema).map_err(RegistryError::InvalidSchema)?;
                    Compiled::Json(Box::new(v))
                }
            };
            compiled.insert(id, c);
        }
        Ok(Validator {
            format,
            level,
            allowed: compiled,
            json_id,
            known: None,
        })
    }

    /// Tells the validator every id that exists, so an id it does not allow is told apart as
    /// `WrongSubject` (exists) or `UnknownId` (does not).
    pub fn with_known_ids(mut self, ids: impl IntoIterator<Item = i32>) -> Self {
        self.known = Some(ids.into_iter().collect());
        self
    }

    /// Builds from the registry for `subject`: version None = every live version allowed
    /// (Json validates against the latest), Some(n) pins one (-1 = latest).
    pub fn for_subject(
        registry: &Registry,
        subject: &str,
        version: Option<i32>,
        format: Format,
        level: Level,
    ) -> Result<Self, RegistryError> {
        let mut ids = registry.subject_ids(subject, version)?;
        if version.is_none() {
            // Latest first: Json validates against the first.
            let latest = registry.version(subject, VersionRef::Latest, false)?.id;
            ids.retain(|&id| id != latest);
            ids.insert(0, latest);
        }
        let allowed = ids
            .into_iter()
            .map(|id| {
                let s = registry
                    .schema_by_id(id)
                    .ok_or(RegistryError::SchemaIdNotFound(id))?;
                Ok((id, s.clone()))
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(Validator::new(format, level, allowed)?.with_known_ids(registry.ids()))
    }

    /// Ok(schema id the value used) or why it is invalid.
    pub fn validate(&self, value: Option<&[u8]>) -> Result<i32, Invalid> {
        let Some(value) = value else {
            return Err(invalid(Reason::NoValue, "the record has no value", None));
        };
        if self.format == Format::Json {
            return self.validate_json(self.json_id, value);
        }
        let (id, payload) =
            wire::split(value).map_err(|e| invalid(Reason::Framing, e.to_string(), None))?;
        let Some(compiled) = self.allowed.get(&id) else {
            let exists = self.known.as_ref().is_none_or(|k| k.contains(&id));
            return Err(if exists {
                invalid(
                    Reason::WrongSubject,
                    format!("schema id {id} is not allowed here"),
                    Some(id),
                )
            } else {
                invalid(
                    Reason::UnknownId,
                    format!("schema id {id} is not registered"),
                    Some(id),
                )
            });
        };
        match compiled {
            Compiled::IdOnly => Ok(id),
            Compiled::Avro(schema) => avro::decode_exact(schema, payload)
                .map(|_| id)
                .map_err(|e| invalid(Reason::Decode, e, Some(id))),
            Compiled::Json(_) => self.validate_json(id, payload),
        }
    }

    /// A JSON payload: parsed, and at the full level validated against schema `id`.
    fn validate_json(&self, id: i32, payload: &[u8]) -> Result<i32, Invalid> {
        let not_json = |e: serde_json::Error| {
            invalid(
                Reason::NotJson,
                format!("not JSON at line {} column {}: {e}", e.line(), e.column()),
                Some(id),
            )
        };
        let Some(Compiled::Json(validator)) =
            self.allowed.get(&id).filter(|_| self.level == Level::Full)
        else {
            // Id level: syntax only, without building the document.
            serde_json::from_slice::<IgnoredAny>(payload).map_err(not_json)?;
            return Ok(id);
        };
        let doc: Value = serde_json::from_slice(payload).map_err(not_json)?;
        if validator.is_valid(&doc) {
            return Ok(id);
        }
        let detail = match validator.iter_errors(&doc).next() {
            Some(e) => {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { &at })
            }
            None => "does not match the schema".to_string(),
        };
        Err(invalid(Reason::Schema, detail, Some(id)))
    }
}

#[cfg(test)]
mod tests;
