//! What a Feed's `spec.table` asks of the brokers (the `sluice.table.*` topic configs,
//! checked by the same code the brokers check them with), and the Feed's `status.table`
//! and `LakeCommitFailing` condition from what the brokers writing the table report.
//! Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use sluice_schema::table_config::{default_table_name, validate_config};

use super::duration::parse_duration_ms;
use super::timestamp::time_from_ms;
use crate::crd::conditions::{self, LAKE_COMMIT_FAILING};
use crate::crd::feed::{TableMode, TableStatus};
use crate::crd::Feed;
use crate::lake::TableFigures;

pub use sluice_schema::topic_configs::{
    TABLE_ALL as TABLE_CONFIGS, TABLE_COMMIT_INTERVAL_MS, TABLE_ENABLED, TABLE_GENERATION,
    TABLE_MAINTENANCE_INTERVAL_MS, TABLE_MODE, TABLE_NAME, TABLE_NAMESPACE, TABLE_PARTITIONING,
    TABLE_TARGET_FILE_BYTES,
};

/// The table topic configs of the feed's topic: all `None` (the broker's default: no
/// table) without `spec.table`; every value checked with `sluice_schema::table_config`.
/// Problems with the spec go to `problems`.
pub fn table_configs(
    feed: &Feed,
    problems: &mut Vec<String>,
) -> BTreeMap<&'static str, Option<String>> {
    let mut configs: BTreeMap<&'static str, Option<String>> =
        TABLE_CONFIGS.iter().map(|k| (*k, None)).collect();
    let Some(table) = &feed.spec.table else {
        return configs;
    };
    if table.mode == TableMode::Schema && feed.spec.schema.is_none() {
        problems.push("table.mode schema needs spec.schema".into());
    }
    let mut interval = |field: &str, value: &str| match parse_duration_ms(field, value) {
        Ok(ms) => Some(ms.to_string()),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let commit_interval = interval("table.commitInterval", &table.commit_interval);
    let maintenance_interval = interval("table.maintenanceInterval", &table.maintenance_interval);
    let mode = match table.mode {
        TableMode::Raw => "raw",
        TableMode::Schema => "schema",
    };
    let name = table
        .name
        .clone()
        .unwrap_or_else(|| default_table_name(&feed.topic_name()));
    let values = [
        (TABLE_ENABLED, "enabled", Some(table.enabled.to_string())),
        (TABLE_NAMESPACE, "namespace", Some(table.namespace.clone())),
        (TABLE_NAME, "name", Some(name)),
        (TABLE_MODE, "mode", Some(mode.to_string())),
        (
            TABLE_PARTITIONING,
            "partitioning",
            Some(table.partitioning.clone()),
        ),
        (TABLE_COMMIT_INTERVAL_MS, "commitInterval", commit_interval),
        (
            TABLE_MAINTENANCE_INTERVAL_MS,
            "maintenanceInterval",
            maintenance_interval,
        ),
        (
            TABLE_TARGET_FILE_BYTES,
            "targetFileSize",
            Some(table.target_file_size.to_string()),
        ),
        (
            TABLE_GENERATION,
            "generation",
            feed.metadata.generation.map(|g| g.to_string()),
        ),
    ];
    for (config, field, value) in values {
        if let Some(v) = &value {
            if let Err(e) = validate_config(config, v) {
                problems.push(format!("table.{field}: {e}"));
            }
        }
        configs.insert(config, value);
    }
    configs
}

/// `namespace.name` of the feed's table while it is enabled.
pub fn table_name(feed: &Feed) -> Option<String> {
    let table = feed.spec.table.as_ref().filter(|t| t.enabled)?;
    let name = table
        .name
        .clone()
        .unwrap_or_else(|| default_table_name(&feed.topic_name()));
    Some(format!("{}.{name}", table.namespace))
}

