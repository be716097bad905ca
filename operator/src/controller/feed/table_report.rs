//! The Feed's table figures, from the brokers' lake writers the cluster reconciler
//! scraped (`GET /v1/lake`), and the Events when its commits start or stop failing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use tracing::warn;

use super::for_owner;
use super::table::{commit_condition, table_name, table_status};
use crate::controller::{object_key, Context};
use crate::crd::conditions::{self, LAKE_COMMIT_FAILING};
use crate::crd::feed::FeedStatus;
use crate::crd::{Feed, SecurityLakeCluster};

/// Sets `table` and the `LakeCommitFailing` condition in `status` (neither without an
/// enabled `spec.table`), and tells the owner when commits start failing. Before the
/// cluster's first scrape (e.g. just after an operator restart) the previous figures and
/// condition stay.
pub async fn report_table(
    feed: &Feed,
    cluster: &SecurityLakeCluster,
    ctx: &Context,
    status: &mut FeedStatus,
    now: &Time,
) {
    let previous = std::mem::take(&mut status.conditions);
    let (before, others): (Vec<_>, Vec<_>) = previous
        .iter()
        .cloned()
        .partition(|c| c.type_ == LAKE_COMMIT_FAILING);
    status.conditions = others;
    let Some(name) = table_name(feed) else {
        status.table = None;
        return;
    };
    let figures = ctx.tables(&object_key(cluster), &feed.topic_name());
    status.table = Some(table_status(
        name.clone(),
        figures.as_ref(),
        status.table.as_ref(),
    ));
    let Some(figures) = figures else {
        status.conditions.extend(before);
        return;
    };
    let update = conditions::Update {
        generation: feed.metadata.generation,
        previous: &before,
        now,
    };
    let condition = commit_condition(&name, &figures, &update);
    let was_failing = conditions::is_true(&before, LAKE_COMMIT_FAILING);
    let failing = condition.status == "True";
    if failing && !was_failing {
        let note = for_owner(feed, &condition.message);
        warn!(%note, "lake commits failing");
        ctx.event(feed, EventType::Warning, "LakeCommitFailing", note)
            .await;
    } else if was_failing && !failing {
        ctx.event(
            feed,
            EventType::Normal,
            "LakeCommitRecovered",
            format!("table {name} is committed again"),
        )
        .await;
    }
    status.conditions.push(condition);
}
