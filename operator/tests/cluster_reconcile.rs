//! The cluster reconciler against a scripted API server (tower-test): which calls it
//! makes, in which order, and what it does with conflicts, missing objects and errors.
//!
//! Long because: one concern, the cluster reconciler's conversation with the API server;
//! each test is one scripted exchange and they share the fixtures above them.

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
use common::mock::{context, context_observing, ApiServer};

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
        max_consumer_lag: Some(42),
        tables: Some(BTreeMap::from([(
            "dns".to_string(),
            sluice_operator::lake::TableFigures {
                brokers: 1,
                table: "sluice.dns".into(),
                rows: 7,
                ..Default::default()
            },
        )])),
        ..Observation::default()
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

/// The broker StatefulSet as it runs: `replicas` of which `ready` are ready.
fn running_statefulset(replicas: i64, ready: i64) -> Value {
    with_status(
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "lake-broker", "namespace": NS},
               "spec": {"replicas": replicas, "selector": {}, "serviceName": "lake-brokers",
                        "template": {}}}),
        replicas,
        ready,
    )
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
        // The brokers run (their figures are read before the apply).
        api.expect(
            Method::GET,
            "/apis/apps/v1/namespaces/security/statefulsets/lake-broker",
        )
        .await
        .ok(running_statefulset(3, 3));
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
    let action = reconcile(cluster().into(), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));
    let status = verifier.await.unwrap();
    // The brokers' table writers are kept for the cluster's Feeds.
    assert_eq!(ctx.tables("security/lake", "dns").unwrap().rows, 7);
    assert_eq!(ctx.tables("security/lake", "edr").unwrap().brokers, 0);
    assert_eq!(ctx.tables("security/other", "dns"), None);
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

// -- autoscaling ---------------------------------------------------------------------

/// What one reconcile did, answered generically: the StatefulSet it applied, the
/// reasons of its Events and the status it wrote.
struct Round {
    replicas: i64,
    events: Vec<String>,
    status: Value,
}

/// Serves one reconcile whose StatefulSet runs `replicas` (`ready` of them ready) and
/// whose stored status is `stored_status`.
async fn serve_round(api: &mut ApiServer, replicas: i64, ready: i64) -> Round {
    let mut events = Vec::new();
    let mut applied = None;
    loop {
        let call = api.next().await;
        let path = call.path.clone();
        if call.method == Method::GET && path.ends_with("/statefulsets/lake-broker") {
            call.ok(running_statefulset(replicas, ready));
        } else if path == "/apis/monitoring.coreos.com/v1" {
            call.page_not_found();
        } else if path.contains("/events") {
            // A new Event (POST) or a repeat of one (PATCH of its series).
            if let Some(reason) = call.body["reason"].as_str() {
                events.push(reason.to_string());
            }
            call.echo();
        } else if path.ends_with("/statefulsets/lake-broker") {
            let body = call.body.clone();
            applied = body["spec"]["replicas"].as_i64();
            call.ok(with_status(body, replicas, ready));
        } else if path == format!("{BASE}/status") {
            let status = call.body["status"].clone();
            call.with_status_of(stored());
            return Round {
                replicas: applied.expect("the StatefulSet was applied"),
                events,
                status,
            };
        } else {
            assert!(call.is_apply(), "unexpected call {} {path}", call.method);
            call.echo();
        }
    }
}

fn autoscaled(extra: Value) -> SecurityLakeCluster {
    let mut c = cluster();
    let mut spec = json!({"targetBytesPerSecondPerBroker": 10_485_760, "lagThreshold": 0,
                          "intervalSeconds": 1, "scaleDownStabilizationSeconds": 0});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    c.spec.autoscaling = Some(serde_json::from_value(spec).unwrap());
    c.spec.min_replicas = 1;
    c.spec.max_replicas = 6;
    c
}

/// An observation at `at_ms`: `produced` bytes so far on broker 0, per-partition counters
/// of topic `dns` (partition → (leader, bytes)), and the fleet.
fn observed(at_ms: u64, produced: f64, parts: &[(i32, i32, f64)], fleet: Value) -> Observation {
    let mut o = Observation {
        produce_bytes: Some(CounterSample {
            at_ms,
            values: BTreeMap::from([("lake-broker-0".into(), produced)]),
        }),
        partition_bytes: Some(CounterSample {
            at_ms,
            values: parts
                .iter()
                .map(|(p, leader, v)| (format!("lake-broker-{leader}/dns/{p}"), *v))
                .collect(),
        }),
        fleet: Some(serde_json::from_value(fleet).unwrap()),
        ..Observation::default()
    };
    for (p, leader, _) in parts {
        o.leaders.insert(("dns".into(), *p), *leader);
    }
    o
}

