//! The cluster reconciler against a scripted API server (tower-test): which calls it
//! makes, in which order, and what it does with conflicts, missing objects and errors.

mod common;

use std::collections::BTreeMap;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use sluice_operator::controller::cluster::{reconcile, Observation, FINALIZER};
use sluice_operator::crd::SecurityLakeCluster;
use sluice_operator::metrics::CounterSample;
use sluice_operator::Error;

use common::fixture;
use common::mock::{context, ApiServer};

const NS: &str = "security";
const BASE: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/securitylakeclusters/lake";

fn cluster() -> SecurityLakeCluster {
    let mut c: SecurityLakeCluster = fixture("clusters/s3.yaml");
    c.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    c
}

/// The cluster as the API server stores it.
fn stored() -> Value {
    serde_json::to_value(cluster()).unwrap()
}

fn observation() -> Observation {
    Observation {
        produce_bytes: Some(CounterSample {
            at_ms: 1,
            values: BTreeMap::from([("lake-broker-0".into(), 1000.0)]),
        }),
        fetch_bytes: None,
        max_consumer_lag: Some(42),
        problems: vec![],
    }
}

/// The StatefulSet as the API server would return it after the apply, with a status.
fn with_status(mut sts: Value, replicas: i64, ready: i64) -> Value {
    sts["metadata"]["generation"] = json!(1);
    sts["status"] = json!({
        "replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas,
        "observedGeneration": 1, "currentRevision": "r1", "updateRevision": "r1",
    });
    sts
}

/// Expects the applies of every object up to and including the StatefulSet; returns the
/// StatefulSet's applied body.
async fn expect_applies_until_statefulset(api: &mut ApiServer, ready: i64) -> Value {
    for path in [
        "/api/v1/namespaces/security/serviceaccounts/lake-broker",
        "/api/v1/namespaces/security/configmaps/lake-config",
        "/api/v1/namespaces/security/services/lake-brokers",
        "/api/v1/namespaces/security/services/lake-bootstrap",
    ] {
        let call = api.expect(Method::PATCH, path).await;
        assert!(
            call.is_apply(),
            "{path} is a forced server-side apply: {}",
            call.query
        );
        assert!(call.query.contains("force=true"));
        call.echo();
    }
    let call = api
        .expect(
            Method::PATCH,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await;
    let body = call.body.clone();
    call.ok(with_status(body.clone(), 3, ready));
    body
}

async fn expect_policy_applies(api: &mut ApiServer) {
    api.expect(
        Method::PATCH,
        "/apis/policy/v1/namespaces/security/poddisruptionbudgets/lake-broker",
    )
    .await
    .echo();
    api.expect(
        Method::PATCH,
        "/apis/networking.k8s.io/v1/namespaces/security/networkpolicies/lake-broker",
    )
    .await
    .echo();
}

#[tokio::test]
async fn a_new_cluster_gets_the_finalizer_before_anything_is_created() {
    let (ctx, mut api) = context(observation());
    let mut c = cluster();
    c.metadata.finalizers = None;
    let verifier = tokio::spawn(async move {
        let call = api.expect(Method::PATCH, BASE).await;
        assert_eq!(
            call.body,
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                   {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
        );
        let mut stored = serde_json::to_value(cluster()).unwrap();
        stored["metadata"]["finalizers"] = json!([FINALIZER]);
        call.ok(stored);
        api.expect_silence().await;
    });
    let action = reconcile(c.into(), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    verifier.await.unwrap();
}

#[tokio::test]
async fn a_ready_cluster_applies_everything_in_order_and_reports_status() {
    let (ctx, mut api) = context(observation());
    let verifier = tokio::spawn(async move {
        api.expect(
            Method::GET,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await
        .not_found();
        api.expect(Method::GET, "/apis/monitoring.coreos.com/v1")
            .await
            .page_not_found();
        let sts = expect_applies_until_statefulset(&mut api, 3).await;
        assert_eq!(sts["spec"]["replicas"], 3);
        expect_policy_applies(&mut api).await;
        let event = api.expect_event(NS).await;
        assert_eq!(event["reason"], "BrokersReady");
        let call = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        assert!(call.is_apply());
        let status = call.body["status"].clone();
        call.with_status_of(stored());
        api.expect_silence().await;
        status
    });
    let action = reconcile(cluster().into(), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));
    let status = verifier.await.unwrap();
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["readyReplicas"], 3);
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["maxConsumerLag"], 42);
    assert_eq!(
        status["bootstrap"],
        "lake-bootstrap.security.svc.cluster.local:9092"
    );
    assert_eq!(
        status["selector"],
        "app.kubernetes.io/instance=lake,app.kubernetes.io/name=sluice-broker"
    );
    let conditions: BTreeMap<String, String> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(conditions["Ready"], "True");
    assert_eq!(conditions["Reconciling"], "False");
    assert_eq!(conditions["Stalled"], "False");
    assert!(status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["observedGeneration"] == 2));
    // The first sample has no predecessor: no rate is invented.
    assert!(status.get("produceBytesPerSecond").is_none());
}

