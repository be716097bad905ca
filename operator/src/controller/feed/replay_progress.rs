//! A Feed's `status.replays`: every replay of the spec, refused, or summed over the
//! brokers that report it at `GET /v1/lake`; and the Events its changes of phase are
//! worth. Pure.

use std::collections::BTreeMap;

use sluice_schema::replay::{ReplayPhase as BrokerPhase, ReplaySpec};

use super::replay::Judged;
use super::timestamp::time_from_ms;
use crate::crd::feed::{ReplayPhase, ReplayStatus};
use crate::lake::BrokerReplay;

/// `status.replays`, in spec order. `reports`: each broker's report by replay id
/// (`None`: no scrape yet). A refused replay shows only why; an approved one that no
/// broker reports keeps what `previous` had for it (new ones are `Pending`).
pub fn replay_statuses(
    judged: &[Judged],
    reports: Option<&BTreeMap<String, Vec<BrokerReplay>>>,
    previous: &[ReplayStatus],
) -> Vec<ReplayStatus> {
    judged
        .iter()
        .map(|j| {
            if let Err(why) = &j.approval {
                return ReplayStatus {
                    id: j.id.clone(),
                    phase: ReplayPhase::Refused,
                    message: Some(why.clone()),
                    ..ReplayStatus::default()
                };
            }
            match reports.and_then(|r| r.get(&j.id)).filter(|r| !r.is_empty()) {
                Some(reports) => sum(&j.id, reports),
                None => previous
                    .iter()
                    .find(|p| p.id == j.id && p.phase != ReplayPhase::Refused)
                    .cloned()
                    .unwrap_or_else(|| ReplayStatus {
                        id: j.id.clone(),
                        ..ReplayStatus::default()
                    }),
            }
        })
        .collect()
}

