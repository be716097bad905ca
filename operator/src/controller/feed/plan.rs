//! What a Feed wants of its topics, and the admin actions that get it there: pure.

use std::collections::BTreeMap;

use super::duration::parse_duration_ms;
use super::schema::{schema_configs, SCHEMA_CONFIGS};
use super::table::table_configs;
use crate::crd::feed::{Retention, TOPIC_NAME_PATTERN};
use crate::crd::Feed;
use crate::kafka::{ConfigEntry, ConfigOp};

pub use sluice_schema::topic_configs::FEED_OWNER;

pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
/// The retention configs a Feed manages on both its topics; the topic also gets
/// [`SCHEMA_CONFIGS`], the table configs (`sluice.table.*`, `sluice.table.replays` once
/// the replays are judged) and [`FEED_OWNER`]. Others are left as they are.
pub const MANAGED_CONFIGS: [&str; 2] = [RETENTION_MS, RETENTION_BYTES];
/// Kafka's longest topic name.
pub const MAX_TOPIC_NAME: usize = 249;

/// One topic as the Feed wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTopic {
    pub name: String,
    pub partitions: i32,
    /// Every managed config: `Some(value)`, or `None` for the broker's default.
    pub configs: BTreeMap<&'static str, Option<String>>,
}

/// A topic as the cluster has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTopic {
    pub partitions: i32,
    pub configs: BTreeMap<String, ConfigEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicAction {
    Create {
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    AddPartitions {
        from: i32,
        to: i32,
    },
    AlterConfigs(Vec<ConfigOp>),
}

/// The actions for one topic, and a divergence the operator will not repair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPlan {
    pub actions: Vec<TopicAction>,
    /// The topic has more partitions than asked: partitions are never removed.
    pub diverged: Option<String>,
}

/// The topic and the dead-letter topic the Feed wants, or every problem with its spec.
pub fn desired_topics(feed: &Feed) -> Result<Vec<DesiredTopic>, Vec<String>> {
    let mut problems = Vec::new();
    let topic = feed.topic_name();
    check_topic_name(&topic, "topic", &mut problems);
    if feed.spec.partitions < 1 {
        problems.push(format!(
            "partitions {} must be at least 1",
            feed.spec.partitions
        ));
    }
    let mut configs = managed_configs(feed.spec.retention.as_ref(), &mut problems);
    configs.extend(schema_configs(feed, &mut problems));
    configs.extend(table_configs(feed, &mut problems));
    configs.insert(FEED_OWNER, Some(feed.spec.owner.team.clone()));
    let mut topics = vec![DesiredTopic {
        name: topic.clone(),
        partitions: feed.spec.partitions,
        configs,
    }];
    if let (Some(dl), Some(dl_topic)) = (&feed.spec.dead_letter, feed.dead_letter_topic()) {
        check_topic_name(&dl_topic, "dead-letter topic", &mut problems);
        if dl_topic == topic {
            problems.push("the dead-letter topic must differ from the feed's topic".into());
        }
        if dl.partitions < 1 {
            problems.push(format!(
                "deadLetter.partitions {} must be at least 1",
                dl.partitions
            ));
        }
        topics.push(DesiredTopic {
            name: dl_topic,
            partitions: dl.partitions,
            configs: managed_configs(dl.retention.as_ref(), &mut problems),
        });
    }
    if problems.is_empty() {
        Ok(topics)
    } else {
        Err(problems)
    }
}

/// Leaves the schema configs of `topic` as the cluster has them: validation keeps its
/// current settings while the schema cannot be registered.
pub fn hold_schema_configs(topic: &mut DesiredTopic) {
    topic.configs.retain(|k, _| !SCHEMA_CONFIGS.contains(k));
}

fn check_topic_name(name: &str, what: &str, problems: &mut Vec<String>) {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > MAX_TOPIC_NAME || !valid_chars || name == "." || name == ".."
    {
        problems.push(format!(
            "{what} name {name:?} is not a valid Kafka topic name ({TOPIC_NAME_PATTERN}, not '.' or '..')"
        ));
    }
}

