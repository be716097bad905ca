//! The Feed reconciler with `spec.schema`: the inline schema registered through the
//! brokers' registry before validation is turned on, the registry's refusals and
//! silence as conditions, and the schema rejections scraped by the cluster reconciler in
//! the Feed's status and Warning Events. Topics on a real `sluice-broker`; the registry
//! answers through the test observer.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::json;
use sluice_operator::controller::feed::reconcile;
use sluice_operator::crd::Feed;
use sluice_operator::http;
use sluice_operator::registry::{register, Registration, RegistryError};

use common::broker::Broker;
use common::feed::{condition, expect_dereference, expect_status, feed, NS};
use common::mock::context_with_registry;

/// The fixture with schema validation of plain JSON and an inline schema.
fn feed_with_schema() -> Feed {
    let mut f = feed();
    f.spec.schema = Some(
        serde_json::from_value(json!({
            "format": "json",
            "schema": "{\"type\": \"object\", \"required\": [\"class_uid\"]}",
            "compatibility": "BACKWARD",
            "rejectionAlert": {"threshold": 10, "windowSeconds": 600},
        }))
        .unwrap(),
    );
    f
}

const BROKER_0: &str = "lake-broker-0.lake-brokers.security.svc.cluster.local:9644";

#[tokio::test]
async fn an_incompatible_schema_stalls_the_feed_and_leaves_validation_as_it_was() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let (ctx, mut api, calls) = context_with_registry(Err(RegistryError::Rejected {
        what: "the schema is incompatible with the subject's versions",
        status: 409,
        code: 409,
        message: "required field class_uid added".into(),
    }));
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        assert_eq!(api.expect_event(NS).await["reason"], "TopicChanged");
        let warning = api.expect_event(NS).await;
        assert_eq!(warning["type"], "Warning");
        assert_eq!(warning["reason"], "SchemaRejected");
        let note = warning["note"].as_str().unwrap();
        assert!(
            note.contains("subject cloudtrail-value")
                && note.contains("required field class_uid added")
                && note.contains("owner: cloud-security"),
            "{note}"
        );
        let status = expect_status(&mut api).await;
        api.expect_silence().await;
        status
    });
    let action = reconcile(feed_with_schema().into(), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Ready"),
        ("False".into(), "SchemaRejected".into())
    );
    assert_eq!(condition(&status, "Stalled").0, "True");
    assert_eq!(
        *calls.lock().unwrap(),
        [format!(
            "register cloudtrail-value JSON BACKWARD at {BROKER_0}"
        )],
        "a refusal is final: no other broker is asked"
    );
    // The topic is served, without the validation configs the schema was meant for.
    let mut admin = common::kafka::admin(&bootstrap).await;
    let configs = admin.describe_topic_configs("cloudtrail").await.unwrap();
    assert!(
        configs
            .get("sluice.schema.subject")
            .is_none_or(|c| c.is_default),
        "{configs:?}"
    );
}

#[tokio::test]
async fn rejections_scraped_by_the_cluster_reconciler_reach_the_status_and_warn_the_owner() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let (ctx, mut api, calls) = context_with_registry(Err(RegistryError::Unreachable {
        url: "http://broker/subjects".into(),
        reason: "connection refused".into(),
    }));
    // What the last scrape of cluster `lake` found, and the window the previous
    // reconcile opened (10 rejections then).
    ctx.record_rejections(
        "security/lake",
        BTreeMap::from([(
            "cloudtrail".to_string(),
            BTreeMap::from([("schema".to_string(), 25.0), ("not_json".to_string(), 3.0)]),
        )]),
    );
    let mut f = feed_with_schema();
    f.status = Some(
        serde_json::from_value(json!({"rejectionWindow": {
            "startedAt": k8s_openapi::jiff::Timestamp::now().to_string(),
            "startCount": 10,
        }}))
        .unwrap(),
    );
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        assert_eq!(api.expect_event(NS).await["reason"], "TopicChanged");
        let alert = api.expect_event(NS).await;
        assert_eq!(
            (&alert["type"], &alert["reason"]),
            (&json!("Warning"), &json!("RecordsRejected"))
        );
        let note = alert["note"].as_str().unwrap();
        assert!(
            note.starts_with("18 records of topic cloudtrail failed schema validation within 600 s (threshold 10)")
                && note.contains("not_json=3, schema=25")
                && note.contains("owner: cloud-security, #cloudsec-oncall"),
            "{note}"
        );
        assert_eq!(api.expect_event(NS).await["reason"], "RegistryUnavailable");
        expect_status(&mut api).await
    });
    let action = reconcile(f.into(), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Degraded"),
        ("True".into(), "RegistryUnavailable".into())
    );
    assert_eq!(status["rejectedRecords"], 28);
    assert_eq!(
        status["rejectedByReason"],
        json!({"not_json": 3, "schema": 25})
    );
    assert_eq!(status["rejectionWindow"]["startCount"], 28);
    assert_eq!(status["rejectionWindow"]["alerted"], true);
    assert_eq!(
        calls.lock().unwrap().len(),
        3,
        "every broker of the cluster is tried: {:?}",
        calls.lock().unwrap()
    );
}

#[tokio::test]
async fn a_registered_schema_turns_validation_on_at_the_broker() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    // The registry the reconciler reaches is the test observer; register the same schema
    // at the real broker so that the validation it turns on has its subject.
    let f = feed_with_schema();
    let schema = f.spec.schema.as_ref().unwrap().schema.clone().unwrap();
    let id = register(
        &http::client(),
        &broker.metrics,
        &Registration {
            subject: "cloudtrail-value".into(),
            schema_type: "JSON",
            schema,
            compatibility: Some("BACKWARD"),
        },
        Duration::from_secs(10),
    )
    .await
    .expect("the broker's registry takes the schema");
    let (ctx, mut api, calls) = context_with_registry(Ok(id));
    let b = bootstrap.clone();
    let verifier = tokio::spawn(async move {
        expect_dereference(&mut api, &b, vec![]).await;
        assert_eq!(api.expect_event(NS).await["reason"], "TopicChanged");
        assert_eq!(api.expect_event(NS).await["reason"], "TopicReady");
        expect_status(&mut api).await
    });
    reconcile(f.into(), ctx).await.unwrap();
    let status = verifier.await.unwrap();
    assert_eq!(condition(&status, "Ready").0, "True", "{status}");
    assert_eq!(status["schemaId"], id);
    assert_eq!(calls.lock().unwrap().len(), 1);

    let mut admin = common::kafka::admin(&bootstrap).await;
    let configs = admin.describe_topic_configs("cloudtrail").await.unwrap();
    let value = |name: &str| {
        configs
            .get(name)
            .map(|c| c.value.clone().unwrap_or_default())
    };
    assert_eq!(
        value("sluice.schema.subject").as_deref(),
        Some("cloudtrail-value")
    );
    assert_eq!(value("sluice.schema.format").as_deref(), Some("json"));
    assert_eq!(value("sluice.schema.mode").as_deref(), Some("reject"));
    assert_eq!(value("sluice.schema.level").as_deref(), Some("full"));
}
