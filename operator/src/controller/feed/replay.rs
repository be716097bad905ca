//! A Feed's `spec.replays` judged under the cluster's `replayPolicy`: each replay is
//! approved (converted to the [`ReplaySpec`] the brokers take, checked by the same code
//! the brokers check it with) or refused with the reason; the approved ones become the
//! topic config `sluice.table.replays`, the refused ones the `ReplayRefused` condition.
//! Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use sluice_schema::replay::{replays_config, validate, ReplaySpec};

use super::timestamp::parse_timestamp_ms;
use crate::crd::cluster::ReplayPolicy;
use crate::crd::conditions::{self, REPLAY_REFUSED};
use crate::crd::feed::Replay;
use crate::crd::Feed;

pub use sluice_schema::topic_configs::TABLE_REPLAYS;

/// One replay of the spec and what became of it: approved (what the brokers get) or
/// refused (why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    pub id: String,
    pub approval: Result<ReplaySpec, String>,
}

/// Judges every replay of `feed` under `policy` (absent: the defaults), in spec order;
/// or every problem with the replays themselves (no table, a duplicate id, a timestamp
/// that does not parse, a replay the brokers would refuse).
pub fn judge(feed: &Feed, policy: Option<&ReplayPolicy>) -> Result<Vec<Judged>, Vec<String>> {
    let replays = &feed.spec.replays;
    let mut problems = Vec::new();
    if !replays.is_empty() && feed.spec.table.is_none() {
        problems.push(
            "spec.replays needs spec.table: a replay replaces rows of the feed's table".into(),
        );
    }
    let policy = policy.cloned().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut judged = Vec::new();
    for replay in replays {
        if !seen.insert(replay.id.as_str()) {
            problems.push(format!("replay id {:?} appears twice", replay.id));
            continue;
        }
        let spec = match to_spec(replay) {
            Ok(spec) => spec,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let approval = match refusal(&spec, &policy, &feed.spec.owner.team) {
            Some(why) => Err(why),
            None => match validate(&spec) {
                Ok(()) => Ok(spec),
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            },
        };
        judged.push(Judged {
            id: replay.id.clone(),
            approval,
        });
    }
    if problems.is_empty() {
        Ok(judged)
    } else {
        Err(problems)
    }
}

/// A replay as the brokers take it: the window in milliseconds since the epoch, no
/// approver as an empty `approved_by`.
fn to_spec(replay: &Replay) -> Result<ReplaySpec, String> {
    let id = &replay.id;
    let from_ms = parse_timestamp_ms(&format!("replays[{id}].from"), &replay.from)?;
    let to_ms = parse_timestamp_ms(&format!("replays[{id}].to"), &replay.to)?;
    let bytes_per_second = u64::try_from(replay.bytes_per_second).map_err(|_| {
        format!(
            "replays[{id}].bytesPerSecond {} must be positive",
            replay.bytes_per_second
        )
    })?;
    Ok(ReplaySpec {
        id: id.clone(),
        from_ms,
        to_ms,
        reason: replay.reason.clone(),
        requested_by: replay.requested_by.clone(),
        approved_by: replay.approved_by.clone().unwrap_or_default(),
        dead_letters: replay.dead_letters,
        bytes_per_second,
    })
}

/// Why `spec` is not approved under `policy` for a feed of team `owner`; `None`: it is.
fn refusal(spec: &ReplaySpec, policy: &ReplayPolicy, owner: &str) -> Option<String> {
    let id = &spec.id;
    let approver = spec.approved_by.trim();
    if approver.is_empty() {
        return Some(format!("replay {id} has no approvedBy: it is not approved"));
    }
    if approver == spec.requested_by.trim() {
        return Some(format!(
            "replay {id} is approved by its own requester {approver}: it needs a second person (four eyes)"
        ));
    }
    let by_owner = policy.allow_feed_owner && approver == owner;
    if by_owner || policy.approvers.iter().any(|a| a == approver) {
        return None;
    }
    let mut allowed: Vec<String> = Vec::new();
    if policy.allow_feed_owner {
        allowed.push(format!("the feed's team {owner}"));
    }
    allowed.extend(policy.approvers.iter().cloned());
    let allowed = if allowed.is_empty() {
        "nobody".to_string()
    } else {
        allowed.join(", ")
    };
    Some(format!(
        "replay {id} is approved by {approver}, who may not approve it under the cluster's replayPolicy (allowed: {allowed})"
    ))
}

/// The approved replays, in spec order.
pub fn approved(judged: &[Judged]) -> Vec<ReplaySpec> {
    judged
        .iter()
        .filter_map(|j| j.approval.as_ref().ok().cloned())
        .collect()
}

/// The refused replays: (id, why), in spec order.
pub fn refused(judged: &[Judged]) -> Vec<(&str, &str)> {
    judged
        .iter()
        .filter_map(|j| {
            j.approval
                .as_ref()
                .err()
                .map(|why| (j.id.as_str(), why.as_str()))
        })
        .collect()
}

/// `sluice.table.replays` for the approved replays: `None` (the broker's default, no
/// replay) when there are none.
pub fn replays_configs(judged: &[Judged]) -> BTreeMap<&'static str, Option<String>> {
    let approved = approved(judged);
    let value = (!approved.is_empty()).then(|| replays_config(&approved));
    BTreeMap::from([(TABLE_REPLAYS, value)])
}

