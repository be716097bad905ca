//! A feed's table as its topic configs declare it (`sluice.table.*`, names in
//! `sluice_schema::topic_configs`): parsed once, refused with a reason when a value is
//! not one this writer understands (each value by `sluice_schema::table_config`, shared
//! with the operator). Defaults: `docs/lake.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_schema::replay::{parse_replays, ReplaySpec};
use sluice_schema::topic_configs::{
    TABLE_COMMIT_INTERVAL_MS, TABLE_ENABLED, TABLE_GENERATION, TABLE_MAINTENANCE_INTERVAL_MS,
    TABLE_MODE, TABLE_NAME, TABLE_NAMESPACE, TABLE_PARTITIONING, TABLE_REPLAYS,
    TABLE_TARGET_FILE_BYTES,
};
// The values' parsers and checks live in `sluice-schema`, shared with the operator.
pub use sluice_schema::table_config::{
    default_table_name, parse_bool, parse_interval, validate_config, validate_identifier,
    CommitInterval, FileBytes, Partitioning, TableMode, DEFAULT_COMMIT_INTERVAL_MS,
    DEFAULT_MAINTENANCE_INTERVAL_MS, DEFAULT_NAMESPACE, DEFAULT_TARGET_FILE_BYTES,
    MIN_COMMIT_INTERVAL_MS,
};

use crate::error::{LakeError, Result};

/// One feed's table, as its topic configs say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub namespace: String,
    pub name: String,
    pub mode: TableMode,
    pub partitioning: Partitioning,
    pub commit_interval: Duration,
    pub target_file_bytes: u64,
    /// The Feed's generation that asked for this table (recorded in every commit).
    pub generation: Option<i64>,
    /// How often the table's upkeep (compaction, snapshot expiry) runs.
    pub maintenance_interval: Duration,
    /// Approved replays of the feed's windows (`docs/replay.md`).
    pub replays: Vec<ReplaySpec>,
}

impl TableSpec {
    /// The table of `topic`, or None when `sluice.table.enabled` is not true.
    pub fn from_configs(topic: &str, configs: &BTreeMap<String, String>) -> Result<Option<Self>> {
        Self::parse(topic, configs).map_err(LakeError::Spec)
    }

    fn parse(topic: &str, configs: &BTreeMap<String, String>) -> Result<Option<Self>, String> {
        let get = |k: &str| configs.get(k).map(String::as_str).unwrap_or("");
        if !parse_bool(TABLE_ENABLED, get(TABLE_ENABLED))? {
            return Ok(None);
        }
        let namespace = match get(TABLE_NAMESPACE) {
            "" => DEFAULT_NAMESPACE.to_string(),
            ns => ns.to_string(),
        };
        let name = match get(TABLE_NAME) {
            "" => default_table_name(topic),
            n => n.to_string(),
        };
        validate_identifier(TABLE_NAMESPACE, &namespace)?;
        validate_identifier(TABLE_NAME, &name)?;
        let commit_interval = match get(TABLE_COMMIT_INTERVAL_MS) {
            "" => Duration::from_millis(DEFAULT_COMMIT_INTERVAL_MS),
            v => v.parse::<CommitInterval>()?.0,
        };
        let target_file_bytes = match get(TABLE_TARGET_FILE_BYTES) {
            "" => DEFAULT_TARGET_FILE_BYTES,
            v => v.parse::<FileBytes>()?.0,
        };
        let maintenance_interval = match get(TABLE_MAINTENANCE_INTERVAL_MS) {
            "" => Duration::from_millis(DEFAULT_MAINTENANCE_INTERVAL_MS),
            v => parse_interval(TABLE_MAINTENANCE_INTERVAL_MS, v)?,
        };
        let generation = match get(TABLE_GENERATION) {
            "" => None,
            v => Some(
                v.parse::<i64>()
                    .map_err(|_| format!("{TABLE_GENERATION} {v:?} is not a number"))?,
            ),
        };
        Ok(Some(TableSpec {
            namespace,
            name,
            mode: get(TABLE_MODE).parse()?,
            partitioning: get(TABLE_PARTITIONING).parse()?,
            commit_interval,
            target_file_bytes,
            generation,
            maintenance_interval,
            replays: parse_replays(get(TABLE_REPLAYS))?,
        }))
    }

    /// `namespace.name`, as engines write it.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn disabled_unless_enabled() {
        assert_eq!(TableSpec::from_configs("t", &configs(&[])).unwrap(), None);
        assert_eq!(
            TableSpec::from_configs("t", &configs(&[(TABLE_ENABLED, "false")])).unwrap(),
            None
        );
    }

    #[test]
    fn defaults_follow_the_topic() {
        let spec =
            TableSpec::from_configs("cloudtrail.raw-v1", &configs(&[(TABLE_ENABLED, "true")]))
                .unwrap()
                .unwrap();
        assert_eq!(spec.qualified_name(), "sluice.cloudtrail_raw_v1");
        assert_eq!(spec.partitioning, Partitioning::Hour);
        assert_eq!(spec.commit_interval, Duration::from_secs(60));
        assert_eq!(default_table_name("1x"), "_1x");
    }
}