#[tokio::test]
async fn a_service_monitor_is_applied_when_its_crd_is_installed() {
    let (ctx, mut api) = context(observation());
    let verifier = tokio::spawn(async move {
        api.expect(
            Method::GET,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await
        .not_found();
        api.expect(Method::GET, "/apis/monitoring.coreos.com/v1").await.ok(json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
            "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true,
                           "kind": "ServiceMonitor", "verbs": ["get", "patch"]}]
        }));
        expect_applies_until_statefulset(&mut api, 1).await;
        expect_policy_applies(&mut api).await;
        let call = api
            .expect(
                Method::PATCH,
                "/apis/monitoring.coreos.com/v1/namespaces/security/servicemonitors/lake-broker",
            )
            .await;
        assert!(call.is_apply());
        assert_eq!(call.body["spec"]["endpoints"][0]["port"], "metrics");
        call.echo();
        let event = api.expect_event(NS).await;
        assert_eq!(event["reason"], "BrokersStarting");
        let status = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        assert_eq!(status.body["status"]["readyReplicas"], 1);
        status.with_status_of(stored());
    });
    let action = reconcile(cluster().into(), ctx).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(std::time::Duration::from_secs(10)),
        "not ready: check again soon"
    );
    verifier.await.unwrap();
}

#[tokio::test]
async fn scaling_records_a_scale_event() {
    let (ctx, mut api) = context(observation());
    let mut c = cluster();
    c.spec.replicas = 5;
    let verifier = tokio::spawn(async move {
        let call = api
            .expect(
                Method::GET,
                "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
            )
            .await;
        call.ok(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                       "metadata": {"name": "lake-broker", "namespace": NS},
                       "spec": {"replicas": 3, "selector": {}, "serviceName": "lake-brokers",
                                "template": {}}}));
        api.expect(Method::GET, "/apis/monitoring.coreos.com/v1")
            .await
            .page_not_found();
        expect_applies_until_statefulset(&mut api, 3).await;
        expect_policy_applies(&mut api).await;
        let scaled = api.expect_event(NS).await;
        assert_eq!(scaled["reason"], "Scaled");
        assert_eq!(scaled["note"], "brokers 3 → 5");
        api.expect_event(NS).await;
        let status = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        let event = status.body["status"]["lastScaleEvent"].clone();
        status.with_status_of(stored());
        event
    });
    reconcile(c.into(), ctx).await.unwrap();
    let event = verifier.await.unwrap();
    assert_eq!(
        (event["fromReplicas"].clone(), event["toReplicas"].clone()),
        (json!(3), json!(5))
    );
}

#[tokio::test]
async fn an_invalid_spec_stalls_without_touching_any_object() {
    let (ctx, mut api) = context(observation());
    let mut c = cluster();
    // The CRD's CEL refuses this; an API server without CEL would store it.
    c.spec.min_replicas = 8;
    let verifier = tokio::spawn(async move {
        let event = api.expect_event(NS).await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "InvalidSpec");
        let call = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        let status = call.body["status"].clone();
        call.with_status_of(stored());
        api.expect_silence().await;
        status
    });
    let action = reconcile(c.into(), ctx).await.unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "waits for a spec change, no crash loop"
    );
    let status = verifier.await.unwrap();
    let stalled = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap();
    assert_eq!(stalled["status"], "True");
    assert!(stalled["message"]
        .as_str()
        .unwrap()
        .contains("minReplicas 8 exceeds maxReplicas 6"));
}

