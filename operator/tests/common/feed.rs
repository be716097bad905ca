//! The Feed reconciler's scripted API server conversation: the fixture Feed, its cluster
//! as stored, and the calls every apply makes (dereference, status).

use http::Method;
use serde_json::{json, Value};
use sluice_operator::crd::Feed;

use super::fixture;
use super::mock::ApiServer;

pub const NS: &str = "security";
pub const FEED: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/feeds/cloudtrail";
pub const FEEDS: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/feeds";
pub const CLUSTER: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/securitylakeclusters/lake";

pub fn feed() -> Feed {
    fixture("feed.yaml")
}

pub fn stored_feed() -> Value {
    serde_json::to_value(feed()).unwrap()
}

/// The cluster as stored: Ready, bootstrapping at `bootstrap`.
pub fn cluster(bootstrap: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "SecurityLakeCluster",
        "metadata": {"name": "lake", "namespace": NS},
        "spec": {"storage": {"url": "s3://lake/x"}},
        "status": {"bootstrap": bootstrap, "conditions": [{
            "type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "BrokersReady",
            "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    })
}

pub fn feed_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "FeedList", "metadata": {}, "items": items})
}

pub fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

/// The Ready cluster as stored with `spec.replayPolicy`.
pub fn cluster_with_replay_policy(bootstrap: &str, policy: Value) -> Value {
    let mut c = cluster(bootstrap, true);
    c["spec"]["replayPolicy"] = policy;
    c
}

/// Cluster lookup and Feed list, answered.
pub async fn expect_dereference(api: &mut ApiServer, bootstrap: &str, others: Vec<Value>) {
    expect_dereference_of(api, cluster(bootstrap, true), others).await;
}

/// Cluster lookup (answered with `cluster`) and Feed list.
async fn expect_dereference_of(api: &mut ApiServer, cluster: Value, others: Vec<Value>) {
    api.expect(Method::GET, CLUSTER).await.ok(cluster);
    let mut items = vec![stored_feed()];
    items.extend(others);
    api.expect(Method::GET, FEEDS).await.ok(feed_list(items));
}

pub async fn expect_status(api: &mut ApiServer) -> Value {
    let call = api.expect(Method::PATCH, &format!("{FEED}/status")).await;
    assert!(call.is_apply());
    let status = call.body["status"].clone();
    call.with_status_of(stored_feed());
    status
}

/// Answers one whole apply of the fixture's Feed in a task: the dereference, Events whose
/// reasons must be `reasons` (in order), the status apply, then silence. The task returns
/// the Events and the status.
pub fn answer_apply(
    api: ApiServer,
    bootstrap: &str,
    reasons: &'static [&'static str],
) -> tokio::task::JoinHandle<(Vec<Value>, Value)> {
    answer_apply_of(api, cluster(bootstrap, true), reasons)
}

/// [`answer_apply`] with the cluster as stored given.
pub fn answer_apply_of(
    mut api: ApiServer,
    cluster: Value,
    reasons: &'static [&'static str],
) -> tokio::task::JoinHandle<(Vec<Value>, Value)> {
    tokio::spawn(async move {
        expect_dereference_of(&mut api, cluster, vec![]).await;
        let mut events = Vec::new();
        for reason in reasons {
            let event = api.expect_event(NS).await;
            assert_eq!(event["reason"], *reason, "{event}");
            events.push(event);
        }
        let status = expect_status(&mut api).await;
        api.expect_silence().await;
        (events, status)
    })
}
