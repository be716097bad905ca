//! The Feed reconciler against a scripted API server, with topics on a real
//! `sluice-broker` (the cluster's status points at it).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::json;
use sluice_operator::controller::cluster::Observation;
use sluice_operator::controller::feed::reconcile;
use sluice_operator::crd::{DeletionPolicy, Feed};

use common::broker::Broker;
use common::feed::{
    cluster, condition, expect_dereference, expect_status, feed, feed_list, stored_feed, CLUSTER,
    FEED, FEEDS, NS,
};
use common::mock::{context, ApiServer};

#[tokio::test]
async fn creates_the_topic_and_dead_letter_topic_then_grows_and_never_shrinks() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();

    // First reconcile: both topics are created.
    let (ctx, mut api) = context(Observation::default());
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        let first = api.expect_event(NS).await;
        assert_eq!(first["reason"], "TopicChanged");
        assert_eq!(
            first["note"],
            "created topic cloudtrail with 3 partitions; created topic cloudtrail.dlq with 1 partitions"
        );
        assert_eq!(api.expect_event(NS).await["reason"], "TopicReady");
        let status = expect_status(&mut api).await;
        api.expect_silence().await;
        status
    });
    let action = reconcile(feed().into(), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Ready"),
        ("True".into(), "TopicReady".into())
    );
    assert_eq!(status["partitions"], 3);
    assert_eq!(status["topic"], "cloudtrail");
    assert_eq!(status["deadLetterTopic"], "cloudtrail.dlq");
    assert_eq!(status["deadLetterRecords"], 0);
    assert!(status["topicId"].is_string());

    let mut admin = common::kafka::admin(&bootstrap).await;
    let configs = admin.describe_topic_configs("cloudtrail").await.unwrap();
    assert_eq!(
        configs["retention.ms"].value.as_deref(),
        Some("2592000000"),
        "30d"
    );
    assert_eq!(
        admin
            .describe_topic("cloudtrail.dlq")
            .await
            .unwrap()
            .unwrap()
            .partitions(),
        1
    );

    // The same spec again: nothing changes (no TopicChanged event, no admin change).
    let (ctx2, mut api) = context(Observation::default());
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        // The stored status already says TopicReady only if written; this Feed's has none,
        // so the reason change is announced once.
        assert_eq!(api.expect_event(NS).await["reason"], "TopicReady");
        expect_status(&mut api).await;
        api.expect_silence().await;
    });
    reconcile(feed().into(), ctx2).await.unwrap();
    verifier.await.unwrap();

    // Partitions 3 → 6, retention removed (back to the broker default).
    let mut grown = feed();
    grown.spec.partitions = 6;
    grown.spec.retention = None;
    let (ctx3, mut api) = context(Observation::default());
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        let changes = api.expect_event(NS).await;
        let note = changes["note"].as_str().unwrap();
        assert!(
            note.starts_with("topic cloudtrail: partitions 3 → 6; "),
            "{note}"
        );
        assert!(note.contains("Delete(\"retention.ms\")"), "{note}");
        api.expect_event(NS).await;
        expect_status(&mut api).await
    });
    reconcile(grown.into(), ctx3).await.unwrap();
    assert_eq!(verifier.await.unwrap()["partitions"], 6);
    assert!(admin.describe_topic_configs("cloudtrail").await.unwrap()["retention.ms"].is_default);

    // A spec asking for fewer partitions (CEL refuses it; here it got through): the
    // topic keeps its partitions and the Feed says so.
    let mut shrunk = feed();
    shrunk.spec.partitions = 2;
    let (ctx4, mut api) = context(Observation::default());
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        api.expect_event(NS).await; // retention set again
        let warning = api.expect_event(NS).await;
        assert_eq!(warning["type"], "Warning");
        assert_eq!(warning["reason"], "PartitionsDiverged");
        assert!(warning["note"]
            .as_str()
            .unwrap()
            .contains("owner: cloud-security, #cloudsec-oncall"));
        expect_status(&mut api).await
    });
    reconcile(shrunk.into(), ctx4).await.unwrap();
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Degraded"),
        ("True".into(), "PartitionsDiverged".into())
    );
    assert_eq!(
        admin
            .describe_topic("cloudtrail")
            .await
            .unwrap()
            .unwrap()
            .partitions(),
        6
    );
}

#[tokio::test]
async fn reports_consumer_lag_and_dead_letter_records() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let mut admin = common::kafka::admin(&bootstrap).await;
    admin
        .create_topic("cloudtrail", 3, &BTreeMap::new())
        .await
        .unwrap();
    admin
        .create_topic("cloudtrail.dlq", 1, &BTreeMap::new())
        .await
        .unwrap();
    common::kafka::produce(&bootstrap, "cloudtrail", 0, 4).await;
    common::kafka::produce(&bootstrap, "cloudtrail.dlq", 0, 2).await;
    common::kafka::commit(&bootstrap, "siem", "cloudtrail", 0, 1).await;

    let (ctx, mut api) = context(Observation::default());
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        api.expect_event(NS).await; // retention set on the adopted topic
        api.expect_event(NS).await; // TopicReady
        expect_status(&mut api).await
    });
    reconcile(feed().into(), ctx).await.unwrap();
    let status = verifier.await.unwrap();
    assert_eq!(status["consumerLag"], json!([{"group": "siem", "lag": 3}]));
    assert_eq!(status["maxConsumerLag"], 3);
    assert_eq!(status["deadLetterRecords"], 2);
}

