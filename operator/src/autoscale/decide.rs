//! How many brokers a cluster needs, from its signals (see the module header).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Autoscaling settings (the `autoscaling` section of a SecurityLakeCluster).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min_brokers: u32,
    pub max_brokers: u32,
    /// Produce + fetch bytes per second one broker should carry.
    pub target_bytes_per_broker: f64,
    /// Consumer lag (records) one broker's worth of catch-up handles (KEDA `lagThreshold`).
    pub lag_threshold: Option<u64>,
    /// Total lag at or below which lag asks for nothing (KEDA `activationLagThreshold`).
    pub activation_lag: u64,
    /// Leave out partitions whose consumer made no progress since the last sample (KEDA
    /// `excludePersistentLag`): a stuck consumer is not helped by more brokers.
    pub exclude_persistent_lag: bool,
    /// Target CPU utilisation (0..1), when CPU is known.
    pub cpu_target: Option<f64>,
    /// No change while the ratio to the target is within this (HPA: 0.1).
    pub tolerance: f64,
    /// Most brokers added at once: the larger of a count and a share of the current
    /// fleet (HPA's default: 4 pods or 100% per 15 s).
    pub scale_up_max_brokers: u32,
    pub scale_up_max_percent: u32,
    /// A scale-down takes the largest recommendation of this window (HPA: 300 s).
    pub scale_down_stabilization: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_brokers: 1,
            max_brokers: 10,
            target_bytes_per_broker: 50e6,
            lag_threshold: Some(100_000),
            activation_lag: 0,
            exclude_persistent_lag: true,
            cpu_target: None,
            tolerance: 0.1,
            scale_up_max_brokers: 4,
            scale_up_max_percent: 100,
            scale_down_stabilization: Duration::from_secs(300),
        }
    }
}

/// One sample of the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// Produce + fetch bytes per second over all brokers.
    pub bytes_per_second: f64,
    /// How fast the backlog grows, bytes per second: demand the brokers did not serve
    /// (throttled producers, consumers falling behind). Throughput alone cannot show
    /// demand above capacity; this can.
    pub backlog_growth: f64,
    /// Consumer lag (records) per (group, topic, partition) and its committed offset.
    pub lag: BTreeMap<(String, String, i32), (u64, i64)>,
    /// Average CPU utilisation of the brokers (0..1), when known.
    pub cpu: Option<f64>,
}

/// Which signal decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    Throughput,
    Lag,
    Cpu,
    Minimum,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub desired: u32,
    /// The signal with the largest recommendation.
    pub signal: Signal,
    /// The recommendation before step limits and stabilisation.
    pub recommended: u32,
    /// Why the decision differs from the recommendation, if it does.
    pub limited_by: Option<&'static str>,
}

/// The autoscaler's memory: recent recommendations (for the stabilisation window) and
/// the previous lag sample (for persistent-lag exclusion).
#[derive(Debug, Default)]
pub struct Autoscaler {
    recommendations: VecDeque<(Duration, u32)>,
    previous_offsets: BTreeMap<(String, String, i32), i64>,
}

