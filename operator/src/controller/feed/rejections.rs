//! The Feed's rejection figures, from the schema rejections the cluster reconciler
//! scraped off the brokers, and the Warning Event when too many records fail validation.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use tracing::warn;

use super::alert::assess;
use super::for_owner;
use crate::controller::{object_key, Context};
use crate::crd::feed::FeedStatus;
use crate::crd::{Feed, SecurityLakeCluster};

/// Sets `rejectedRecords`, `rejectedByReason` and the alert window in `status`, and warns
/// the owner when the rejections exceed the Feed's threshold. Before the cluster's first
/// scrape (e.g. just after an operator restart) the previous figures stay.
pub async fn report_rejections(
    feed: &Feed,
    cluster: &SecurityLakeCluster,
    ctx: &Context,
    status: &mut FeedStatus,
    now: &Time,
) {
    let topic = feed.topic_name();
    let Some(by_reason) = ctx.rejections(&object_key(cluster), &topic) else {
        return;
    };
    let by_reason: BTreeMap<String, i64> = by_reason
        .into_iter()
        .map(|(reason, v)| (reason, v.round() as i64))
        .collect();
    let total: i64 = by_reason.values().sum();
    status.rejection_window = match &feed.spec.schema {
        Some(schema) => {
            let assessment = assess(
                status.rejection_window.as_ref(),
                total,
                now.0,
                &schema.rejection_alert,
            );
            if let Some(rejected) = assessment.alert {
                let note = alert_note(feed, rejected, &by_reason);
                warn!(%note, "records rejected");
                ctx.event(feed, EventType::Warning, "RecordsRejected", note)
                    .await;
            }
            Some(assessment.window)
        }
        None => None,
    };
    status.rejected_records = Some(total);
    status.rejected_by_reason = by_reason;
}

/// What the Warning Event says: how many, of which topic, why (all-time by reason), and
/// whom it concerns.
fn alert_note(feed: &Feed, rejected: i64, by_reason: &BTreeMap<String, i64>) -> String {
    let alert = feed
        .spec
        .schema
        .as_ref()
        .map(|s| s.rejection_alert.clone())
        .unwrap_or_default();
    let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}={n}")).collect();
    let message = format!(
        "{rejected} records of topic {} failed schema validation within {} s (threshold {}); all rejections by reason: {}",
        feed.topic_name(),
        alert.window_seconds,
        alert.threshold,
        reasons.join(", "),
    );
    for_owner(feed, &message)
}