#[tokio::test]
async fn an_unknown_cluster_stalls_with_a_warning_naming_the_owner() {
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, CLUSTER).await.not_found();
        let event = api.expect_event(NS).await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "ClusterNotFound");
        assert!(event["note"].as_str().unwrap().contains("cloud-security"));
        let status = expect_status(&mut api).await;
        api.expect_silence().await;
        status
    });
    let action = reconcile(feed().into(), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Stalled"),
        ("True".into(), "ClusterNotFound".into())
    );
    assert_eq!(condition(&status, "Ready").0, "False");
}

#[tokio::test]
async fn a_cluster_that_is_not_ready_is_waited_for() {
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, CLUSTER)
            .await
            .ok(cluster("lake:9092", false));
        api.expect(Method::GET, FEEDS)
            .await
            .ok(feed_list(vec![stored_feed()]));
        api.expect_event(NS).await;
        expect_status(&mut api).await
    });
    let action = reconcile(feed().into(), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Reconciling"),
        ("True".into(), "WaitingForCluster".into())
    );
}

#[tokio::test]
async fn an_unreachable_cluster_degrades_the_feed_and_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &format!("127.0.0.1:{port}"), vec![]).await;
        api.expect_event(NS).await;
        expect_status(&mut api).await
    });
    let action = reconcile(feed().into(), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Degraded"),
        ("True".into(), "ClusterUnreachable".into())
    );
}

#[tokio::test]
async fn a_second_feed_for_the_same_topic_is_refused() {
    let mut older = stored_feed();
    older["metadata"]["name"] = json!("cloudtrail-v1");
    older["metadata"]["uid"] = json!("7c1e0000-0000-4000-8000-0000000000ff");
    older["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    older["spec"]["topicName"] = json!("cloudtrail");
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, "127.0.0.1:1", vec![older]).await;
        let event = api.expect_event(NS).await;
        assert_eq!(event["reason"], "TopicClaimed");
        expect_status(&mut api).await
    });
    reconcile(feed().into(), ctx).await.unwrap();
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Stalled"),
        ("True".into(), "TopicClaimed".into())
    );
}

#[tokio::test]
async fn a_bad_retention_that_got_past_the_schema_stalls_without_kafka_calls() {
    let mut bad = feed();
    bad.spec.retention = Some(sluice_operator::crd::feed::Retention {
        time: Some("7 days".into()),
        bytes_per_partition: None,
    });
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        api.expect_event(NS).await;
        let status = expect_status(&mut api).await;
        api.expect_silence().await;
        status
    });
    assert_eq!(
        reconcile(bad.into(), ctx).await.unwrap(),
        Action::await_change()
    );
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Stalled"),
        ("True".into(), "InvalidSpec".into())
    );
}

fn deleting(policy: DeletionPolicy) -> Feed {
    let mut f = feed();
    f.spec.deletion_policy = policy;
    f.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    f
}

async fn expect_finalizer_removed(api: &mut ApiServer) {
    let call = api.expect(Method::PATCH, FEED).await;
    assert_eq!(
        call.body[1],
        json!({"op": "remove", "path": "/metadata/finalizers/0"})
    );
    call.ok(stored_feed());
}

#[tokio::test]
async fn deleting_with_retain_keeps_the_topic() {
    let broker = Broker::start();
    let mut admin = common::kafka::admin(&broker.bootstrap).await;
    admin
        .create_topic("cloudtrail", 3, &BTreeMap::new())
        .await
        .unwrap();
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        assert_eq!(api.expect_event(NS).await["reason"], "TopicRetained");
        expect_finalizer_removed(&mut api).await;
        api.expect_silence().await;
    });
    reconcile(deleting(DeletionPolicy::Retain).into(), ctx)
        .await
        .unwrap();
    verifier.await.unwrap();
    assert!(admin.describe_topic("cloudtrail").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_with_delete_removes_both_topics() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let mut admin = common::kafka::admin(&bootstrap).await;
    admin
        .create_topic("cloudtrail", 3, &BTreeMap::new())
        .await
        .unwrap();
    admin
        .create_topic("cloudtrail.dlq", 1, &BTreeMap::new())
        .await
        .unwrap();
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, FEEDS)
            .await
            .ok(feed_list(vec![stored_feed()]));
        api.expect(Method::GET, CLUSTER)
            .await
            .ok(cluster(&bootstrap, true));
        assert_eq!(api.expect_event(NS).await["reason"], "TopicDeleted");
        expect_finalizer_removed(&mut api).await;
    });
    reconcile(deleting(DeletionPolicy::Delete).into(), ctx)
        .await
        .unwrap();
    verifier.await.unwrap();
    assert!(admin.describe_topic("cloudtrail").await.unwrap().is_none());
    assert!(admin
        .describe_topic("cloudtrail.dlq")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn deleting_when_the_cluster_is_gone_releases_the_feed_without_deleting() {
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, FEEDS)
            .await
            .ok(feed_list(vec![stored_feed()]));
        api.expect(Method::GET, CLUSTER).await.not_found();
        let event = api.expect_event(NS).await;
        assert_eq!(event["reason"], "TopicNotDeleted");
        expect_finalizer_removed(&mut api).await;
    });
    reconcile(deleting(DeletionPolicy::Delete).into(), ctx)
        .await
        .unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn a_failed_topic_deletion_keeps_the_finalizer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, FEEDS)
            .await
            .ok(feed_list(vec![stored_feed()]));
        api.expect(Method::GET, CLUSTER)
            .await
            .ok(cluster(&format!("127.0.0.1:{port}"), true));
        api.expect_silence().await;
    });
    let err = reconcile(deleting(DeletionPolicy::Delete).into(), ctx)
        .await
        .unwrap_err();
    verifier.await.unwrap();
    assert_eq!(err.metric_label(), "finalizer");
}