impl Autoscaler {
    /// The desired broker count at time `now` (any monotonic clock) for `current`
    /// brokers.
    pub fn decide(
        &mut self,
        policy: &Policy,
        now: Duration,
        current: u32,
        s: &Signals,
    ) -> Decision {
        let current = current.max(1);
        let mut candidates = vec![(policy.min_brokers, Signal::Minimum)];
        // Throughput, with demand the fleet did not serve added.
        let demand = s.bytes_per_second + s.backlog_growth.max(0.0);
        if policy.target_bytes_per_broker > 0.0 {
            candidates.push((
                with_tolerance(
                    current,
                    demand / (policy.target_bytes_per_broker * current as f64),
                    policy.tolerance,
                ),
                Signal::Throughput,
            ));
        }
        if let Some(threshold) = policy.lag_threshold.filter(|t| *t > 0) {
            let lag = self.counted_lag(policy, s);
            if lag > policy.activation_lag {
                candidates.push((lag.div_ceil(threshold) as u32, Signal::Lag));
            }
        }
        if let (Some(target), Some(cpu)) = (policy.cpu_target, s.cpu) {
            candidates.push((
                with_tolerance(current, cpu / target, policy.tolerance),
                Signal::Cpu,
            ));
        }
        self.previous_offsets = s.lag.iter().map(|(k, (_, o))| (k.clone(), *o)).collect();
        let (raw, signal) = candidates
            .into_iter()
            .max_by_key(|(n, sig)| (*n, std::cmp::Reverse(*sig)))
            .expect("the minimum is always a candidate");
        let recommended = raw.clamp(policy.min_brokers, policy.max_brokers);
        self.recommendations.push_back((now, recommended));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > policy.scale_down_stabilization)
        {
            self.recommendations.pop_front();
        }
        let (desired, limited_by) = if recommended > current {
            let step = policy
                .scale_up_max_brokers
                .max(current * policy.scale_up_max_percent / 100)
                .max(1);
            if recommended > current + step {
                (current + step, Some("scale-up step limit"))
            } else {
                (recommended, None)
            }
        } else if recommended < current {
            // The largest recommendation of the window: shrink only what stayed unneeded.
            let stable = self
                .recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(recommended);
            if stable > recommended {
                (stable.min(current), Some("scale-down stabilisation window"))
            } else {
                (recommended, None)
            }
        } else {
            (current, None)
        };
        Decision {
            desired,
            signal,
            recommended,
            limited_by,
        }
    }

    /// Total lag, without partitions whose consumer made no progress since the last
    /// sample (when asked to exclude persistent lag).
    fn counted_lag(&self, policy: &Policy, s: &Signals) -> u64 {
        s.lag
            .iter()
            .filter(|(k, (lag, offset))| {
                !(policy.exclude_persistent_lag
                    && *lag > 0
                    && self.previous_offsets.get(*k) == Some(offset))
            })
            .map(|(_, (lag, _))| *lag)
            .sum()
    }
}

