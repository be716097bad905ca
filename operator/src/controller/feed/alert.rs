//! The rejection alert: from the Feed's consecutive readings of `rejectedRecords`, when
//! more records than the threshold failed validation within the window. Pure; the
//! window lives in the Feed's status, so it survives operator restarts.
//!
//! Windows tumble: a window opens at a reading and closes at the first reading
//! `windowSeconds` later. It alerts at most once; an alert opens a new window at once,
//! so the next alert needs more than `threshold` new rejections.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::feed::{RejectionAlert, RejectionWindow};

/// The window to store, and the rejections to alert about, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub window: RejectionWindow,
    /// Rejections counted within the window, when they exceed the threshold.
    pub alert: Option<i64>,
}

/// Judges reading `count` (the feed's rejected records, summed over the brokers) taken at
/// `now` against the window `previous` opened.
pub fn assess(
    previous: Option<&RejectionWindow>,
    count: i64,
    now: Timestamp,
    policy: &RejectionAlert,
) -> Assessment {
    let open = |alerted| RejectionWindow {
        started_at: Time(now),
        start_count: count,
        alerted,
    };
    let Some(prev) = previous else {
        return Assessment {
            window: open(false),
            alert: None,
        };
    };
    // A lower sum means a broker restarted and its counters with it: count from zero.
    let base = if count < prev.start_count {
        0
    } else {
        prev.start_count
    };
    let rejected = count - base;
    let window = policy.window_seconds.max(1);
    let elapsed = (now.as_second() - prev.started_at.0.as_second()).max(0);
    let expired = elapsed >= window;
    // Over a longer span than the window (the operator was away), the average counts.
    let in_window = if elapsed > window {
        rejected.saturating_mul(window) / elapsed
    } else {
        rejected
    };
    let may_alert = expired || !prev.alerted;
    if may_alert && in_window > policy.threshold {
        return Assessment {
            window: open(true),
            alert: Some(in_window),
        };
    }
    let window = if expired {
        open(false)
    } else {
        RejectionWindow {
            start_count: base,
            ..prev.clone()
        }
    };
    Assessment {
        window,
        alert: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RejectionAlert = RejectionAlert {
        threshold: 100,
        window_seconds: 300,
    };

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    /// Feeds `readings` (seconds, count) in order; the alerts raised, with their time.
    fn run(readings: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let mut window = None;
        let mut alerts = vec![];
        for &(t, count) in readings {
            let a = assess(window.as_ref(), count, at(t), &POLICY);
            if let Some(n) = a.alert {
                alerts.push((t, n));
            }
            window = Some(a.window);
        }
        alerts
    }

    #[test]
    fn the_first_reading_only_opens_a_window() {
        let a = assess(None, 5_000, at(0), &POLICY);
        assert_eq!(a.alert, None, "old rejections are not news");
        assert_eq!((a.window.start_count, a.window.alerted), (5_000, false));
    }

    #[test]
    fn more_than_the_threshold_within_the_window_alerts_once() {
        // Every 30 s: 40 rejections a reading; 101 are reached at 90 s.
        let readings: Vec<_> = (0..10).map(|i| (i * 30, i * 40)).collect();
        assert_eq!(
            run(&readings[..4]),
            [(90, 120)],
            "alerts as soon as it is exceeded"
        );
        // The alert opened a new window: the next one needs 100 more rejections and
        // waits for that window to end (at 390 s).
        let mut more = readings.clone();
        more.extend([(390, 520), (420, 560)]);
        assert_eq!(run(&more), [(90, 120), (390, 520 - 120)]);
    }

    #[test]
    fn exactly_the_threshold_or_a_slow_trickle_does_not_alert() {
        assert_eq!(run(&[(0, 0), (60, 100)]), []);
        // 60 every 5 minutes, forever: windows tumble, never more than 100 in one.
        let trickle: Vec<_> = (0..20).map(|i| (i * 150, i * 30)).collect();
        assert_eq!(run(&trickle), []);
    }

    #[test]
    fn a_broker_restart_lowering_the_sum_counts_from_zero() {
        assert_eq!(run(&[(0, 1_000), (30, 40), (60, 90)]), []);
        assert_eq!(run(&[(0, 1_000), (30, 40), (60, 141)]), [(60, 141)]);
    }

    #[test]
    fn a_long_gap_is_judged_by_its_average() {
        // The operator was away an hour: 1000 rejections over 12 windows is ~83 a window.
        assert_eq!(run(&[(0, 0), (3_600, 1_000)]), []);
        assert_eq!(run(&[(0, 0), (3_600, 1_300)]), [(3_600, 108)]);
    }

    #[test]
    fn the_window_survives_a_restart_through_the_status() {
        let first = assess(None, 10, at(0), &POLICY).window;
        let stored = serde_json::to_value(&first).unwrap();
        let restored: RejectionWindow = serde_json::from_value(stored).unwrap();
        assert_eq!(
            assess(Some(&restored), 200, at(60), &POLICY).alert,
            Some(190)
        );
    }
}
