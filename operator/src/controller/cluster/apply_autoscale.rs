//! Applies the pure autoscaler's decisions ([`crate::autoscale`]) to a running cluster, one
//! step of its reconcile: observation → signals → decision → scaling step (drain before a
//! scale-in) → balancer moves → `status.autoscaling`, Events. Only [`autoscale`] has effects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use tracing::{debug, info, warn};

use super::observe::Observation;
use crate::autoscale::{
    plan_moves, scale_step, Autoscaler, Decision, PartitionLoad, Phase, Policy, Signals,
};
use crate::controller::cluster::build::ClusterModel;
use crate::controller::cluster_client::ClusterClient;
use crate::controller::Context;
use crate::crd::cluster::{AutoscalingSpec, AutoscalingStatus};
use crate::crd::SecurityLakeCluster;
use crate::metrics::{counter_rate, counter_rates, human_bytes, CounterSample};

/// What the autoscaler remembers of one cluster between reconciles.
#[derive(Debug, Default)]
pub struct Memory {
    autoscaler: Autoscaler,
    /// The observation of the last decision: rates are taken between decisions, so a
    /// burst of reconciles (watch events) does not measure over milliseconds.
    last: Option<Observation>,
    last_decision_ms: Option<u64>,
    decision: Option<Decision>,
    /// Partition loads of the last decision.
    loads: Vec<PartitionLoad>,
    signals: Option<String>,
}

/// The autoscaling settings as the pure autoscaler takes them.
pub fn policy(spec: &AutoscalingSpec, min: i32, max: i32) -> Policy {
    Policy {
        min_brokers: min.max(1) as u32,
        max_brokers: max.max(min).max(1) as u32,
        target_bytes_per_broker: spec.target_bytes_per_second_per_broker as f64,
        lag_threshold: (spec.lag_threshold > 0).then_some(spec.lag_threshold as u64),
        activation_lag: spec.activation_lag_threshold.max(0) as u64,
        exclude_persistent_lag: spec.exclude_persistent_lag,
        cpu_target: spec.cpu_target_percent.map(|p| p as f64 / 100.0),
        tolerance: spec.tolerance_percent as f64 / 100.0,
        scale_up_max_brokers: spec.scale_up_max_brokers.max(1) as u32,
        scale_up_max_percent: spec.scale_up_max_percent.max(1) as u32,
        scale_down_stabilization: Duration::from_secs(
            spec.scale_down_stabilization_seconds.max(0) as u64
        ),
    }
}

/// CPU cores one broker may use: its CPU request, else its limit. `None`: CPU cannot be
/// judged (no share to compare against).
pub fn cpu_per_broker(resources: Option<&ResourceRequirements>) -> Option<f64> {
    let r = resources?;
    let pick = |m: &Option<BTreeMap<String, _>>| m.as_ref().and_then(|m| m.get("cpu")).cloned();
    let q: k8s_openapi::apimachinery::pkg::api::resource::Quantity =
        pick(&r.requests).or_else(|| pick(&r.limits))?;
    cores(&q.0)
}

/// `500m` → 0.5, `2` → 2.0.
fn cores(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let value = match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => q.parse::<f64>().ok()?,
    };
    (value > 0.0).then_some(value)
}

/// Signals between two observations `elapsed` apart.
pub fn signals(
    previous: &Observation,
    now: &Observation,
    brokers: i32,
    cpu_per_broker: Option<f64>,
) -> Signals {
    let rate = |a: &Option<CounterSample>, b: &Option<CounterSample>| match (a, b) {
        (Some(a), Some(b)) => counter_rate(a, b),
        _ => None,
    };
    let bytes = rate(&previous.produce_bytes, &now.produce_bytes).unwrap_or(0.0)
        + rate(&previous.fetch_bytes, &now.fetch_bytes).unwrap_or(0.0);
    let cpu = match (
        rate(&previous.cpu_seconds, &now.cpu_seconds),
        cpu_per_broker,
    ) {
        (Some(seconds_per_second), Some(cores)) if brokers > 0 => {
            Some(seconds_per_second / (cores * brokers as f64))
        }
        _ => None,
    };
    Signals {
        bytes_per_second: bytes,
        // Sluice does not throttle producers, so demand it did not serve shows as lag
        // (consumers) or as CPU (brokers), not as a separate backlog figure.
        backlog_growth: 0.0,
        lag: now.lag.clone(),
        cpu,
    }
}

