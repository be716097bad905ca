//! The Feed reconciler with `spec.table`: the `sluice.table.*` topic configs on a real
//! `sluice-broker`, which then writes the topic to an Iceberg table (its default sqlite
//! catalog in its `file://` storage); the brokers' `/v1/lake` reports, as the cluster
//! reconciler's observer scrapes them, in the Feed's `status.table`; commit failures as
//! the `LakeCommitFailing` condition with a Warning Event naming the owner; a bad table
//! spec refused before anything is applied; removing the section turning the table off.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use serde_json::json;
use sluice_operator::controller::cluster::Observation;
use sluice_operator::controller::cluster::{BrokerObserver, ClusterObserver, ObserveTarget};
use sluice_operator::controller::feed::reconcile;
use sluice_operator::crd::Feed;
use sluice_operator::kafka::AdminClient;
use sluice_operator::lake::{TableError, TableFigures};

use common::broker::Broker;
use common::feed::{answer_apply, condition, expect_status, feed, NS};
use common::kafka::produce;
use common::mock::{context, ApiServer};

const CLUSTER_KEY: &str = "security/lake";

/// The fixture with a table committed every second.
fn feed_with_table() -> Feed {
    let mut f = feed();
    f.spec.table = Some(serde_json::from_value(json!({"commitInterval": "1s"})).unwrap());
    f
}

async fn topic_configs(bootstrap: &str) -> BTreeMap<String, Option<String>> {
    let mut admin = AdminClient::connect(bootstrap, Duration::from_secs(10))
        .await
        .unwrap();
    admin
        .describe_topic_configs("cloudtrail")
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.starts_with("sluice.table."))
        .map(|(k, c)| (k, if c.is_default { None } else { c.value }))
        .collect()
}