/// The `ReplayRefused` condition: True while any replay is refused, naming each one and
/// why; `None` for a Feed without replays.
pub fn refused_condition(judged: &[Judged], update: &conditions::Update) -> Option<Condition> {
    if judged.is_empty() {
        return None;
    }
    let refused = refused(judged);
    let (on, reason, message) = if refused.is_empty() {
        (
            false,
            "AllApproved",
            format!("all {} replays are approved", judged.len()),
        )
    } else {
        let whys: Vec<&str> = refused.iter().map(|(_, why)| *why).collect();
        (true, "NotApproved", whys.join("; "))
    };
    Some(update.condition(REPLAY_REFUSED, on, reason, &message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use sluice_schema::replay::{parse_replays, DEFAULT_REPLAY_BYTES_PER_SECOND};

    use crate::controller::feed::testing;

    /// The test Feed (team `t`) with a table and `replays` (YAML).
    fn feed(replays: &str) -> Feed {
        let mut f = testing::feed("dns");
        f.spec.table = Some(serde_yaml::from_str("{}").unwrap());
        f.spec.replays = serde_yaml::from_str(replays).unwrap();
        f
    }

    /// A replay `id` of the window of December 1st, 10:00 to 11:00, asked by alice.
    fn replay(id: &str, approved_by: Option<&str>) -> String {
        let approved = approved_by
            .map(|a| format!(", approvedBy: {a}"))
            .unwrap_or_default();
        format!(
            "{{id: {id}, from: '2026-12-01T10:00:00Z', to: '2026-12-01T11:00:00Z', \
             reason: parser bug 42, requestedBy: alice{approved}}}"
        )
    }

    fn policy(yaml: &str) -> ReplayPolicy {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn an_approved_replay_becomes_what_the_brokers_take() {
        let f = feed(&format!("[{}]", replay("fix-42", Some("t"))));
        let judged = judge(&f, None).unwrap();
        let spec = ReplaySpec {
            id: "fix-42".into(),
            from_ms: 1_796_119_200_000,
            to_ms: 1_796_122_800_000,
            reason: "parser bug 42".into(),
            requested_by: "alice".into(),
            approved_by: "t".into(),
            dead_letters: false,
            bytes_per_second: DEFAULT_REPLAY_BYTES_PER_SECOND,
        };
        assert_eq!(
            judged,
            [Judged {
                id: "fix-42".into(),
                approval: Ok(spec.clone()),
            }]
        );
        let configs = replays_configs(&judged);
        let value = configs[TABLE_REPLAYS].as_deref().unwrap();
        assert_eq!(
            parse_replays(value).unwrap(),
            [spec],
            "the brokers read back what was approved"
        );
    }

    #[test]
    fn dead_letters_and_the_budget_are_handed_over() {
        let f = feed(
            "[{id: r, from: '2026-12-01T10:00:00+01:00', to: '2026-12-01T10:00:00.500Z', \
             reason: x, requestedBy: alice, approvedBy: t, deadLetters: true, bytesPerSecond: 1048576}]",
        );
        let spec = judge(&f, None).unwrap()[0].approval.clone().unwrap();
        assert_eq!(
            (spec.from_ms, spec.to_ms),
            (1_796_115_600_000, 1_796_119_200_500)
        );
        assert!(spec.dead_letters);
        assert_eq!(spec.bytes_per_second, 1_048_576);
    }

    #[test]
    fn approval_rules() {
        let by = |approver: Option<&str>, p: Option<&ReplayPolicy>| {
            let f = feed(&format!("[{}]", replay("r", approver)));
            judge(&f, p).unwrap()[0].approval.clone().map(|_| ())
        };
        // Default policy: the feed's own team approves.
        assert_eq!(by(Some("t"), None), Ok(()));
        assert_eq!(
            by(None, None),
            Err("replay r has no approvedBy: it is not approved".into())
        );
        assert_eq!(
            by(Some("bob"), None),
            Err("replay r is approved by bob, who may not approve it under the cluster's replayPolicy (allowed: the feed's team t)".into())
        );
        // Named approvers, with or without the feed's team.
        let leads = policy("{approvers: [secops-leads, bob]}");
        assert_eq!(by(Some("bob"), Some(&leads)), Ok(()));
        assert_eq!(by(Some("t"), Some(&leads)), Ok(()));
        let only_leads = policy("{approvers: [secops-leads], allowFeedOwner: false}");
        assert_eq!(by(Some("secops-leads"), Some(&only_leads)), Ok(()));
        assert_eq!(
            by(Some("t"), Some(&only_leads)),
            Err("replay r is approved by t, who may not approve it under the cluster's replayPolicy (allowed: secops-leads)".into())
        );
        let nobody = policy("{allowFeedOwner: false}");
        assert!(by(Some("t"), Some(&nobody))
            .unwrap_err()
            .ends_with("(allowed: nobody)"));
    }

    #[test]
    fn nobody_approves_their_own_replay() {
        // alice is an approver and asked for it herself: refused all the same.
        let alice = policy("{approvers: [alice]}");
        let f = feed(&format!("[{}]", replay("r", Some("alice"))));
        assert_eq!(
            judge(&f, Some(&alice)).unwrap()[0].approval,
            Err("replay r is approved by its own requester alice: it needs a second person (four eyes)".into())
        );
        // The feed's team asking and approving is the same name twice too.
        let f = feed(
            "[{id: r, from: '2026-12-01T10:00:00Z', to: '2026-12-01T11:00:00Z', reason: x, \
             requestedBy: t, approvedBy: ' t '}]",
        );
        assert!(judge(&f, None).unwrap()[0]
            .approval
            .as_ref()
            .unwrap_err()
            .contains("four eyes"));
    }

    #[test]
    fn refused_replays_stay_out_of_the_config_and_in_the_condition() {
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let update = conditions::Update {
            generation: Some(7),
            previous: &[],
            now: &now,
        };
        let f = feed(&format!(
            "[{}, {}, {}]",
            replay("a", Some("t")),
            replay("b", None),
            replay("c", Some("alice"))
        ));
        let judged = judge(&f, None).unwrap();
        assert_eq!(
            approved(&judged).iter().map(|s| &s.id).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            refused(&judged)
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        let value = replays_configs(&judged)[TABLE_REPLAYS].clone().unwrap();
        assert_eq!(parse_replays(&value).unwrap().len(), 1);
        let c = refused_condition(&judged, &update).unwrap();
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            (REPLAY_REFUSED, "True", "NotApproved")
        );
        assert_eq!(
            c.message,
            "replay b has no approvedBy: it is not approved; \
             replay c is approved by its own requester alice: it needs a second person (four eyes)"
        );
        assert_eq!(c.observed_generation, Some(7));

        // Only refused replays: nothing for the brokers (the config goes back to the
        // broker's default).
        let judged = judge(&feed(&format!("[{}]", replay("b", None))), None).unwrap();
        assert_eq!(replays_configs(&judged)[TABLE_REPLAYS], None);
        // All approved: False; no replays at all: no condition.
        let judged = judge(&feed(&format!("[{}]", replay("a", Some("t")))), None).unwrap();
        let c = refused_condition(&judged, &update).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AllApproved")
        );
        let none = judge(&feed("[]"), None).unwrap();
        assert_eq!(refused_condition(&none, &update), None);
        assert_eq!(replays_configs(&none)[TABLE_REPLAYS], None);
    }

    #[test]
    fn problems_with_the_replays_themselves_are_named() {
        let mut f = feed(&format!(
            "[{}, {}, {}]",
            replay("a", Some("t")),
            replay("a", Some("t")),
            "{id: Bad_Id, from: '2026-12-01T10:00:00Z', to: '2026-12-01T11:00:00Z', reason: x, requestedBy: alice, approvedBy: t}",
        ));
        f.spec.replays.push(Replay {
            id: "late".into(),
            to: "2026-12-01".into(),
            ..f.spec.replays[0].clone()
        });
        f.spec.replays.push(Replay {
            id: "backwards".into(),
            from: "2026-12-01T12:00:00Z".into(),
            ..f.spec.replays[0].clone()
        });
        f.spec.table = None;
        let problems = judge(&f, None).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(
            problems[0],
            "spec.replays needs spec.table: a replay replaces rows of the feed's table"
        );
        assert_eq!(problems[1], "replay id \"a\" appears twice");
        assert!(
            problems[2].contains("lower-case letters"),
            "{}",
            problems[2]
        );
        assert_eq!(
            problems[3],
            "replays[late].to \"2026-12-01\" is not an RFC 3339 timestamp (e.g. 2026-12-01T10:00:00Z)"
        );
        assert!(
            problems[4].contains("is not before its end"),
            "{}",
            problems[4]
        );
    }
}