fn managed_configs(
    retention: Option<&Retention>,
    problems: &mut Vec<String>,
) -> BTreeMap<&'static str, Option<String>> {
    let retention = retention.cloned().unwrap_or_default();
    let time = retention
        .time
        .as_deref()
        .map(parse_retention_time)
        .transpose();
    let time = match time {
        Ok(t) => t.map(|ms| ms.to_string()),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if let Some(bytes) = retention.bytes_per_partition {
        if bytes < 1 {
            problems.push(format!(
                "retention.bytesPerPartition {bytes} must be at least 1"
            ));
        }
    }
    BTreeMap::from([
        (RETENTION_MS, time),
        (
            RETENTION_BYTES,
            retention.bytes_per_partition.map(|b| b.to_string()),
        ),
    ])
}

/// `30d` → milliseconds; `forever` → -1 (Kafka's "keep everything").
pub fn parse_retention_time(s: &str) -> Result<i64, String> {
    if s == "forever" {
        return Ok(-1);
    }
    parse_duration_ms("retention.time", s).map_err(|e| format!("{e} or \"forever\""))
}

/// The actions that bring `observed` (None: the topic does not exist) to `desired`.
/// Never removes partitions and never deletes the topic.
pub fn plan(desired: &DesiredTopic, observed: Option<&ObservedTopic>) -> TopicPlan {
    let Some(observed) = observed else {
        return TopicPlan {
            actions: vec![TopicAction::Create {
                partitions: desired.partitions,
                configs: desired
                    .configs
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
                    .collect(),
            }],
            diverged: None,
        };
    };
    let mut out = TopicPlan::default();
    if observed.partitions < desired.partitions {
        out.actions.push(TopicAction::AddPartitions {
            from: observed.partitions,
            to: desired.partitions,
        });
    } else if observed.partitions > desired.partitions {
        out.diverged = Some(format!(
            "topic {} has {} partitions, the Feed asks for {}; partitions are never removed",
            desired.name, observed.partitions, desired.partitions
        ));
    }
    let mut ops = Vec::new();
    for (key, want) in &desired.configs {
        let have = observed.configs.get(*key);
        match want {
            Some(value) => {
                if have.and_then(|c| c.value.as_ref()) != Some(value)
                    || have.is_some_and(|c| c.is_default)
                {
                    ops.push(ConfigOp::Set(key.to_string(), value.clone()));
                }
            }
            None => {
                if have.is_some_and(|c| !c.is_default) {
                    ops.push(ConfigOp::Delete(key.to_string()));
                }
            }
        }
    }
    if !ops.is_empty() {
        out.actions.push(TopicAction::AlterConfigs(ops));
    }
    out
}

/// The name of another Feed that claimed the same topic on the same cluster first
/// (older creation, then name order). Only the first claimant manages the topic.
pub fn earlier_claimant(feeds: &[Feed], me: &Feed) -> Option<String> {
    let claims = |f: &Feed| -> Vec<String> {
        let mut topics = vec![f.topic_name()];
        topics.extend(f.dead_letter_topic());
        topics
    };
    let mine = claims(me);
    earlier_claimant_by(feeds, me, |other| {
        claims(other).iter().any(|t| mine.contains(t))
    })
}