#[tokio::test]
async fn the_brokers_write_the_table_and_its_progress_reaches_the_status() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();

    // First reconcile: the topic is created with the table configs; nothing scraped yet.
    let (ctx, api) = context(Observation::default());
    let verifier = answer_apply(api, &bootstrap, &["TopicChanged", "TopicReady"]);
    reconcile(feed_with_table().into(), ctx).await.unwrap();
    let (_, status) = verifier.await.unwrap();
    assert_eq!(status["table"], json!({"name": "sluice.cloudtrail"}));
    assert!(
        !status["conditions"]
            .to_string()
            .contains("LakeCommitFailing"),
        "no condition before the first scrape: {status}"
    );
    let configs = topic_configs(&bootstrap).await;
    let get = |k: &str| configs.get(k).cloned().flatten();
    assert_eq!(get("sluice.table.enabled").as_deref(), Some("true"));
    assert_eq!(get("sluice.table.name").as_deref(), Some("cloudtrail"));
    assert_eq!(get("sluice.table.namespace").as_deref(), Some("sluice"));
    assert_eq!(
        get("sluice.table.commit.interval.ms").as_deref(),
        Some("1000")
    );
    assert_eq!(get("sluice.table.generation").as_deref(), Some("1"));

    // Records go in; the broker commits them; the cluster reconciler's observer reads
    // its /v1/lake with its /metrics.
    produce(&bootstrap, "cloudtrail", 0, 20).await;
    produce(&bootstrap, "cloudtrail", 2, 5).await;
    let observer = BrokerObserver {
        timeout: Duration::from_secs(10),
    };
    let target = ObserveTarget {
        brokers: vec![("lake-broker-0".into(), broker.metrics.clone())],
        bootstrap: None,
        autoscaling: false,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let tables = loop {
        let obs = observer.observe(&target).await;
        assert!(obs.problems.is_empty(), "{:?}", obs.problems);
        let tables = obs.tables.expect("the broker answers /v1/lake");
        if tables.get("cloudtrail").is_some_and(|t| t.rows >= 25) {
            break tables;
        }
        assert!(
            Instant::now() < deadline,
            "25 rows not committed within 60 s: {tables:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut f = feed_with_table();
    f.status = serde_json::from_value(status).unwrap();
    let (ctx2, api) = context(Observation::default());
    ctx2.record_tables(CLUSTER_KEY, tables);
    let verifier = answer_apply(api, &bootstrap, &[]);
    reconcile(f.into(), ctx2).await.unwrap();
    let (_, status) = verifier.await.unwrap();
    let table = &status["table"];
    assert_eq!(table["name"], "sluice.cloudtrail");
    assert_eq!(table["rows"], 25, "{status}");
    assert_eq!(table["lag"], 0);
    assert!(table["lastSnapshotId"].is_i64(), "{table}");
    assert!(table["lastCommitTime"].is_string(), "{table}");
    assert_eq!(
        condition(&status, "LakeCommitFailing"),
        ("False".into(), "NoErrors".into())
    );
}

/// A context whose cluster's last scrape found the table of `cloudtrail` failing.
fn failing_context() -> (
    std::sync::Arc<sluice_operator::controller::Context>,
    ApiServer,
) {
    let (ctx, api) = context(Observation::default());
    let failing = TableFigures {
        brokers: 2,
        table: "sluice.cloudtrail".into(),
        rows: 10,
        errors: vec![TableError {
            pod: "lake-broker-1".into(),
            message: "catalog unreachable: connection refused".into(),
            since_ms: Some(1_700_000_000_000),
        }],
        ..TableFigures::default()
    };
    ctx.record_tables(
        CLUSTER_KEY,
        BTreeMap::from([("cloudtrail".to_string(), failing)]),
    );
    (ctx, api)
}

#[tokio::test]
async fn failing_commits_warn_the_owner_and_removing_the_table_turns_it_off() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let (ctx, api) = failing_context();
    let verifier = answer_apply(
        api,
        &bootstrap,
        &["TopicChanged", "LakeCommitFailing", "TopicReady"],
    );
    reconcile(feed_with_table().into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    assert_eq!(events[1]["type"], "Warning");
    assert_eq!(
        events[1]["note"],
        "table sluice.cloudtrail cannot be committed since 2023-11-14T22:13:20Z: \
         lake-broker-1: catalog unreachable: connection refused \
         (owner: cloud-security, #cloudsec-oncall)"
    );
    assert_eq!(
        condition(&status, "LakeCommitFailing"),
        ("True".into(), "CommitFailed".into())
    );
    assert_eq!(
        condition(&status, "Ready"),
        ("True".into(), "TopicReady".into()),
        "the topic serves; the table is the condition's business"
    );
    assert_eq!(status["table"]["rows"], 10);

    // Still failing at the next reconcile: no second Warning.
    let mut f = feed_with_table();
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = failing_context();
    let verifier = answer_apply(api, &bootstrap, &[]);
    reconcile(f.clone().into(), ctx).await.unwrap();
    let (_, again) = verifier.await.unwrap();
    assert_eq!(condition(&again, "LakeCommitFailing").0, "True", "{again}");

    // The section removed: the table configs go back to the broker's defaults (no table;
    // the table itself is never dropped), and the table's status and condition go.
    f.spec.table = None;
    f.metadata.generation = Some(2);
    let (ctx, api) = failing_context();
    let verifier = answer_apply(api, &bootstrap, &["TopicChanged"]);
    reconcile(f.into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    let note = events[0]["note"].as_str().unwrap();
    assert!(note.contains("Delete(\"sluice.table.enabled\")"), "{note}");
    assert_eq!(status.get("table"), None, "{status}");
    assert!(!status["conditions"]
        .to_string()
        .contains("LakeCommitFailing"));
    let configs = topic_configs(&bootstrap).await;
    assert!(
        configs.values().all(Option::is_none),
        "every table config is the broker's default again: {configs:?}"
    );
}

#[tokio::test]
async fn a_table_the_brokers_would_refuse_stalls_the_feed_before_anything_is_applied() {
    // CEL and the schema refuse these; a Feed stored before the rules, or an API server
    // without them, still gets a clear condition and no topic change.
    let mut f = feed();
    f.spec.table = Some(
        serde_json::from_value(json!({
            "name": "cloud-trail", "commitInterval": "500ms", "mode": "schema",
        }))
        .unwrap(),
    );
    let (ctx, mut api) = context(Observation::default());
    let verifier = tokio::spawn(async move {
        assert_eq!(api.expect_event(NS).await["reason"], "InvalidSpec");
        let status = expect_status(&mut api).await;
        api.expect_silence().await;
        status
    });
    let action = reconcile(f.into(), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    let status = verifier.await.unwrap();
    assert_eq!(
        condition(&status, "Stalled"),
        ("True".into(), "InvalidSpec".into())
    );
    let message = status["conditions"][0]["message"].as_str().unwrap();
    for part in [
        "table.mode schema needs spec.schema",
        "table.name: sluice.table.name \"cloud-trail\" must be 1-255 of letters, digits and _",
        "table.commitInterval: sluice.table.commit.interval.ms \"500\" is not a number of milliseconds >= 1000",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}
