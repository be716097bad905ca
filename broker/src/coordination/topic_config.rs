//! Topic configs this broker implements: their defaults, validation and effective values.
//! A config exists here only once the broker honours it. Kafka's own names, plus
//! `sluice.schema.*` and `sluice.dead.letter.topic` for validation on produce, and
//! `sluice.table.*` for a feed's Iceberg table (checked by `sluice_lake::spec`).

use std::collections::BTreeMap;

use sluice_schema::validate::{Format, Level};

pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub use sluice_schema::topic_configs::{
    DEAD_LETTER_TOPIC, FEED_OWNER, SCHEMA_FORMAT, SCHEMA_LEVEL, SCHEMA_MODE, SCHEMA_SUBJECT,
    SCHEMA_VERSION, TABLE_COMMIT_INTERVAL_MS, TABLE_ENABLED, TABLE_GENERATION,
    TABLE_MAINTENANCE_INTERVAL_MS, TABLE_MODE, TABLE_NAME, TABLE_NAMESPACE, TABLE_PARTITIONING,
    TABLE_REPLAYS, TABLE_TARGET_FILE_BYTES,
};

/// Kafka's config types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

pub struct ConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
    pub doc: &'static str,
    /// Checks a value; given the config's name too, for checks shared by several.
    validate: fn(&str, &str) -> Result<(), String>,
}

fn long_at_least_minus_one(_: &str, v: &str) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if n >= -1 => Ok(()),
        _ => Err(format!("{v:?} is not a number >= -1")),
    }
}

fn positive_int(_: &str, v: &str) -> Result<(), String> {
    match v.parse::<i32>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err(format!("{v:?} is not a positive integer")),
    }
}

fn delete_only(_: &str, v: &str) -> Result<(), String> {
    if v == "delete" {
        Ok(())
    } else {
        Err(format!(
            "cleanup.policy {v:?} is not supported; only \"delete\""
        ))
    }
}

fn any_string(_: &str, _: &str) -> Result<(), String> {
    Ok(())
}

fn parses<T: std::str::FromStr>(_: &str, v: &str) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>().map(|_| ()).map_err(|e| e.to_string())
}

fn empty_or_topic_name(_: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        Ok(())
    } else {
        validate_topic_name(v)
    }
}

pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: CLEANUP_POLICY,
        default: "delete",
        kind: ConfigType::List,
        doc: "Only \"delete\": old segments are removed by retention.",
        validate: delete_only,
    },
    ConfigDef {
        name: MAX_MESSAGE_BYTES,
        default: "1048588",
        kind: ConfigType::Int,
        doc: "Largest record batch accepted, in bytes.",
        validate: positive_int,
    },
    ConfigDef {
        name: RETENTION_BYTES,
        default: "-1",
        kind: ConfigType::Long,
        doc: "Size a partition may reach before its oldest segments are deleted; -1: no limit.",
        validate: long_at_least_minus_one,
    },
    ConfigDef {
        name: RETENTION_MS,
        default: "604800000",
        kind: ConfigType::Long,
        doc: "Age of a segment's newest record after which it is deleted; -1: forever.",
        validate: long_at_least_minus_one,
    },
    ConfigDef {
        name: DEAD_LETTER_TOPIC,
        default: "",
        kind: ConfigType::String,
        doc: "Topic that receives the records failing validation when sluice.schema.mode is dead-letter.",
        validate: empty_or_topic_name,
    },
    ConfigDef {
        name: SCHEMA_FORMAT,
        default: "avro",
        kind: ConfigType::String,
        doc: "How record values are encoded: avro or json-schema (Confluent framing: magic byte 0, 4-byte schema id), or json (plain JSON, validated against the subject's schema).",
        validate: parses::<Format>,
    },
    ConfigDef {
        name: SCHEMA_LEVEL,
        default: "full",
        kind: ConfigType::String,
        doc: "id: the framing names a schema id of the subject; full: every value is also decoded and validated against it.",
        validate: parses::<Level>,
    },
    ConfigDef {
        name: SCHEMA_MODE,
        default: "reject",
        kind: ConfigType::String,
        doc: "What happens to a batch holding invalid records: reject (INVALID_RECORD, nothing lands), dead-letter (valid records land, invalid ones go to sluice.dead.letter.topic) or observe (all land, invalid ones are counted).",
        validate: parses::<Mode>,
    },
    ConfigDef {
        name: SCHEMA_SUBJECT,
        default: "",
        kind: ConfigType::String,
        doc: "Schema registry subject record values must conform to; empty: no validation.",
        validate: any_string,
    },
    ConfigDef {
        name: SCHEMA_VERSION,
        default: "latest",
        kind: ConfigType::String,
        doc: "latest: any live version of the subject (plain json: the latest); a number pins that version.",
        validate: parses::<SchemaVersion>,
    },
    ConfigDef {
        name: TABLE_ENABLED,
        default: "false",
        kind: ConfigType::Boolean,
        doc: "true: the brokers leading this topic's partitions write its records to an Iceberg table (docs/lake.md).",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_NAMESPACE,
        default: "sluice",
        kind: ConfigType::String,
        doc: "Namespace (database) of the topic's table.",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_NAME,
        default: "",
        kind: ConfigType::String,
        doc: "Name of the topic's table; empty: the topic name with every character other than letters and digits as _.",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_MODE,
        default: "raw",
        kind: ConfigType::String,
        doc: "raw: key, value and headers as columns beside the lineage columns; schema: a column per field of the sluice.schema.subject's latest version, evolving with it.",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_PARTITIONING,
        default: "hour",
        kind: ConfigType::String,
        doc: "Table partitions by the record timestamp's hour or day, by a column (identity:<column>), or none.",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_COMMIT_INTERVAL_MS,
        default: "60000",
        kind: ConfigType::Long,
        doc: "How often the table gets a commit (one snapshot per broker writing it), at least 1000.",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_TARGET_FILE_BYTES,
        default: "134217728",
        kind: ConfigType::Long,
        doc: "Size at which a data file is closed and the next one begun.",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_MAINTENANCE_INTERVAL_MS,
        default: "3600000",
        kind: ConfigType::Long,
        doc: "How often the table's upkeep runs: small files compacted, old snapshots expired and the files only they reached deleted (at least 1000).",
        validate: validate_table_config,
    },
    ConfigDef {
        name: TABLE_REPLAYS,
        default: "",
        kind: ConfigType::String,
        doc: "The feed's approved replays, a JSON array (set by the operator from the Feed's spec.replays; docs/replay.md).",
        validate: validate_table_config,
    },
    ConfigDef {
        name: FEED_OWNER,
        default: "",
        kind: ConfigType::String,
        doc: "The team that owns the feed (set by the operator from the Feed's spec.owner.team), named in evidence reports.",
        validate: |_, _| Ok(()),
    },
    ConfigDef {
        name: TABLE_GENERATION,
        default: "",
        kind: ConfigType::Long,
        doc: "The Feed generation that set the table configs, recorded in every commit (set by the operator).",
        validate: validate_table_config,
    },
];