/// `status.table` from the brokers' figures (`None`: no scrape yet, the figures stay
/// as `previous` had them; no broker reporting the table: no figures).
pub fn table_status(
    name: String,
    figures: Option<&TableFigures>,
    previous: Option<&TableStatus>,
) -> TableStatus {
    let Some(f) = figures else {
        return TableStatus {
            name,
            ..previous.cloned().unwrap_or_default()
        };
    };
    if f.brokers == 0 {
        return TableStatus {
            name,
            ..TableStatus::default()
        };
    }
    TableStatus {
        name,
        last_commit_time: f.last_commit_ms.and_then(time_from_ms),
        last_snapshot_id: f.last_snapshot_id,
        rows: Some(i64::try_from(f.rows).unwrap_or(i64::MAX)),
        lag: Some(f.lag),
    }
}

/// The `LakeCommitFailing` condition: True while any broker reports an error for the
/// table, with each broker's error and since when the first one lasts.
pub fn commit_condition(
    table: &str,
    figures: &TableFigures,
    update: &conditions::Update,
) -> Condition {
    let (on, reason, message) = if figures.errors.is_empty() {
        (
            false,
            "NoErrors",
            format!("no broker reports an error writing table {table}"),
        )
    } else {
        let since = figures
            .failing_since_ms()
            .and_then(time_from_ms)
            .map(|t| format!(" since {}", t.0))
            .unwrap_or_default();
        let errors: Vec<String> = figures
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.pod, e.message))
            .collect();
        (
            true,
            "CommitFailed",
            format!(
                "table {table} cannot be committed{since}: {}",
                errors.join("; ")
            ),
        )
    };
    update.condition(LAKE_COMMIT_FAILING, on, reason, &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::TableError;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use crate::controller::feed::testing::values;

    fn feed(table: Option<&str>) -> Feed {
        let mut f = crate::controller::feed::testing::feed("dns.raw-v1");
        f.spec.table = table.map(|t| serde_yaml::from_str(t).unwrap());
        f
    }

    #[test]
    fn an_empty_section_spells_out_the_brokers_defaults_and_the_generation() {
        let mut problems = vec![];
        let f = feed(Some("{}"));
        let configs = table_configs(&f, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            values(&configs),
            [
                (TABLE_COMMIT_INTERVAL_MS, Some("60000")),
                (TABLE_ENABLED, Some("true")),
                (TABLE_GENERATION, Some("7")),
                (TABLE_MAINTENANCE_INTERVAL_MS, Some("3600000")),
                (TABLE_MODE, Some("raw")),
                (TABLE_NAME, Some("dns_raw_v1")),
                (TABLE_NAMESPACE, Some("sluice")),
                (TABLE_PARTITIONING, Some("hour")),
                (TABLE_TARGET_FILE_BYTES, Some("134217728")),
            ]
        );
        assert_eq!(table_name(&f).as_deref(), Some("sluice.dns_raw_v1"));
    }

    #[test]
    fn every_field_reaches_its_config() {
        let mut problems = vec![];
        let f = feed(Some(
            "{enabled: false, namespace: security, name: dns, partitioning: identity:sluice_partition, \
             commitInterval: 5s, targetFileSize: 2097152}",
        ));
        let configs = table_configs(&f, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let get = |k| configs[k].as_deref();
        assert_eq!(get(TABLE_ENABLED), Some("false"), "off, never dropped");
        assert_eq!(get(TABLE_NAMESPACE), Some("security"));
        assert_eq!(get(TABLE_NAME), Some("dns"));
        assert_eq!(get(TABLE_PARTITIONING), Some("identity:sluice_partition"));
        assert_eq!(get(TABLE_COMMIT_INTERVAL_MS), Some("5000"));
        assert_eq!(get(TABLE_TARGET_FILE_BYTES), Some("2097152"));
        assert_eq!(table_name(&f), None, "a disabled table is not reported");
    }

    #[test]
    fn what_the_brokers_would_refuse_is_refused_here_first() {
        let mut problems = vec![];
        table_configs(
            &feed(Some(
                "{name: bad-name, partitioning: week, commitInterval: 500ms, targetFileSize: 1, mode: schema}",
            )),
            &mut problems,
        );
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(problems[0], "table.mode schema needs spec.schema");
        for (problem, field) in problems[1..].iter().zip([
            "table.name: sluice.table.name \"bad-name\"",
            "table.partitioning: sluice.table.partitioning \"week\"",
            "table.commitInterval: sluice.table.commit.interval.ms \"500\"",
            "table.targetFileSize: sluice.table.target.file.bytes \"1\"",
        ]) {
            assert!(problem.starts_with(field), "{problem}");
        }
        let mut problems = vec![];
        table_configs(&feed(Some("{commitInterval: 1y}")), &mut problems);
        assert_eq!(
            problems,
            ["table.commitInterval \"1y\" is not a number with a unit (ms, s, m, h, d, w)"]
        );
    }

    /// An update of generation 3.
    fn update<'a>(previous: &'a [Condition], now: &'a Time) -> conditions::Update<'a> {
        conditions::Update {
            generation: Some(3),
            previous,
            now,
        }
    }

    fn t(ms: i64) -> Time {
        time_from_ms(ms).unwrap()
    }

    #[test]
    fn status_from_the_brokers_figures_or_as_it_was_before_a_scrape() {
        let figures = TableFigures {
            brokers: 2,
            table: "sluice.dns".into(),
            rows: 130,
            lag: 15,
            last_commit_ms: Some(1_700_000_060_000),
            last_snapshot_id: Some(12),
            ..TableFigures::default()
        };
        let status = table_status("sluice.dns".into(), Some(&figures), None);
        assert_eq!(
            status,
            TableStatus {
                name: "sluice.dns".into(),
                last_commit_time: Some(t(1_700_000_060_000)),
                last_snapshot_id: Some(12),
                rows: Some(130),
                lag: Some(15),
            }
        );
        let renamed = table_status("security.dns".into(), None, Some(&status));
        assert_eq!(renamed.name, "security.dns");
        assert_eq!(renamed.rows, Some(130), "kept until the next scrape");
        let fresh = table_status("sluice.dns".into(), None, None);
        assert_eq!((fresh.rows, fresh.lag), (None, None));
        let unreported = table_status("sluice.dns".into(), Some(&TableFigures::default()), None);
        assert_eq!(
            (unreported.rows, unreported.lag),
            (None, None),
            "no broker writes it (yet): no figures, rather than zeros"
        );
    }

    #[test]
    fn commit_failing_names_every_broker_and_the_oldest_failure() {
        let now = t(1_700_000_100_000);
        let mut figures = TableFigures::default();
        let ok = commit_condition("sluice.dns", &figures, &update(&[], &now));
        assert_eq!(
            (ok.status.as_str(), ok.reason.as_str()),
            ("False", "NoErrors")
        );
        figures.errors = vec![
            TableError {
                pod: "lake-broker-1".into(),
                message: "catalog unreachable: connection refused".into(),
                since_ms: Some(1_700_000_050_000),
            },
            TableError {
                pod: "lake-broker-0".into(),
                message: "commit failed".into(),
                since_ms: Some(1_700_000_040_000),
            },
        ];
        let failing = commit_condition("sluice.dns", &figures, &update(&[ok], &now));
        assert_eq!(
            (failing.status.as_str(), failing.reason.as_str()),
            ("True", "CommitFailed")
        );
        assert_eq!(
            failing.message,
            "table sluice.dns cannot be committed since 2023-11-14T22:14:00Z: \
             lake-broker-1: catalog unreachable: connection refused; lake-broker-0: commit failed"
        );
        assert_eq!(failing.last_transition_time, now);
        assert_eq!(failing.observed_generation, Some(3));
        let later = commit_condition("sluice.dns", &figures, &update(&[failing], &t(0)));
        assert_eq!(later.last_transition_time, now, "no flip, no new time");
    }
}