/// HPA's rule: `ceil(current × ratio)`, unless the ratio is within the tolerance of 1.
fn with_tolerance(current: u32, ratio: f64, tolerance: f64) -> u32 {
    if (ratio - 1.0).abs() <= tolerance {
        current
    } else {
        (current as f64 * ratio).ceil().max(0.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    fn policy() -> Policy {
        Policy {
            min_brokers: 2,
            max_brokers: 20,
            target_bytes_per_broker: 50.0 * MB,
            lag_threshold: Some(1_000),
            activation_lag: 100,
            ..Policy::default()
        }
    }

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn throughput(mb: f64) -> Signals {
        Signals {
            bytes_per_second: mb * MB,
            ..Signals::default()
        }
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let mut a = Autoscaler::default();
        let d = a.decide(&policy(), at(0), 4, &throughput(4.0 * 52.0));
        assert_eq!(d.desired, 4);
    }

    #[test]
    fn a_spike_scales_up_at_once_within_the_step_limit() {
        let mut a = Autoscaler::default();
        // 10x of 2 brokers' worth: wants 20, may add max(4, 100% of 2) = 4.
        let d = a.decide(&policy(), at(0), 2, &throughput(1000.0));
        assert_eq!(
            (d.recommended, d.desired, d.signal),
            (20, 6, Signal::Throughput)
        );
        assert_eq!(d.limited_by, Some("scale-up step limit"));
        let d = a.decide(&policy(), at(15), 6, &throughput(1000.0));
        assert_eq!(d.desired, 12, "100% of 6");
    }

    #[test]
    fn unserved_demand_counts_although_throughput_is_capped() {
        let mut a = Autoscaler::default();
        // 4 brokers saturated at 200 MB/s while the backlog grows by 300 MB/s.
        let s = Signals {
            bytes_per_second: 200.0 * MB,
            backlog_growth: 300.0 * MB,
            ..Signals::default()
        };
        assert_eq!(a.decide(&policy(), at(0), 4, &s).recommended, 10);
    }

    #[test]
    fn scale_down_waits_for_the_stabilisation_window() {
        let mut a = Autoscaler::default();
        let p = policy();
        assert_eq!(a.decide(&p, at(0), 10, &throughput(500.0)).desired, 10);
        // Load drops: the recommendation is 2, but the window still holds 10.
        let d = a.decide(&p, at(60), 10, &throughput(100.0));
        assert_eq!((d.recommended, d.desired), (2, 10));
        assert_eq!(d.limited_by, Some("scale-down stabilisation window"));
        let d = a.decide(&p, at(301), 10, &throughput(100.0));
        assert_eq!(d.desired, 2, "after 300 s of low load");
    }

    #[test]
    fn lag_scales_like_keda_with_activation_and_persistent_lag() {
        let mut a = Autoscaler::default();
        let p = Policy {
            target_bytes_per_broker: 0.0,
            ..policy()
        };
        let lag = |entries: &[(i32, u64, i64)]| Signals {
            lag: entries
                .iter()
                .map(|(part, lag, off)| (("g".to_string(), "t".to_string(), *part), (*lag, *off)))
                .collect(),
            ..Signals::default()
        };
        // Below activation: lag asks for nothing (the minimum stands).
        assert_eq!(
            a.decide(&p, at(0), 2, &lag(&[(0, 50, 10)])).signal,
            Signal::Minimum
        );
        // 5,500 records over two progressing partitions: ceil(5500/1000) = 6.
        let d = a.decide(&p, at(1), 2, &lag(&[(0, 2_500, 20), (1, 3_000, 5)]));
        assert_eq!((d.recommended, d.signal), (6, Signal::Lag));
        // Partition 1's consumer is stuck (same offset): its lag is left out.
        let d = a.decide(&p, at(2), 6, &lag(&[(0, 2_500, 40), (1, 3_000, 5)]));
        assert_eq!(d.recommended, 3);
    }

    #[test]
    fn cpu_counts_when_known_and_min_max_bound_everything() {
        let mut a = Autoscaler::default();
        let p = Policy {
            cpu_target: Some(0.5),
            max_brokers: 5,
            ..policy()
        };
        let s = Signals {
            cpu: Some(0.9),
            ..throughput(10.0)
        };
        let d = a.decide(&p, at(0), 4, &s);
        assert_eq!(
            (d.recommended, d.signal),
            (5, Signal::Cpu),
            "ceil(4 × 1.8) = 8, capped at 5"
        );
    }

    /// A recorded trace: quiet, a 10x spike, quiet again. Up at once (stepwise), down
    /// only after the window.
    #[test]
    fn a_recorded_incident_trace() {
        let p = policy();
        let mut a = Autoscaler::default();
        let mut brokers = 2;
        let mut timeline = Vec::new();
        for t in (0..1200).step_by(15) {
            let mb: f64 = if (300..600).contains(&t) {
                1000.0
            } else {
                90.0
            };
            let d = a.decide(
                &p,
                at(t),
                brokers,
                &throughput(mb.min(brokers as f64 * 60.0)).with_growth(mb - brokers as f64 * 60.0),
            );
            brokers = d.desired;
            timeline.push((t, brokers));
        }
        let at_t = |t: u64| timeline.iter().find(|(s, _)| *s == t).unwrap().1;
        assert_eq!(at_t(0), 2);
        assert_eq!(at_t(345), 20, "full capacity within 45 s of the spike");
        assert_eq!(
            at_t(885),
            20,
            "held through the stabilisation window after the spike"
        );
        assert_eq!(at_t(1185), 2, "back to the minimum");
    }

    impl Signals {
        fn with_growth(mut self, bytes: f64) -> Self {
            self.backlog_growth = bytes.max(0.0) * MB;
            self
        }
    }
}
