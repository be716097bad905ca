//! What a Feed's `spec.schema` asks of the brokers: the topic configs that turn
//! validation on (or off), and the schema to register first. Pure.

use std::collections::BTreeMap;

use crate::crd::feed::{Compatibility, SchemaFormat, ValidationLevel, ValidationMode};
use crate::crd::Feed;
use crate::registry::Registration;

pub use sluice_schema::topic_configs::{
    ALL as SCHEMA_CONFIGS, DEAD_LETTER_TOPIC, SCHEMA_FORMAT, SCHEMA_LEVEL, SCHEMA_MODE,
    SCHEMA_SUBJECT, SCHEMA_VERSION,
};

/// The schema topic configs of the feed's topic: all `None` (the broker's default: no
/// validation) without `spec.schema`. Problems with the spec go to `problems`.
pub fn schema_configs(
    feed: &Feed,
    problems: &mut Vec<String>,
) -> BTreeMap<&'static str, Option<String>> {
    let mut configs: BTreeMap<&'static str, Option<String>> =
        SCHEMA_CONFIGS.iter().map(|k| (*k, None)).collect();
    let (Some(schema), Some(subject)) = (&feed.spec.schema, feed.schema_subject()) else {
        return configs;
    };
    if subject.is_empty() {
        problems.push("schema.subject must not be empty".into());
    }
    let dead_letter_topic = match schema.mode {
        ValidationMode::DeadLetter => {
            let topic = feed.dead_letter_topic();
            if topic.is_none() {
                problems.push("schema.mode deadLetter needs spec.deadLetter".into());
            }
            topic
        }
        ValidationMode::Reject | ValidationMode::Observe => None,
    };
    let mode = match schema.mode {
        ValidationMode::Reject => "reject",
        ValidationMode::DeadLetter => "dead-letter",
        ValidationMode::Observe => "observe",
    };
    let level = match schema.level {
        ValidationLevel::Id => "id",
        ValidationLevel::Full => "full",
    };
    let version = match schema.version {
        Some(v) if v < 1 => {
            problems.push(format!("schema.version {v} must be at least 1"));
            None
        }
        Some(v) => Some(v.to_string()),
        None => Some("latest".to_string()),
    };
    configs.insert(SCHEMA_SUBJECT, Some(subject));
    configs.insert(SCHEMA_FORMAT, Some(format_name(schema.format).into()));
    configs.insert(SCHEMA_LEVEL, Some(level.into()));
    configs.insert(SCHEMA_MODE, Some(mode.into()));
    configs.insert(SCHEMA_VERSION, version);
    configs.insert(DEAD_LETTER_TOPIC, dead_letter_topic);
    configs
}

/// `sluice.schema.format` of a format.
pub fn format_name(format: SchemaFormat) -> &'static str {
    match format {
        SchemaFormat::Avro => "avro",
        SchemaFormat::JsonSchema => "json-schema",
        SchemaFormat::Json => "json",
    }
}

/// The registry's `schemaType` for a format: Avro, or JSON Schema for both JSON formats.
pub fn schema_type(format: SchemaFormat) -> &'static str {
    match format {
        SchemaFormat::Avro => "AVRO",
        SchemaFormat::JsonSchema | SchemaFormat::Json => "JSON",
    }
}

/// The registry's name of a compatibility level.
pub fn compatibility_name(level: Compatibility) -> &'static str {
    match level {
        Compatibility::None => "NONE",
        Compatibility::Backward => "BACKWARD",
        Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
        Compatibility::Forward => "FORWARD",
        Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
        Compatibility::Full => "FULL",
        Compatibility::FullTransitive => "FULL_TRANSITIVE",
    }
}

/// The inline schema to register before validation is turned on; `None` when the Feed
/// has none (the subject is managed elsewhere).
pub fn registration(feed: &Feed) -> Option<Registration> {
    let schema = feed.spec.schema.as_ref()?;
    Some(Registration {
        subject: feed.schema_subject()?,
        schema_type: schema_type(schema.format),
        schema: schema.schema.clone()?,
        compatibility: schema.compatibility.map(compatibility_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::feed::{DeadLetterSpec, SchemaSpec};

    use crate::controller::feed::testing::values;

    fn feed(schema: Option<&str>) -> Feed {
        let mut f = crate::controller::feed::testing::feed("dns");
        f.spec.schema = schema.map(|s| serde_yaml::from_str::<SchemaSpec>(s).unwrap());
        f
    }

    #[test]
    fn no_schema_section_resets_every_schema_config() {
        let mut problems = vec![];
        let configs = schema_configs(&feed(None), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(configs.len(), SCHEMA_CONFIGS.len());
        assert!(configs.values().all(Option::is_none));
        assert_eq!(registration(&feed(None)), None);
    }

    #[test]
    fn defaults_validate_fully_against_the_latest_topic_value_subject_and_reject() {
        let mut problems = vec![];
        let configs = schema_configs(&feed(Some("format: avro")), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(
            values(&configs),
            [
                (DEAD_LETTER_TOPIC, None),
                (SCHEMA_FORMAT, Some("avro")),
                (SCHEMA_LEVEL, Some("full")),
                (SCHEMA_MODE, Some("reject")),
                (SCHEMA_SUBJECT, Some("dns-value")),
                (SCHEMA_VERSION, Some("latest")),
            ]
        );
    }

    #[test]
    fn dead_letter_mode_names_the_dead_letter_topic() {
        let mut f = feed(Some(
            "{format: json, subject: ocsf-dns, level: id, mode: deadLetter, version: 3}",
        ));
        let mut problems = vec![];
        schema_configs(&f, &mut problems);
        assert_eq!(
            problems,
            ["schema.mode deadLetter needs spec.deadLetter"],
            "what CEL refuses is refused here too"
        );
        f.spec.dead_letter = Some(DeadLetterSpec::default());
        let mut problems = vec![];
        let configs = schema_configs(&f, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(
            values(&configs),
            [
                (DEAD_LETTER_TOPIC, Some("dns.dlq")),
                (SCHEMA_FORMAT, Some("json")),
                (SCHEMA_LEVEL, Some("id")),
                (SCHEMA_MODE, Some("dead-letter")),
                (SCHEMA_SUBJECT, Some("ocsf-dns")),
                (SCHEMA_VERSION, Some("3")),
            ]
        );
    }

    #[test]
    fn an_inline_schema_is_registered_with_its_type_and_compatibility() {
        let f = feed(Some(
            "{format: json-schema, schema: '{\"type\":\"object\"}', compatibility: BACKWARD_TRANSITIVE}",
        ));
        assert_eq!(
            registration(&f),
            Some(Registration {
                subject: "dns-value".into(),
                schema_type: "JSON",
                schema: "{\"type\":\"object\"}".into(),
                compatibility: Some("BACKWARD_TRANSITIVE"),
            })
        );
        let avro = feed(Some("{format: avro, schema: '\"string\"'}"));
        let r = registration(&avro).unwrap();
        assert_eq!((r.schema_type, r.compatibility), ("AVRO", None));
        assert_eq!(registration(&feed(Some("{format: avro}"))), None);
    }

    #[test]
    fn a_pinned_version_below_one_is_a_problem() {
        let mut problems = vec![];
        schema_configs(&feed(Some("{format: json, version: 0}")), &mut problems);
        assert_eq!(problems, ["schema.version 0 must be at least 1"]);
    }
}
