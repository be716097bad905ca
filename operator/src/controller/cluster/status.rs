//! The cluster's status from what the reconcile saw: pure, so every condition is tested
//! without a server.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use crate::crd::cluster::{ScaleEvent, SecurityLakeClusterStatus};
use crate::crd::conditions::{self, Health};
use crate::metrics::human_bytes;

/// How long brokers may take to become ready before the cluster reports `Degraded`
/// (like a Deployment's `progressDeadlineSeconds`).
pub const PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_secs(600);

/// Health from the StatefulSet the apply returned.
pub fn workload_health(
    desired: i32,
    sts: &StatefulSet,
    previous: Option<&SecurityLakeClusterStatus>,
    now: &Time,
) -> Health {
    let status = sts.status.clone().unwrap_or_default();
    let generation = sts.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let rolled =
        status.update_revision.is_none() || status.current_revision == status.update_revision;

    if observed && ready >= desired && updated >= desired && status.replicas <= desired && rolled {
        return Health::ready("BrokersReady", format!("{ready}/{desired} brokers ready"));
    }
    let message = if !observed {
        "the StatefulSet controller has not seen the latest spec yet".to_string()
    } else if status.replicas > desired {
        format!("scaling in: {} brokers, {desired} wanted", status.replicas)
    } else if updated < desired || !rolled {
        format!("rolling update: {updated}/{desired} brokers updated, {ready} ready")
    } else {
        format!("{ready}/{desired} brokers ready")
    };
    // Progressing for longer than the deadline (counted from when Progressing turned
    // True) means something is wrong: a crash loop, an image that cannot be pulled.
    let progressing_since = previous
        .and_then(|s| conditions::find(&s.conditions, conditions::PROGRESSING))
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.0);
    let degraded_since = previous
        .and_then(|s| conditions::find(&s.conditions, conditions::DEGRADED))
        .filter(|c| c.status == "True" && c.reason == "ProgressDeadlineExceeded")
        .is_some();
    let overdue =
        progressing_since.is_some_and(|since| now.0.duration_since(since) > PROGRESS_DEADLINE);
    if overdue || degraded_since {
        Health::degraded("ProgressDeadlineExceeded", message)
    } else {
        Health::progressing("BrokersStarting", message)
    }
}

/// Rates and lag for the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub produce_bytes_per_second: Option<f64>,
    pub fetch_bytes_per_second: Option<f64>,
    pub max_consumer_lag: Option<i64>,
}

/// The whole status.
#[allow(clippy::too_many_arguments)]
pub fn cluster_status(
    generation: Option<i64>,
    health: &Health,
    sts: Option<&StatefulSet>,
    selector: String,
    bootstrap: String,
    storage_url: String,
    figures: &Figures,
    scale_event: Option<ScaleEvent>,
    previous: Option<&SecurityLakeClusterStatus>,
    now: &Time,
) -> SecurityLakeClusterStatus {
    let sts_status = sts.and_then(|s| s.status.clone()).unwrap_or_default();
    let throughput = match (
        figures.produce_bytes_per_second,
        figures.fetch_bytes_per_second,
    ) {
        (Some(p), Some(f)) => Some(format!("{} in, {} out", human_bytes(p), human_bytes(f))),
        (Some(p), None) => Some(format!("{} in", human_bytes(p))),
        _ => None,
    };
    SecurityLakeClusterStatus {
        observed_generation: generation,
        conditions: health.conditions(
            generation,
            previous
                .map(|p| p.conditions.as_slice())
                .unwrap_or_default(),
            now,
        ),
        replicas: sts_status.replicas,
        ready_replicas: sts_status.ready_replicas.unwrap_or(0),
        selector: Some(selector),
        bootstrap: Some(bootstrap),
        storage_url: Some(storage_url),
        produce_bytes_per_second: figures.produce_bytes_per_second.map(|v| v.round() as i64),
        fetch_bytes_per_second: figures.fetch_bytes_per_second.map(|v| v.round() as i64),
        throughput,
        max_consumer_lag: figures.max_consumer_lag,
        last_scale_event: scale_event.or_else(|| previous.and_then(|p| p.last_scale_event.clone())),
        aws: None,
        autoscaling: None,
    }
}

/// A scale event when the applied replica count differs from the one the workload had.
pub fn scale_event(before: Option<&StatefulSet>, desired: i32, now: &Time) -> Option<ScaleEvent> {
    let from = before?.spec.as_ref()?.replicas.unwrap_or(1);
    (from != desired).then(|| ScaleEvent {
        time: now.clone(),
        from_replicas: from,
        to_replicas: desired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::jiff::Timestamp;

    fn sts(ready: i32, updated: i32) -> StatefulSet {
        let mut s = StatefulSet::default();
        s.metadata.generation = Some(2);
        s.status = Some(StatefulSetStatus {
            replicas: 3,
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            observed_generation: Some(2),
            ..StatefulSetStatus::default()
        });
        s
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn all_brokers_ready_is_ready() {
        assert!(workload_health(3, &sts(3, 3), None, &at(0)).is_ready());
    }

    #[test]
    fn starting_brokers_progress_until_the_deadline_then_degrade() {
        let starting = workload_health(3, &sts(1, 3), None, &at(0));
        assert_eq!(starting.reason(), "BrokersStarting");
        let status = SecurityLakeClusterStatus {
            conditions: starting.conditions(Some(1), &[], &at(0)),
            ..Default::default()
        };
        let still = workload_health(3, &sts(1, 3), Some(&status), &at(599));
        assert_eq!(still.reason(), "BrokersStarting");
        let late = workload_health(3, &sts(1, 3), Some(&status), &at(601));
        assert_eq!(late.reason(), "ProgressDeadlineExceeded");
        // Once degraded it stays so until the brokers are ready.
        let degraded = SecurityLakeClusterStatus {
            conditions: late.conditions(Some(1), &status.conditions, &at(601)),
            ..Default::default()
        };
        assert_eq!(
            workload_health(3, &sts(2, 3), Some(&degraded), &at(700)).reason(),
            "ProgressDeadlineExceeded"
        );
        assert!(workload_health(3, &sts(3, 3), Some(&degraded), &at(800)).is_ready());
    }

    #[test]
    fn scale_events_only_when_the_count_changes() {
        let before = StatefulSet {
            spec: Some(k8s_openapi::api::apps::v1::StatefulSetSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(scale_event(Some(&before), 3, &at(0)).is_none());
        assert!(
            scale_event(None, 3, &at(0)).is_none(),
            "creation is not a scale event"
        );
        let e = scale_event(Some(&before), 5, &at(0)).unwrap();
        assert_eq!((e.from_replicas, e.to_replicas), (3, 5));
    }
}