/// One replay over the brokers that report it (at least one): Failed if any failed,
/// Succeeded when all succeeded, Running if any runs, else Pending; counts summed,
/// snapshots united, the earliest start, the latest finish (once finished), and every
/// broker's error.
fn sum(id: &str, reports: &[BrokerReplay]) -> ReplayStatus {
    let has = |phase| reports.iter().any(|r| r.status.phase == phase);
    let phase = if has(BrokerPhase::Failed) {
        ReplayPhase::Failed
    } else if reports
        .iter()
        .all(|r| r.status.phase == BrokerPhase::Succeeded)
    {
        ReplayPhase::Succeeded
    } else if has(BrokerPhase::Running) {
        ReplayPhase::Running
    } else {
        ReplayPhase::Pending
    };
    let total = |count: fn(&BrokerReplay) -> u64| {
        let sum = reports.iter().map(count).fold(0u64, u64::saturating_add);
        i64::try_from(sum).unwrap_or(i64::MAX)
    };
    let mut snapshot_ids: Vec<i64> = reports
        .iter()
        .flat_map(|r| r.status.snapshot_ids.iter().copied())
        .collect();
    snapshot_ids.sort_unstable();
    snapshot_ids.dedup();
    let finished = matches!(phase, ReplayPhase::Succeeded | ReplayPhase::Failed);
    let errors: Vec<String> = reports
        .iter()
        .filter_map(|r| Some(format!("{}: {}", r.pod, r.status.error.as_ref()?)))
        .collect();
    ReplayStatus {
        id: id.to_string(),
        phase,
        records_read: total(|r| r.status.records_read),
        rows_removed: total(|r| r.status.rows_removed),
        rows_added: total(|r| r.status.rows_added),
        dead_letters_added: total(|r| r.status.dead_letters_added),
        snapshot_ids,
        started_time: reports
            .iter()
            .filter_map(|r| r.status.started_ms)
            .min()
            .and_then(time_from_ms),
        finished_time: reports
            .iter()
            .filter_map(|r| r.status.finished_ms)
            .max()
            .filter(|_| finished)
            .and_then(time_from_ms),
        message: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

/// An Event about a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayEvent {
    /// A Warning (naming the owner), else Normal.
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Events of the replays whose phase changed from `previous` to `current`: when a
/// replay is refused, when it first shows Running (not when the brokers retry it after
/// a failure), when it succeeds, each time it fails. One Event a reason, naming every
/// replay it concerns: the Event recorder folds Events of one reason into a series that
/// keeps the first note.
pub fn replay_events(
    judged: &[Judged],
    previous: &[ReplayStatus],
    current: &[ReplayStatus],
) -> Vec<ReplayEvent> {
    let specs: BTreeMap<&str, &ReplaySpec> = judged
        .iter()
        .filter_map(|j| Some((j.id.as_str(), j.approval.as_ref().ok()?)))
        .collect();
    let mut events: Vec<ReplayEvent> = Vec::new();
    for status in current {
        let before = previous.iter().find(|p| p.id == status.id).map(|p| p.phase);
        if before == Some(status.phase) {
            continue;
        }
        let id = &status.id;
        let event = match status.phase {
            ReplayPhase::Running => {
                let first = matches!(
                    before,
                    None | Some(ReplayPhase::Pending | ReplayPhase::Refused)
                );
                let Some(spec) = specs.get(id.as_str()).filter(|_| first) else {
                    continue;
                };
                let at = |ms| time_from_ms(ms).map(|t| t.0.to_string()).unwrap_or_default();
                ReplayEvent {
                    warning: false,
                    reason: "ReplayStarted",
                    note: format!(
                        "replay {id} started: window {} to {} (requested by {}, approved by {}: {})",
                        at(spec.from_ms),
                        at(spec.to_ms),
                        spec.requested_by,
                        spec.approved_by,
                        spec.reason
                    ),
                }
            }
            ReplayPhase::Succeeded => ReplayEvent {
                warning: false,
                reason: "ReplaySucceeded",
                note: format!(
                    "replay {id} succeeded: {} rows removed, {} added ({} from dead letters), {} records read, snapshots {:?}",
                    status.rows_removed,
                    status.rows_added,
                    status.dead_letters_added,
                    status.records_read,
                    status.snapshot_ids
                ),
            },
            ReplayPhase::Failed => ReplayEvent {
                warning: true,
                reason: "ReplayFailed",
                note: format!(
                    "replay {id} failed: {}",
                    status.message.as_deref().unwrap_or("no error reported")
                ),
            },
            ReplayPhase::Refused => ReplayEvent {
                warning: true,
                reason: "ReplayRefused",
                note: status.message.clone().unwrap_or_default(),
            },
            ReplayPhase::Pending => continue,
        };
        match events.iter_mut().find(|e| e.reason == event.reason) {
            Some(same) => {
                same.note.push_str("; ");
                same.note.push_str(&event.note);
            }
            None => events.push(event),
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_schema::replay::ReplayStatus as BrokerStatus;

    fn spec(id: &str) -> ReplaySpec {
        ReplaySpec {
            id: id.into(),
            from_ms: 1_796_119_200_000,
            to_ms: 1_796_122_800_000,
            reason: "parser bug 42".into(),
            requested_by: "alice".into(),
            approved_by: "bob".into(),
            dead_letters: true,
            bytes_per_second: 1,
        }
    }

    fn approved(id: &str) -> Judged {
        Judged {
            id: id.into(),
            approval: Ok(spec(id)),
        }
    }

    fn report(pod: &str, phase: BrokerPhase) -> BrokerReplay {
        BrokerReplay {
            pod: pod.into(),
            status: BrokerStatus {
                id: "r".into(),
                phase,
                ..BrokerStatus::default()
            },
        }
    }

    fn phase_of(phases: &[BrokerPhase]) -> ReplayPhase {
        let reports: Vec<_> = phases
            .iter()
            .enumerate()
            .map(|(i, p)| report(&format!("lake-broker-{i}"), *p))
            .collect();
        sum("r", &reports).phase
    }

    #[test]
    fn the_phase_over_the_brokers() {
        use BrokerPhase::*;
        assert_eq!(phase_of(&[Succeeded, Failed, Running]), ReplayPhase::Failed);
        assert_eq!(phase_of(&[Succeeded, Succeeded]), ReplayPhase::Succeeded);
        assert_eq!(phase_of(&[Succeeded]), ReplayPhase::Succeeded);
        assert_eq!(phase_of(&[Succeeded, Running]), ReplayPhase::Running);
        assert_eq!(phase_of(&[Pending, Running]), ReplayPhase::Running);
        assert_eq!(
            phase_of(&[Succeeded, Pending]),
            ReplayPhase::Pending,
            "one broker still waits for its table to hold the window"
        );
        assert_eq!(phase_of(&[Pending]), ReplayPhase::Pending);
    }

    #[test]
    fn figures_are_summed_and_times_are_the_outer_ones() {
        let mut a = report("lake-broker-0", BrokerPhase::Succeeded);
        a.status.records_read = 10;
        a.status.rows_removed = 9;
        a.status.rows_added = 10;
        a.status.dead_letters_added = 1;
        a.status.snapshot_ids = vec![14, 12];
        a.status.started_ms = Some(1_800_000_001_000);
        a.status.finished_ms = Some(1_800_000_009_000);
        let mut b = report("lake-broker-1", BrokerPhase::Failed);
        b.status.records_read = 5;
        b.status.rows_removed = 5;
        b.status.snapshot_ids = vec![12, 13];
        b.status.started_ms = Some(1_800_000_000_000);
        b.status.finished_ms = Some(1_800_000_005_000);
        b.status.error = Some("commit refused".into());
        let status = sum("r", &[a.clone(), b]);
        assert_eq!(
            status,
            ReplayStatus {
                id: "r".into(),
                phase: ReplayPhase::Failed,
                records_read: 15,
                rows_removed: 14,
                rows_added: 10,
                dead_letters_added: 1,
                snapshot_ids: vec![12, 13, 14],
                started_time: time_from_ms(1_800_000_000_000),
                finished_time: time_from_ms(1_800_000_009_000),
                message: Some("lake-broker-1: commit refused".into()),
            }
        );
        // Not finished while one broker still runs it.
        let running = sum("r", &[a, report("lake-broker-1", BrokerPhase::Running)]);
        assert_eq!(running.phase, ReplayPhase::Running);
        assert_eq!(running.started_time, time_from_ms(1_800_000_001_000));
        assert_eq!(running.finished_time, None);
        assert_eq!(running.message, None);
    }

    #[test]
    fn statuses_follow_the_spec_refused_or_reported_or_as_before() {
        let judged = vec![
            approved("a"),
            Judged {
                id: "b".into(),
                approval: Err("replay b has no approvedBy: it is not approved".into()),
            },
            approved("c"),
            approved("d"),
        ];
        let reports = BTreeMap::from([
            (
                "a".to_string(),
                vec![report("lake-broker-0", BrokerPhase::Running)],
            ),
            // Reported for a replay that is refused now: what the spec says wins.
            (
                "b".to_string(),
                vec![report("lake-broker-0", BrokerPhase::Succeeded)],
            ),
            // A replay no longer in the spec is not shown.
            (
                "gone".to_string(),
                vec![report("lake-broker-0", BrokerPhase::Running)],
            ),
        ]);
        let previous = vec![ReplayStatus {
            id: "c".into(),
            phase: ReplayPhase::Succeeded,
            rows_added: 3,
            ..ReplayStatus::default()
        }];
        let statuses = replay_statuses(&judged, Some(&reports), &previous);
        let phases: Vec<_> = statuses.iter().map(|s| (s.id.as_str(), s.phase)).collect();
        assert_eq!(
            phases,
            [
                ("a", ReplayPhase::Running),
                ("b", ReplayPhase::Refused),
                ("c", ReplayPhase::Succeeded),
                ("d", ReplayPhase::Pending),
            ]
        );
        assert_eq!(
            statuses[1].message.as_deref(),
            Some("replay b has no approvedBy: it is not approved")
        );
        assert_eq!(statuses[2].rows_added, 3, "unreported: as it was");
        // Before any scrape, everything approved stays as it was.
        let kept = replay_statuses(&judged, None, &statuses);
        assert_eq!(kept, statuses);
    }

    #[test]
    fn each_change_of_phase_is_one_event() {
        let judged = vec![approved("a"), approved("b"), approved("c")];
        let status = |id: &str, phase| ReplayStatus {
            id: id.into(),
            phase,
            ..ReplayStatus::default()
        };
        let pending = vec![
            status("a", ReplayPhase::Pending),
            status("b", ReplayPhase::Pending),
            status("c", ReplayPhase::Running),
        ];
        assert_eq!(replay_events(&judged, &[], &pending[..2]), []);
        // Refused: once, until it is approved and refused again.
        let mut refused = status("a", ReplayPhase::Refused);
        refused.message = Some("replay a has no approvedBy: it is not approved".into());
        let refused = vec![refused];
        assert_eq!(
            replay_events(&judged, &pending, &refused),
            [ReplayEvent {
                warning: true,
                reason: "ReplayRefused",
                note: "replay a has no approvedBy: it is not approved".into(),
            }]
        );
        assert_eq!(replay_events(&judged, &refused, &refused), []);
        // Two at once: one Event naming both.
        let mut both = refused.clone();
        both.push(ReplayStatus {
            id: "b".into(),
            ..both[0].clone()
        });
        both[1].message = Some("replay b has no approvedBy: it is not approved".into());
        let events = replay_events(&judged, &[], &both);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].note,
            "replay a has no approvedBy: it is not approved; \
             replay b has no approvedBy: it is not approved"
        );
        let mut failed = status("c", ReplayPhase::Failed);
        failed.message = Some("lake-broker-1: commit refused".into());
        let mut done = status("b", ReplayPhase::Succeeded);
        done.rows_removed = 9;
        done.rows_added = 10;
        done.snapshot_ids = vec![12];
        let next = vec![status("a", ReplayPhase::Running), done, failed];
        let events = replay_events(&judged, &pending, &next);
        assert_eq!(
            events,
            [
                ReplayEvent {
                    warning: false,
                    reason: "ReplayStarted",
                    note: "replay a started: window 2026-12-01T10:00:00Z to 2026-12-01T11:00:00Z \
                           (requested by alice, approved by bob: parser bug 42)"
                        .into(),
                },
                ReplayEvent {
                    warning: false,
                    reason: "ReplaySucceeded",
                    note: "replay b succeeded: 9 rows removed, 10 added (0 from dead letters), \
                           0 records read, snapshots [12]"
                        .into(),
                },
                ReplayEvent {
                    warning: true,
                    reason: "ReplayFailed",
                    note: "replay c failed: lake-broker-1: commit refused".into(),
                },
            ]
        );
        assert_eq!(
            replay_events(&judged, &next, &next),
            [],
            "no change, no Event"
        );
        // The brokers retry a failed replay: no second start, a second failure.
        let retried = vec![status("c", ReplayPhase::Running)];
        assert_eq!(replay_events(&judged, &next, &retried), []);
        let again = replay_events(&judged, &retried, &next[2..]);
        assert_eq!(
            again.iter().map(|e| e.reason).collect::<Vec<_>>(),
            ["ReplayFailed"]
        );
    }
}
