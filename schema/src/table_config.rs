//! The values of a feed's `sluice.table.*` topic configs (names in [`crate::topic_configs`]):
//! their parsers, defaults and checks. Pure, so that the broker (which honours the
//! configs, through `sluice_lake::spec`) and the operator (which sets them from a Feed's
//! `spec.table`) refuse the same values with the same words. Defaults: `docs/lake.md`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::topic_configs::{
    TABLE_COMMIT_INTERVAL_MS, TABLE_ENABLED, TABLE_GENERATION, TABLE_MAINTENANCE_INTERVAL_MS,
    TABLE_MODE, TABLE_NAME, TABLE_NAMESPACE, TABLE_PARTITIONING, TABLE_REPLAYS,
    TABLE_TARGET_FILE_BYTES,
};

pub const DEFAULT_NAMESPACE: &str = "sluice";
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 60_000;
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;
pub const DEFAULT_MAINTENANCE_INTERVAL_MS: u64 = 3_600_000;
/// Shortest commit interval: a commit per second already makes 86,400 snapshots a day.
pub const MIN_COMMIT_INTERVAL_MS: u64 = 1_000;
/// Smallest target file size.
pub const MIN_TARGET_FILE_BYTES: u64 = 1 << 20;

/// Which columns the table has besides the lineage ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableMode {
    /// The record as Kafka holds it: key, value and headers as bytes.
    #[default]
    Raw,
    /// A column per field of the feed's registered schema, evolving with it
    /// (`lake/src/evolution.rs`); key and headers are not kept.
    Schema,
}

impl FromStr for TableMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "raw" => Ok(TableMode::Raw),
            "schema" => Ok(TableMode::Schema),
            other => Err(format!(
                "sluice.table.mode {other:?} is not one of: raw, schema"
            )),
        }
    }
}

/// How rows are grouped into table partitions, by the record's timestamp or a column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Partitioning {
    #[default]
    Hour,
    Day,
    /// One partition per value of a column (e.g. `sluice_partition`).
    Identity(String),
    None,
}

impl FromStr for Partitioning {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "hour" => Ok(Partitioning::Hour),
            "day" => Ok(Partitioning::Day),
            "none" => Ok(Partitioning::None),
            _ => match s.strip_prefix("identity:") {
                Some(col) if !col.is_empty() => Ok(Partitioning::Identity(col.to_string())),
                _ => Err(format!(
                    "sluice.table.partitioning {s:?} is not one of: hour, day, none, identity:<column>"
                )),
            },
        }
    }
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioning::Hour => f.write_str("hour"),
            Partitioning::Day => f.write_str("day"),
            Partitioning::Identity(c) => write!(f, "identity:{c}"),
            Partitioning::None => f.write_str("none"),
        }
    }
}

/// A positive number of milliseconds, at least [`MIN_COMMIT_INTERVAL_MS`].
pub struct CommitInterval(pub Duration);

impl FromStr for CommitInterval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_interval(TABLE_COMMIT_INTERVAL_MS, s).map(CommitInterval)
    }
}

/// The value of the interval config `name`: milliseconds, at least
/// [`MIN_COMMIT_INTERVAL_MS`].
pub fn parse_interval(name: &str, s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(ms) if ms >= MIN_COMMIT_INTERVAL_MS => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "{name} {s:?} is not a number of milliseconds >= {MIN_COMMIT_INTERVAL_MS}"
        )),
    }
}

/// A file size of at least [`MIN_TARGET_FILE_BYTES`].
pub struct FileBytes(pub u64);

impl FromStr for FileBytes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<u64>() {
            Ok(n) if n >= MIN_TARGET_FILE_BYTES => Ok(FileBytes(n)),
            _ => Err(format!(
                "{TABLE_TARGET_FILE_BYTES} {s:?} is not a number of bytes >= {MIN_TARGET_FILE_BYTES}"
            )),
        }
    }
}

/// An Iceberg identifier part: letters, digits and `_`, starting with a letter or `_`,
/// so every engine (DuckDB, Trino, Athena, Spark) can name it unquoted.
pub fn validate_identifier(what: &str, s: &str) -> Result<(), String> {
    let ok = s.len() <= 255
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} must be 1-255 of letters, digits and _, not starting with a digit"
        ))
    }
}

/// The table name a topic gets when none is set: the topic with `.` and `-` as `_`.
pub fn default_table_name(topic: &str) -> String {
    let mut name: String = topic
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// `true` or `false` (Kafka's boolean configs); empty is false.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "" | "false" => Ok(false),
        "true" => Ok(true),
        other => Err(format!("{name} {other:?} is not true or false")),
    }
}

/// Checks one `sluice.table.*` value on its own (CreateTopics, AlterConfigs, a Feed).
pub fn validate_config(name: &str, value: &str) -> Result<(), String> {
    match name {
        TABLE_ENABLED => parse_bool(name, value).map(|_| ()),
        TABLE_NAMESPACE | TABLE_NAME if value.is_empty() => Ok(()),
        TABLE_NAMESPACE | TABLE_NAME => validate_identifier(name, value),
        TABLE_MODE => value.parse::<TableMode>().map(|_| ()),
        TABLE_PARTITIONING => value.parse::<Partitioning>().map(|_| ()),
        TABLE_COMMIT_INTERVAL_MS => value.parse::<CommitInterval>().map(|_| ()),
        TABLE_MAINTENANCE_INTERVAL_MS => parse_interval(name, value).map(|_| ()),
        TABLE_REPLAYS => crate::replay::parse_replays(value).map(|_| ()),
        TABLE_TARGET_FILE_BYTES => value.parse::<FileBytes>().map(|_| ()),
        TABLE_GENERATION if value.is_empty() => Ok(()),
        TABLE_GENERATION => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| format!("{name} {value:?} is not a number")),
        _ => Err(format!("{name:?} is not a table config")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_topic() {
        assert_eq!(default_table_name("cloudtrail.raw-v1"), "cloudtrail_raw_v1");
        assert_eq!(default_table_name("1x"), "_1x");
        assert!(validate_identifier("n", &default_table_name("9.a-b")).is_ok());
    }

    #[test]
    fn refuses_bad_values_with_the_config_name() {
        for (k, v) in [
            (TABLE_ENABLED, "yes"),
            (TABLE_NAME, "bad-name"),
            (TABLE_PARTITIONING, "week"),
            (TABLE_PARTITIONING, "identity:"),
            (TABLE_COMMIT_INTERVAL_MS, "10"),
            (TABLE_MAINTENANCE_INTERVAL_MS, "0"),
            (TABLE_TARGET_FILE_BYTES, "1"),
            (TABLE_MODE, "avro"),
        ] {
            let err = validate_config(k, v).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
        assert_eq!("schema".parse::<TableMode>(), Ok(TableMode::Schema));
        assert_eq!("".parse::<TableMode>(), Ok(TableMode::Raw));
        assert_eq!(
            "identity:sluice_partition".parse::<Partitioning>().unwrap(),
            Partitioning::Identity("sluice_partition".into())
        );
    }
}