/// The first Feed of `me`'s cluster, created before `me` (ties: by name), for which
/// `conflicts` holds: the one that keeps a contested resource.
pub fn earlier_claimant_by(
    feeds: &[Feed],
    me: &Feed,
    conflicts: impl Fn(&Feed) -> bool,
) -> Option<String> {
    let my_key = (
        me.metadata.creation_timestamp.clone().map(|t| t.0),
        me.metadata.name.clone(),
    );
    feeds
        .iter()
        .filter(|f| f.metadata.uid != me.metadata.uid && f.metadata.name != me.metadata.name)
        .filter(|f| f.spec.cluster_ref == me.spec.cluster_ref)
        .filter(|f| conflicts(f))
        .filter(|f| {
            (
                f.metadata.creation_timestamp.clone().map(|t| t.0),
                f.metadata.name.clone(),
            ) < my_key
        })
        .map(|f| f.metadata.name.clone().unwrap_or_default())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(partitions: i32, retention_ms: Option<&str>) -> DesiredTopic {
        DesiredTopic {
            name: "audit".into(),
            partitions,
            configs: BTreeMap::from([
                (RETENTION_MS, retention_ms.map(str::to_string)),
                (RETENTION_BYTES, None),
            ]),
        }
    }

    fn observed(partitions: i32, retention_ms: (&str, bool)) -> ObservedTopic {
        let entry = |v: &str, is_default| ConfigEntry {
            value: Some(v.to_string()),
            is_default,
        };
        ObservedTopic {
            partitions,
            configs: BTreeMap::from([
                (
                    RETENTION_MS.to_string(),
                    entry(retention_ms.0, retention_ms.1),
                ),
                (RETENTION_BYTES.to_string(), entry("-1", true)),
            ]),
        }
    }

    #[test]
    fn without_sections_every_schema_and_table_config_is_the_brokers_default() {
        let feed = crate::controller::feed::testing::feed("dns");
        let topic = &desired_topics(&feed).unwrap()[0];
        for key in SCHEMA_CONFIGS
            .iter()
            .chain(&super::super::table::TABLE_CONFIGS)
        {
            assert_eq!(topic.configs.get(key), Some(&None), "{key}");
        }
        assert_eq!(super::super::table::table_name(&feed), None);
        assert_eq!(
            topic.configs.get(FEED_OWNER),
            Some(&Some("t".to_string())),
            "the owner is named on every feed's topic"
        );
    }

    #[test]
    fn retention_times() {
        assert_eq!(parse_retention_time("30d"), Ok(2_592_000_000));
        assert_eq!(parse_retention_time("90m"), Ok(5_400_000));
        assert_eq!(parse_retention_time("forever"), Ok(-1));
        for bad in ["7 days", "0d", "d", "10y", "", "99999999999999w"] {
            assert!(parse_retention_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_topic_is_created_with_only_the_set_configs() {
        let p = plan(&desired(3, Some("3600000")), None);
        assert_eq!(
            p.actions,
            [TopicAction::Create {
                partitions: 3,
                configs: BTreeMap::from([(RETENTION_MS.to_string(), "3600000".to_string())]),
            }]
        );
    }

    #[test]
    fn a_topic_in_shape_needs_nothing() {
        let p = plan(
            &desired(3, Some("3600000")),
            Some(&observed(3, ("3600000", false))),
        );
        assert_eq!(p, TopicPlan::default());
        let p = plan(&desired(3, None), Some(&observed(3, ("604800000", true))));
        assert_eq!(
            p,
            TopicPlan::default(),
            "a default value is what None asks for"
        );
    }

    #[test]
    fn partitions_grow_and_configs_are_set_or_reset() {
        let p = plan(&desired(6, None), Some(&observed(3, ("3600000", false))));
        assert_eq!(
            p.actions,
            [
                TopicAction::AddPartitions { from: 3, to: 6 },
                TopicAction::AlterConfigs(vec![ConfigOp::Delete(RETENTION_MS.into())]),
            ]
        );
    }

    #[test]
    fn held_schema_configs_are_not_touched() {
        let mut want = desired(3, None);
        want.configs
            .insert(super::super::schema::SCHEMA_SUBJECT, None);
        let mut have = observed(3, ("604800000", true));
        have.configs.insert(
            super::super::schema::SCHEMA_SUBJECT.into(),
            ConfigEntry {
                value: Some("dns-value".into()),
                is_default: false,
            },
        );
        assert_eq!(
            plan(&want, Some(&have)).actions,
            [TopicAction::AlterConfigs(vec![ConfigOp::Delete(
                "sluice.schema.subject".into()
            )])],
            "removing spec.schema turns validation off"
        );
        hold_schema_configs(&mut want);
        assert_eq!(plan(&want, Some(&have)), TopicPlan::default());
    }

    #[test]
    fn more_partitions_than_asked_is_reported_never_shrunk() {
        let p = plan(
            &desired(2, Some("3600000")),
            Some(&observed(6, ("3600000", false))),
        );
        assert!(p.actions.is_empty());
        assert!(p
            .diverged
            .unwrap()
            .contains("has 6 partitions, the Feed asks for 2"));
    }
}