/// Produce bytes per second of each partition and its current leader. The counters are
/// per leader (`pod/topic/partition`): after a move the new leader's series starts and
/// the old one stops, so the rates of all series of a partition are summed.
pub fn partition_loads(previous: &Observation, now: &Observation) -> Vec<PartitionLoad> {
    let rates = match (&previous.partition_bytes, &now.partition_bytes) {
        (Some(a), Some(b)) => counter_rates(a, b).unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    let mut by_partition: BTreeMap<(String, i32), f64> = BTreeMap::new();
    for (key, rate) in rates {
        let mut parts = key.rsplitn(3, '/');
        let (Some(p), Some(t)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let Ok(p) = p.parse::<i32>() {
            *by_partition.entry((t.to_string(), p)).or_default() += rate;
        }
    }
    now.leaders
        .iter()
        .filter(|(_, leader)| **leader >= 0)
        .map(|((topic, partition), leader)| PartitionLoad {
            topic: topic.clone(),
            partition: *partition,
            leader: *leader,
            bytes_per_second: by_partition
                .get(&(topic.clone(), *partition))
                .copied()
                .unwrap_or(0.0),
        })
        .collect()
}

/// No scale-in on incomplete signals: a broker whose metrics could not be read may be
/// the busiest one (too busy to answer), and its missing throughput would look like
/// idle capacity. A scale-out stands: more brokers are safe.
pub fn hold_on_incomplete(mut decision: Decision, current: u32, complete: bool) -> Decision {
    if !complete && decision.desired < current {
        decision.desired = current;
        decision.limited_by = Some("incomplete signals (a broker could not be read)");
    }
    decision
}

fn describe(s: &Signals) -> String {
    let lag: u64 = s.lag.values().map(|(l, _)| *l).sum();
    let mut out = format!("throughput {}, lag {lag}", human_bytes(s.bytes_per_second));
    if let Some(cpu) = s.cpu {
        out.push_str(&format!(", cpu {:.0}%", cpu * 100.0));
    }
    out
}

/// The autoscaling outcome of one reconcile.
pub struct Outcome {
    /// Replicas of the StatefulSet.
    pub replicas: i32,
    pub status: AutoscalingStatus,
}

/// One autoscaling round for `cluster`, whose StatefulSet runs `current` brokers of
/// which `ready` are ready.
pub async fn autoscale(
    ctx: &Context,
    cluster: &SecurityLakeCluster,
    model: &ClusterModel<'_>,
    spec: &AutoscalingSpec,
    (current, ready): (i32, i32),
    (observation, kafka): (&Observation, Option<&ClusterClient>),
    now: &Time,
) -> Outcome {
    let key = crate::controller::object_key(cluster);
    let policy = policy(spec, cluster.spec.min_replicas, cluster.spec.max_replicas);
    let previous_status = cluster.status.as_ref().and_then(|s| s.autoscaling.as_ref());
    let interval_ms = spec.interval_seconds.max(1) as u64 * 1000;
    let now_ms = super::monotonic_ms();

    // Decide (at most once per interval; in between, the last decision stands).
    let (decision, loads, signals_text, decided) = ctx.autoscaling(&key, |m: &mut Memory| {
        let due = m.last_decision_ms.is_none_or(|t| now_ms >= t + interval_ms);
        let mut decided = false;
        if due {
            if let Some(last) = &m.last {
                let s = signals(
                    last,
                    observation,
                    current,
                    cpu_per_broker(cluster.spec.resources.as_ref()),
                );
                let d = m.autoscaler.decide(
                    &policy,
                    Duration::from_millis(now_ms),
                    current.max(1) as u32,
                    &s,
                );
                m.loads = partition_loads(last, observation);
                m.signals = Some(describe(&s));
                debug!(
                    current,
                    desired = d.desired,
                    recommended = d.recommended,
                    signal = ?d.signal,
                    signals = m.signals.as_deref().unwrap_or_default(),
                    "autoscaler decision"
                );
                m.decision = Some(hold_on_incomplete(
                    d,
                    current.max(1) as u32,
                    observation.problems.is_empty(),
                ));
                decided = true;
            }
            m.last = Some(observation.clone());
            m.last_decision_ms = Some(now_ms);
        }
        (
            m.decision.clone(),
            m.loads.clone(),
            m.signals.clone(),
            decided,
        )
    });
    let clamp = |n: i32| n.clamp(cluster.spec.min_replicas, cluster.spec.max_replicas);
    let desired = clamp(decision.as_ref().map_or(current, |d| d.desired as i32));

    // Step: scale out at once; drain, then shrink.
    let ours = previous_status
        .map(|s| s.draining_brokers.clone())
        .unwrap_or_default();
    let step = scale_step(current, desired, observation.fleet.as_ref(), &ours);
    // Pod 0 always stays (ordinals are removed from the top): its fleet endpoint is
    // resolved only when there is a drain setting to change.
    let admin_addr = if step.drain.is_empty() && step.undrain.is_empty() {
        String::new()
    } else {
        ctx.address(&format!("{}:{}", model.pod_host(0), model.metrics_port()))
            .await
    };
    for (nodes, draining) in [(&step.drain, true), (&step.undrain, false)] {
        for node in nodes.iter() {
            match ctx
                .observer
                .set_draining(&admin_addr, *node, draining)
                .await
            {
                Ok(()) => info!(node, draining, "drain setting changed"),
                Err(e) => warn!(node, draining, error = %e, "changing the drain setting failed"),
            }
        }
    }
    if !step.drain.is_empty() {
        ctx.event(
            cluster,
            EventType::Normal,
            "DrainingBrokers",
            format!(
                "brokers {:?} hand their partitions over before the scale-in to {desired}",
                step.drain
            ),
        )
        .await;
    }
    if decided && desired > current {
        let d = decision.as_ref().expect("decided");
        ctx.event(
            cluster,
            EventType::Normal,
            "ScalingOut",
            format!(
                "{current} → {desired} brokers ({:?}: {})",
                d.signal,
                signals_text.clone().unwrap_or_default()
            ),
        )
        .await;
    }

    // Balance, when the fleet is steady: every broker ready, nothing draining or moving.
    let mut phase = step.phase;
    let mut last_moves = previous_status
        .map(|s| s.last_moves.clone())
        .unwrap_or_default();
    let moving = observation
        .fleet
        .as_ref()
        .map_or(0, |f| f.partitions_moving) as i32;
    let fleet_brokers: Vec<i32> = observation
        .fleet
        .as_ref()
        .map(|f| {
            f.nodes
                .iter()
                .filter(|n| n.alive && !n.draining && n.id < step.replicas)
                .map(|n| n.id)
                .collect()
        })
        .unwrap_or_default();
    let broker_loads = crate::autoscale::broker_loads(&loads, &fleet_brokers);
    let hottest = broker_loads
        .iter()
        .map(|b| b.bytes_per_second)
        .fold(0.0, f64::max);
    let tolerance = spec.balancer.tolerance_percent as f64 / 100.0;
    let steady = step.phase == Phase::Stable
        && ready >= current
        && fleet_brokers.len() as i32 == step.replicas
        && moving < spec.balancer.max_concurrent_moves;
    // Below `tolerance` of a broker's target nothing is worth a move.
    let loaded = hottest >= tolerance * policy.target_bytes_per_broker;
    if decided && spec.balancer.enabled && steady && loaded {
        let budget = (spec.balancer.max_concurrent_moves - moving).max(0) as usize;
        let moves = plan_moves(&loads, &fleet_brokers, tolerance, budget);
        if !moves.is_empty() {
            let wanted: Vec<(String, i32, i32)> = moves
                .iter()
                .map(|m| (m.topic.clone(), m.partition, m.to))
                .collect();
            let moved = match kafka {
                Some(client) => {
                    ctx.observer
                        .move_partitions(&client.bootstrap, &client.security, &wanted)
                        .await
                }
                None => Err("the cluster's credentials cannot be read yet".to_string()),
            };
            match moved {
                Ok(refused) => {
                    for r in &refused {
                        warn!(refused = %r, "a balancing move was refused");
                    }
                    last_moves = moves
                        .iter()
                        .map(|m| format!("{}-{}: {}→{}", m.topic, m.partition, m.from, m.to))
                        .collect();
                    phase = Phase::Balancing;
                    ctx.event(
                        cluster,
                        EventType::Normal,
                        "Balancing",
                        format!(
                            "moving {} partition leaders (metadata only): {}",
                            moves.len(),
                            last_moves.join(", ")
                        ),
                    )
                    .await;
                }
                Err(e) => warn!(error = %e, "balancing moves failed"),
            }
        }
    }

    let broker_load = broker_loads
        .iter()
        .map(|b| (b.id.to_string(), b.bytes_per_second.round() as i64))
        .collect();
    let d = decision.as_ref();
    let status = AutoscalingStatus {
        desired_replicas: desired,
        recommended_replicas: d.map_or(current, |d| d.recommended as i32),
        signal: d.map_or("None".into(), |d| format!("{:?}", d.signal)),
        limited_by: match (&step.waiting_for, d.and_then(|d| d.limited_by)) {
            (Some(w), _) => Some(format!("waiting for {w}")),
            (None, l) => l.map(str::to_string),
        },
        phase: phase.as_str().into(),
        draining_brokers: if step.phase == Phase::Draining {
            step.leaving.clone()
        } else {
            Vec::new()
        },
        moves_in_progress: moving,
        last_moves,
        broker_load,
        signals: signals_text,
        last_decision_time: if decided {
            Some(now.clone())
        } else {
            previous_status.and_then(|s| s.last_decision_time.clone())
        },
    };
    Outcome {
        replicas: step.replicas,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, values: &[(&str, f64)]) -> Option<CounterSample> {
        Some(CounterSample {
            at_ms,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }

    #[test]
    fn cpu_share_comes_from_the_request_else_the_limit() {
        let r: ResourceRequirements =
            serde_json::from_value(serde_json::json!({"limits": {"cpu": "2"}})).unwrap();
        assert_eq!(cpu_per_broker(Some(&r)), Some(2.0));
        let r: ResourceRequirements = serde_json::from_value(
            serde_json::json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}}),
        )
        .unwrap();
        assert_eq!(cpu_per_broker(Some(&r)), Some(0.5));
        assert_eq!(cpu_per_broker(None), None);
    }

    #[test]
    fn signals_add_produce_and_fetch_and_scale_cpu_by_the_share() {
        let before = Observation {
            produce_bytes: sample(0, &[("b-0", 0.0), ("b-1", 0.0)]),
            fetch_bytes: sample(0, &[("b-0", 0.0)]),
            cpu_seconds: sample(0, &[("b-0", 10.0), ("b-1", 10.0)]),
            ..Observation::default()
        };
        let after = Observation {
            produce_bytes: sample(10_000, &[("b-0", 50e6), ("b-1", 50e6)]),
            fetch_bytes: sample(10_000, &[("b-0", 100e6)]),
            cpu_seconds: sample(10_000, &[("b-0", 16.0), ("b-1", 14.0)]),
            ..Observation::default()
        };
        let s = signals(&before, &after, 2, Some(1.0));
        assert_eq!(s.bytes_per_second, 20e6);
        assert_eq!(s.cpu, Some(0.5), "1 core-second per second over 2 cores");
        assert_eq!(signals(&before, &after, 2, None).cpu, None);
    }

    #[test]
    fn partition_loads_sum_the_series_of_old_and_new_leaders() {
        let mut before = Observation {
            partition_bytes: sample(0, &[("b-0/dns/0", 0.0), ("b-0/dns/1", 0.0)]),
            ..Observation::default()
        };
        before.leaders.insert(("dns".into(), 0), 0);
        let mut after = Observation {
            // dns-1 moved to b-1 midway: both series carry part of its load.
            partition_bytes: sample(
                2_000,
                &[
                    ("b-0/dns/0", 4000.0),
                    ("b-0/dns/1", 1000.0),
                    ("b-1/dns/1", 0.0),
                ],
            ),
            ..Observation::default()
        };
        after.leaders.insert(("dns".into(), 0), 0);
        after.leaders.insert(("dns".into(), 1), 1);
        after.leaders.insert(("dns".into(), 2), -1);
        let loads = partition_loads(&before, &after);
        assert_eq!(loads.len(), 2, "no load for a partition without a leader");
        assert_eq!((loads[0].leader, loads[0].bytes_per_second), (0, 2000.0));
        assert_eq!((loads[1].leader, loads[1].bytes_per_second), (1, 500.0));
    }

    #[test]
    fn incomplete_signals_hold_a_scale_in_but_not_a_scale_out() {
        let d = |desired| Decision {
            desired,
            signal: crate::autoscale::Signal::Minimum,
            recommended: desired,
            limited_by: None,
        };
        let held = hold_on_incomplete(d(1), 3, false);
        assert_eq!(held.desired, 3);
        assert!(held.limited_by.unwrap().contains("incomplete"));
        assert_eq!(hold_on_incomplete(d(5), 3, false).desired, 5);
        assert_eq!(hold_on_incomplete(d(1), 3, true).desired, 1);
    }

    #[test]
    fn policy_takes_the_cluster_bounds() {
        let spec: AutoscalingSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        let p = policy(&spec, 2, 6);
        assert_eq!((p.min_brokers, p.max_brokers), (2, 6));
        assert_eq!(p.target_bytes_per_broker, 50.0 * 1024.0 * 1024.0);
        assert_eq!(p.lag_threshold, Some(100_000));
        assert_eq!(p.scale_down_stabilization, Duration::from_secs(300));
    }
}
