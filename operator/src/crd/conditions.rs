//! Status conditions shared by both kinds.
//!
//! Every status write sets all five condition types, each with the generation it
//! describes:
//! - `Ready`: True once the object is fully reconciled and serving.
//! - `Progressing` and kstatus' `Reconciling`: True while the operator is still
//!   converging (pods starting, a topic being created).
//! - `Degraded`: True when the object is not healthy: running impaired, or stuck.
//! - kstatus' `Stalled`: True when the operator cannot make progress without a change
//!   from a person (invalid spec, a missing cluster).
//!
//! Flux (kstatus) reads `Reconciling`/`Stalled`/`Ready` with `observedGeneration`; people
//! read `Ready`, `Progressing`, `Degraded`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// One summary of an object's health, from which the conditions follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Reconciled and serving.
    Ready { reason: String, message: String },
    /// Converging; no action needed.
    Progressing { reason: String, message: String },
    /// Running but impaired; the operator keeps trying.
    Degraded { reason: String, message: String },
    /// Cannot progress until the spec (or a referenced object) changes.
    Stalled { reason: String, message: String },
}

impl Health {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Health::Ready {
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Health::Progressing {
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn degraded(reason: &str, message: impl Into<String>) -> Self {
        Health::Degraded {
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Health::Stalled {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Health::Ready { reason, .. }
            | Health::Progressing { reason, .. }
            | Health::Degraded { reason, .. }
            | Health::Stalled { reason, .. } => reason,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Health::Ready { message, .. }
            | Health::Progressing { message, .. }
            | Health::Degraded { message, .. }
            | Health::Stalled { message, .. } => message,
        }
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self, Health::Stalled { .. })
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Health::Ready { .. })
    }

    /// The five conditions for this health. A condition whose status does not change keeps
    /// its `lastTransitionTime` from `previous`, so writing the same health twice writes
    /// the same conditions.
    pub fn conditions(
        &self,
        generation: Option<i64>,
        previous: &[Condition],
        now: &Time,
    ) -> Vec<Condition> {
        let (reason, message) = (self.reason(), self.message());
        let ready = matches!(self, Health::Ready { .. });
        let progressing = matches!(self, Health::Progressing { .. });
        let degraded = matches!(self, Health::Degraded { .. } | Health::Stalled { .. });
        let stalled = matches!(self, Health::Stalled { .. });
        [
            (READY, ready),
            (PROGRESSING, progressing),
            (RECONCILING, progressing),
            (DEGRADED, degraded),
            (STALLED, stalled),
        ]
        .into_iter()
        .map(|(type_, on)| condition(type_, on, reason, message, generation, previous, now))
        .collect()
    }
}

/// The types [`Health::conditions`] sets; an object may have others besides (a Feed's
/// [`LAKE_COMMIT_FAILING`] and [`REPLAY_REFUSED`]).
pub const HEALTH_TYPES: [&str; 5] = [READY, PROGRESSING, RECONCILING, DEGRADED, STALLED];

/// True while a broker reports that it cannot commit the Feed's Iceberg table.
pub const LAKE_COMMIT_FAILING: &str = "LakeCommitFailing";

/// True while a replay of the Feed is not approved under the cluster's `replayPolicy`
/// (not handed to the brokers).
pub const REPLAY_REFUSED: &str = "ReplayRefused";

/// One condition. It keeps its `lastTransitionTime` from `previous` while its status
/// does not change.
pub fn condition(
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let status = if on { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// What the conditions written in one status update share: the generation they observe,
/// the conditions before the update (for `lastTransitionTime`) and its time.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    pub generation: Option<i64>,
    pub previous: &'a [Condition],
    pub now: &'a Time,
}

impl Update<'_> {
    /// [`condition`] as of this update.
    pub fn condition(&self, type_: &str, on: bool, reason: &str, message: &str) -> Condition {
        condition(
            type_,
            on,
            reason,
            message,
            self.generation,
            self.previous,
            self.now,
        )
    }
}

/// The condition of `type_` in `conditions`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when `conditions` hold `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn every_write_sets_all_five_types_with_the_generation() {
        let c =
            Health::progressing("Starting", "0/3 brokers ready").conditions(Some(4), &[], &t(10));
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, PROGRESSING, RECONCILING, DEGRADED, STALLED]);
        assert!(c.iter().all(|c| c.observed_generation == Some(4)));
        assert!(is_true(&c, PROGRESSING) && is_true(&c, RECONCILING));
        assert!(!is_true(&c, READY) && !is_true(&c, DEGRADED) && !is_true(&c, STALLED));
    }

    #[test]
    fn stalled_is_also_degraded_and_not_ready() {
        let c = Health::stalled("ClusterNotFound", "no cluster x").conditions(None, &[], &t(1));
        assert!(is_true(&c, STALLED) && is_true(&c, DEGRADED));
        assert!(!is_true(&c, READY) && !is_true(&c, RECONCILING));
        assert_eq!(find(&c, READY).unwrap().reason, "ClusterNotFound");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = Health::progressing("Starting", "").conditions(Some(1), &[], &t(10));
        let same = Health::progressing("Starting", "").conditions(Some(1), &first, &t(20));
        assert_eq!(
            first, same,
            "the same health twice gives identical conditions"
        );
        let ready = Health::ready("Running", "").conditions(Some(1), &same, &t(30));
        assert_eq!(find(&ready, READY).unwrap().last_transition_time, t(30));
        assert_eq!(find(&ready, DEGRADED).unwrap().last_transition_time, t(10));
    }
}