fn validate_table_config(name: &str, v: &str) -> Result<(), String> {
    sluice_lake::spec::validate_config(name, v)
}

pub fn definition(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one config; the error says why it is refused.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def =
        definition(name).ok_or_else(|| format!("unknown or unsupported topic config {name:?}"))?;
    (def.validate)(name, value)
}

/// The values a topic's configs resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
}

/// What a produce does with a batch holding records that fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Reject,
    DeadLetter,
    Observe,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reject" => Ok(Mode::Reject),
            "dead-letter" => Ok(Mode::DeadLetter),
            "observe" => Ok(Mode::Observe),
            _ => Err(format!(
                "{s:?} is not a validation mode (reject, dead-letter, observe)"
            )),
        }
    }
}

/// `sluice.schema.version`: every live version, or one pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion(pub Option<i32>);

impl std::str::FromStr for SchemaVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(SchemaVersion(None)),
            n => match n.parse::<i32>() {
                Ok(v) if v > 0 => Ok(SchemaVersion(Some(v))),
                _ => Err(format!("{s:?} is neither \"latest\" nor a version number")),
            },
        }
    }
}

/// How a topic's records are validated on produce (`sluice.schema.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaPolicy {
    pub subject: String,
    pub format: Format,
    pub level: Level,
    pub mode: Mode,
    pub version: Option<i32>,
    /// Set when `mode` is dead-letter.
    pub dead_letter_topic: Option<String>,
}

/// The topic's validation policy; `None` when it names no subject. The error says which
/// config is inconsistent (each was validated alone when it was set).
pub fn schema_policy(configs: &BTreeMap<String, String>) -> Result<Option<SchemaPolicy>, String> {
    let subject = value(configs, SCHEMA_SUBJECT);
    if subject.is_empty() {
        return Ok(None);
    }
    let mode: Mode = value(configs, SCHEMA_MODE).parse()?;
    let dead_letter = value(configs, DEAD_LETTER_TOPIC);
    if mode == Mode::DeadLetter && dead_letter.is_empty() {
        return Err(format!(
            "{SCHEMA_MODE} is dead-letter but {DEAD_LETTER_TOPIC} is not set"
        ));
    }
    Ok(Some(SchemaPolicy {
        subject: subject.to_string(),
        format: value(configs, SCHEMA_FORMAT)
            .parse()
            .map_err(|e: <Format as std::str::FromStr>::Err| e.to_string())?,
        level: value(configs, SCHEMA_LEVEL)
            .parse()
            .map_err(|e: <Level as std::str::FromStr>::Err| e.to_string())?,
        mode,
        version: value(configs, SCHEMA_VERSION).parse::<SchemaVersion>()?.0,
        dead_letter_topic: (mode == Mode::DeadLetter).then(|| dead_letter.to_string()),
    }))
}

pub fn value<'a>(configs: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    configs
        .get(name)
        .map(String::as_str)
        .or_else(|| definition(name).map(|d| d.default))
        .unwrap_or_default()
}

pub fn settings(configs: &BTreeMap<String, String>) -> TopicSettings {
    let num = |name| value(configs, name).parse::<i64>().unwrap_or(-1);
    TopicSettings {
        retention_ms: num(RETENTION_MS),
        retention_bytes: num(RETENTION_BYTES),
        max_message_bytes: num(MAX_MESSAGE_BYTES).max(0) as usize,
    }
}

/// Kafka's topic name rule: 1..=249 of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is illegal"));
    }
    if name.len() > 249 {
        return Err("topic name is longer than 249 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains illegal character {c:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_known_configs_and_refuses_the_rest() {
        assert!(validate(RETENTION_MS, "1000").is_ok());
        assert!(validate(RETENTION_MS, "-2").is_err());
        assert!(validate(RETENTION_BYTES, "abc").is_err());
        assert!(validate(CLEANUP_POLICY, "compact").is_err());
        assert!(validate("segment.jitter.ms", "1").is_err());
        let mut c = BTreeMap::new();
        c.insert(RETENTION_BYTES.to_string(), "100".to_string());
        let s = settings(&c);
        assert_eq!(s.retention_bytes, 100);
        assert_eq!(s.retention_ms, 604_800_000);
        assert_eq!(s.max_message_bytes, 1_048_588);
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("cloudtrail.raw-v1_x").is_ok());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
