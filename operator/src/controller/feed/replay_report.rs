//! The Feed's replays in its status: the `ReplayRefused` condition, and `status.replays`
//! from the brokers' reports the cluster reconciler scraped (`GET /v1/lake`), with an
//! Event per change of phase (Warnings, naming the owner, when one is refused or fails).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use tracing::warn;

use super::for_owner;
use super::replay::{refused_condition, Judged};
use super::replay_progress::{replay_events, replay_statuses};
use crate::controller::{object_key, Context};
use crate::crd::conditions::{self, REPLAY_REFUSED};
use crate::crd::feed::FeedStatus;
use crate::crd::{Feed, SecurityLakeCluster};

/// Sets the `ReplayRefused` condition (none without replays) and `replays` in `status`
/// for the replays as `judged`, and publishes the Events of what changed.
pub async fn report_replays(
    feed: &Feed,
    cluster: &SecurityLakeCluster,
    ctx: &Context,
    judged: &[Judged],
    status: &mut FeedStatus,
    now: &Time,
) {
    let (before, others): (Vec<_>, Vec<_>) = std::mem::take(&mut status.conditions)
        .into_iter()
        .partition(|c| c.type_ == REPLAY_REFUSED);
    status.conditions = others;
    status.conditions.extend(refused_condition(
        judged,
        &conditions::Update {
            generation: feed.metadata.generation,
            previous: &before,
            now,
        },
    ));

    let figures = ctx.tables(&object_key(cluster), &feed.topic_name());
    let replays = replay_statuses(
        judged,
        figures.as_ref().map(|f| &f.replays),
        &status.replays,
    );
    for event in replay_events(judged, &status.replays, &replays) {
        let (type_, note) = if event.warning {
            warn!(reason = event.reason, note = %event.note, "replay not run");
            (EventType::Warning, for_owner(feed, &event.note))
        } else {
            (EventType::Normal, event.note)
        };
        ctx.event(feed, type_, event.reason, note).await;
    }
    status.replays = replays;
}