#[tokio::test]
async fn a_conflict_on_apply_fails_the_reconcile_with_the_object_named() {
    let (ctx, mut api) = context(observation());
    let verifier = tokio::spawn(async move {
        api.expect(
            Method::GET,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await
        .not_found();
        api.expect(Method::GET, "/apis/monitoring.coreos.com/v1")
            .await
            .page_not_found();
        for path in [
            "/api/v1/namespaces/security/serviceaccounts/lake-broker",
            "/api/v1/namespaces/security/configmaps/lake-config",
            "/api/v1/namespaces/security/services/lake-brokers",
            "/api/v1/namespaces/security/services/lake-bootstrap",
        ] {
            api.expect(Method::PATCH, path).await.echo();
        }
        api.expect(
            Method::PATCH,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await
        .fail(409, "Conflict");
        api.expect_silence().await;
    });
    let err = reconcile(cluster().into(), ctx.clone()).await.unwrap_err();
    verifier.await.unwrap();
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(matches!(err, Error::Finalizer { .. }));
    assert!(text.contains("StatefulSet lake-broker"), "{text}");
    assert_eq!(err.metric_label(), "finalizer");
    // The error policy backs off: 5 s, then doubling.
    assert_eq!(
        ctx.backoff("security/lake"),
        std::time::Duration::from_secs(5)
    );
    assert_eq!(
        ctx.backoff("security/lake"),
        std::time::Duration::from_secs(10)
    );
}

#[tokio::test]
async fn a_server_error_while_reading_is_an_error_not_a_panic() {
    let (ctx, mut api) = context(observation());
    let verifier = tokio::spawn(async move {
        api.expect(
            Method::GET,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await
        .fail(500, "InternalError");
        api.expect_silence().await;
    });
    assert!(reconcile(cluster().into(), ctx).await.is_err());
    verifier.await.unwrap();
}

fn deleting(mut c: SecurityLakeCluster) -> SecurityLakeCluster {
    c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    c.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    c
}

#[tokio::test]
async fn deleting_with_retain_keeps_the_bucket_claim() {
    let (ctx, mut api) = context(observation());
    let mut c: SecurityLakeCluster = fixture("clusters/bucket.yaml");
    c.spec.storage.deletion_policy = sluice_operator::crd::DeletionPolicy::Retain;
    let c = deleting(c);
    let verifier = tokio::spawn(async move {
        let event = api.expect_event("lab").await;
        assert_eq!(event["reason"], "BucketRetained");
        let call = api
            .expect(
                Method::PATCH,
                "/apis/sluice.dev/v1alpha1/namespaces/lab/securitylakeclusters/dev",
            )
            .await;
        assert_eq!(
            call.body[1],
            json!({"op": "remove", "path": "/metadata/finalizers/0"})
        );
        call.ok(
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "SecurityLakeCluster",
                       "metadata": {"name": "dev", "namespace": "lab"},
                       "spec": {"storage": {"bucket": {"size": "1Gi"}}}}),
        );
        api.expect_silence().await;
    });
    reconcile(c.into(), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn deleting_with_delete_removes_the_bucket_claim_even_if_already_gone() {
    let (ctx, mut api) = context(observation());
    let c = deleting(fixture("clusters/bucket.yaml"));
    let verifier = tokio::spawn(async move {
        api.expect(
            Method::DELETE,
            "/api/v1/namespaces/lab/persistentvolumeclaims/dev-bucket",
        )
        .await
        .not_found();
        let event = api.expect_event("lab").await;
        assert_eq!(event["reason"], "BucketDeleted");
        api.expect(
            Method::PATCH,
            "/apis/sluice.dev/v1alpha1/namespaces/lab/securitylakeclusters/dev",
        )
        .await
        .ok(
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "SecurityLakeCluster",
                       "metadata": {"name": "dev", "namespace": "lab"},
                       "spec": {"storage": {"bucket": {"size": "1Gi"}}}}),
        );
        api.expect_silence().await;
    });
    reconcile(c.into(), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn a_failed_claim_deletion_keeps_the_finalizer() {
    let (ctx, mut api) = context(observation());
    let c = deleting(fixture("clusters/bucket.yaml"));
    let verifier = tokio::spawn(async move {
        api.expect(
            Method::DELETE,
            "/api/v1/namespaces/lab/persistentvolumeclaims/dev-bucket",
        )
        .await
        .fail(403, "Forbidden");
        // No finalizer removal follows.
        api.expect_silence().await;
    });
    assert!(reconcile(c.into(), ctx).await.is_err());
    verifier.await.unwrap();
}