fn nodes(spec: &[(i32, bool, usize)]) -> Value {
    json!({"partitions_moving": 0, "nodes": spec.iter().map(|(id, draining, led)| json!(
        {"id": id, "alive": true, "draining": draining, "partitions_led": led})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn the_autoscaler_scales_out_on_throughput_then_balances_onto_the_new_brokers() {
    let parts = |at: f64, leaders: [i32; 4]| -> Vec<(i32, i32, f64)> {
        (0..4).map(|p| (p, leaders[p as usize], at)).collect()
    };
    let observations = vec![
        observed(0, 0.0, &parts(0.0, [0; 4]), nodes(&[(0, false, 4)])),
        // 30 MB/s on one broker against 10 MiB/s each: 3 brokers.
        observed(10_000, 300e6, &parts(75e6, [0; 4]), nodes(&[(0, false, 4)])),
        observed(
            20_000,
            600e6,
            &parts(150e6, [0; 4]),
            nodes(&[(0, false, 4), (1, false, 0), (2, false, 0)]),
        ),
    ];
    let (ctx, mut api, calls) = context_observing(observations);
    let c = autoscaled(json!({}));

    let server = tokio::spawn(async move {
        let first = serve_round(&mut api, 1, 1).await;
        let second = serve_round(&mut api, 1, 1).await;
        let third = serve_round(&mut api, 3, 3).await;
        (first, second, third)
    });
    reconcile(c.clone().into(), ctx.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    reconcile(c.clone().into(), ctx.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    reconcile(c.into(), ctx).await.unwrap();
    let (first, second, third) = server.await.unwrap();

    assert_eq!(
        first.replicas, 1,
        "one sample is no rate: nothing decided yet"
    );
    assert_eq!(second.replicas, 3);
    assert!(
        second.events.contains(&"ScalingOut".to_string()),
        "{:?}",
        second.events
    );
    let st = &second.status["autoscaling"];
    assert_eq!(
        (st["desiredReplicas"].clone(), st["signal"].clone()),
        (json!(3), json!("Throughput"))
    );
    assert_eq!(st["phase"], "ScalingOut");
    // Third round: three ready brokers, all load on broker 0: leaders move (metadata only).
    assert_eq!(third.replicas, 3);
    assert!(
        third.events.contains(&"Balancing".to_string()),
        "{:?}",
        third.events
    );
    assert_eq!(third.status["autoscaling"]["phase"], "Balancing");
    let moves = calls.lock().unwrap().clone();
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(moves.iter().all(|m| m.starts_with("move dns-")));
    let targets: std::collections::BTreeSet<_> = moves
        .iter()
        .map(|m| m.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        targets,
        ["1", "2"].map(String::from).into(),
        "one partition to each new broker"
    );
}

#[tokio::test]
async fn a_scale_in_drains_the_leaving_brokers_before_it_shrinks() {
    let idle = |at_ms, fleet| observed(at_ms, 1e6, &[(0, 0, 0.0)], fleet);
    let observations = vec![
        idle(0, nodes(&[(0, false, 2), (1, false, 2), (2, false, 2)])),
        idle(
            10_000,
            nodes(&[(0, false, 2), (1, false, 2), (2, false, 2)]),
        ),
        idle(20_000, nodes(&[(0, false, 4), (1, true, 1), (2, true, 1)])),
        idle(30_000, nodes(&[(0, false, 6), (1, true, 0), (2, true, 0)])),
    ];
    let (ctx, mut api, calls) = context_observing(observations);
    let c = autoscaled(json!({}));
    let server = tokio::spawn(async move {
        let mut rounds = Vec::new();
        for _ in 0..4 {
            rounds.push(serve_round(&mut api, 3, 3).await);
        }
        rounds
    });
    for i in 0..4 {
        let mut c = c.clone();
        if i >= 3 {
            // The status the previous round wrote (the operator's drains).
            c.status = Some(
                serde_json::from_value(json!({
                "autoscaling": {"desiredReplicas": 1, "recommendedReplicas": 1,
                                "signal": "Minimum", "phase": "Draining",
                                "drainingBrokers": [1, 2]}}))
                .unwrap(),
            );
        }
        reconcile(c.into(), ctx.clone()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let rounds = server.await.unwrap();
    assert_eq!(rounds[1].replicas, 3, "draining first");
    assert_eq!(rounds[1].status["autoscaling"]["phase"], "Draining");
    assert_eq!(
        rounds[1].status["autoscaling"]["drainingBrokers"],
        json!([1, 2])
    );
    assert!(rounds[1].events.contains(&"DrainingBrokers".to_string()));
    assert_eq!(*calls.lock().unwrap(), vec!["drain 1", "drain 2"]);
    assert_eq!(
        rounds[2].replicas, 3,
        "brokers 1 and 2 still lead partitions"
    );
    assert!(rounds[2].status["autoscaling"]["limitedBy"]
        .as_str()
        .unwrap()
        .contains("broker 1 (1 partitions)"));
    assert_eq!(rounds[3].replicas, 1, "shrinks once they lead nothing");
}
