//! Compatibility levels and the check of a candidate schema against a subject's versions.
//! The per-format rules live in `avro` (apache-avro's reader/writer resolution) and `json`
//! (Confluent's JSON Schema rules, written down there). BACKWARD: a reader with the new schema
//! reads data written with the old; FORWARD: the other way round; FULL: both; the transitive
//! levels check every live version instead of only the latest.

pub mod avro;
pub mod json;

use serde::{Deserialize, Serialize};

use crate::stored::{SchemaType, StoredSchema};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    /// Confluent's default.
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn as_str(&self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Case-insensitive, as Confluent accepts `backward` as well as `BACKWARD`.
    pub fn parse(s: &str) -> Option<Compatibility> {
        const ALL: [Compatibility; 7] = [
            Compatibility::None,
            Compatibility::Backward,
            Compatibility::BackwardTransitive,
            Compatibility::Forward,
            Compatibility::ForwardTransitive,
            Compatibility::Full,
            Compatibility::FullTransitive,
        ];
        ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

/// Checks `candidate` against a subject's live versions `existing` ((version, schema), oldest
/// first) under `level`. Empty when compatible; otherwise messages naming each broken rule,
/// followed by the old version and the level, as Confluent's verbose answer does.
pub fn check(
    level: Compatibility,
    candidate: &StoredSchema,
    existing: &[(i32, &StoredSchema)],
) -> Vec<String> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let against: &[(i32, &StoredSchema)] = if level.transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut messages = Vec::new();
    // Newest first, as Confluent reports.
    for (version, old) in against.iter().rev() {
        let mut found = Vec::new();
        if old.schema_type != candidate.schema_type {
            found.push(format!(
                "{{errorType:'SCHEMA_TYPE_CHANGED', description:'The new schema is of type {} but version {version} is {}'}}",
                candidate.schema_type.as_str(),
                old.schema_type.as_str()
            ));
        } else {
            if level.backward() {
                found.extend(pair(old, candidate));
            }
            if level.forward() {
                found.extend(pair(candidate, old));
            }
        }
        if !found.is_empty() {
            messages.extend(found);
            messages.push(format!("{{oldSchemaVersion: {version}}}"));
            messages.push(format!("{{compatibility: '{}'}}", level.as_str()));
        }
    }
    messages
}

/// Whether a reader using `reader` can read everything written with `writer` (same type).
fn pair(writer: &StoredSchema, reader: &StoredSchema) -> Vec<String> {
    match writer.schema_type {
        SchemaType::Avro => avro::can_read(&writer.schema, &reader.schema),
        SchemaType::Json => json::can_read(&writer.schema, &reader.schema),
    }
}

#[cfg(test)]
mod tests;
