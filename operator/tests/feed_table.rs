//! The Feed reconciler with `spec.table`: the `sluice.table.*` topic configs on a real
//! `sluice-broker`, which then writes the topic to an Iceberg table (its default sqlite
//! catalog in its `file://` storage); the brokers' `/v1/lake` reports, as the cluster
//! reconciler's observer scrapes them, in the Feed's `status.table`; commit failures as
//! the `LakeCommitFailing` condition with a Warning Event naming the owner; a bad table
//! spec refused before anything is applied; removing the section turning the table off;
//! replays: approved ones handed to the broker as `sluice.table.replays` (which runs
//! them), refused ones only in the `ReplayRefused` condition, progress in
//! `status.replays` with its Events.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use serde_json::{json, Value};
use sluice_operator::controller::cluster::Observation;
use sluice_operator::controller::cluster::{BrokerObserver, ClusterObserver, ObserveTarget};
use sluice_operator::controller::feed::reconcile;
use sluice_operator::crd::Feed;
use sluice_operator::lake::{BrokerReplay, TableError, TableFigures};
use sluice_schema::replay::{parse_replays, ReplayPhase, ReplaySpec, ReplayStatus};

use common::broker::Broker;
use common::feed::{
    answer_apply, answer_apply_of, cluster_with_replay_policy, condition, expect_status, feed, NS,
};
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
    let mut admin = common::kafka::admin(bootstrap).await;
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
    let tables = scrape_until(&broker, Duration::from_secs(60), |t| t.rows >= 25).await;

    let mut f = feed_with_table();
    f.status = serde_json::from_value(status).unwrap();
    let (ctx2, api) = scraped_context(tables);
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

/// Condition `type_` is True for `reason` while the Feed stays Ready: the topic serves,
/// and what the table or the replays lack is that condition's business, not the health's.
fn assert_true_while_ready(status: &Value, type_: &str, reason: &str) {
    assert_eq!(
        condition(status, type_),
        ("True".into(), reason.into()),
        "{status}"
    );
    assert_eq!(
        condition(status, "Ready"),
        ("True".into(), "TopicReady".into()),
        "the topic serves; {type_} is the condition's business"
    );
}

/// Scrapes `broker` as the cluster reconciler's observer does (its /v1/lake with its
/// /metrics) until the table of `cloudtrail` is `done`, for at most `within`; returns
/// the last scrape's tables.
async fn scrape_until(
    broker: &Broker,
    within: Duration,
    done: impl Fn(&TableFigures) -> bool,
) -> BTreeMap<String, TableFigures> {
    let observer = BrokerObserver {
        timeout: Duration::from_secs(10),
    };
    let target = ObserveTarget {
        brokers: vec![("lake-broker-0".into(), broker.metrics.clone())],
        bootstrap: None,
        security: Default::default(),
        autoscaling: false,
    };
    let deadline = Instant::now() + within;
    loop {
        let obs = observer.observe(&target).await;
        assert!(obs.problems.is_empty(), "{:?}", obs.problems);
        let tables = obs.tables.expect("the broker answers /v1/lake");
        if tables.get("cloudtrail").is_some_and(&done) {
            return tables;
        }
        assert!(
            Instant::now() < deadline,
            "not reached within {within:?}: {tables:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A reconcile context and its API server.
type TestContext = (
    std::sync::Arc<sluice_operator::controller::Context>,
    ApiServer,
);

/// A context whose cluster's last scrape of the brokers' `/v1/lake` found `tables`.
fn scraped_context(tables: BTreeMap<String, TableFigures>) -> TestContext {
    let (ctx, api) = context(Observation::default());
    ctx.record_tables(CLUSTER_KEY, tables);
    (ctx, api)
}

/// A context whose cluster's last scrape found `figures` for the table of `cloudtrail`.
fn cloudtrail_scraped(figures: TableFigures) -> TestContext {
    scraped_context(BTreeMap::from([("cloudtrail".to_string(), figures)]))
}

/// A context whose cluster's last scrape found the table of `cloudtrail` failing.
fn failing_context() -> TestContext {
    cloudtrail_scraped(TableFigures {
        brokers: 2,
        table: "sluice.cloudtrail".into(),
        rows: 10,
        errors: vec![TableError {
            pod: "lake-broker-1".into(),
            message: "catalog unreachable: connection refused".into(),
            since_ms: Some(1_700_000_000_000),
        }],
        ..TableFigures::default()
    })
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
    assert_true_while_ready(&status, "LakeCommitFailing", "CommitFailed");
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

/// The fixture's table with `replays`, at `generation`.
fn feed_with_replays(replays: Value, generation: i64) -> Feed {
    let mut f = feed_with_table();
    f.spec.replays = serde_json::from_value(replays).unwrap();
    f.metadata.generation = Some(generation);
    f
}

/// Alice's replay `id` of the hour holding every record `produce` writes (stamped
/// 2023-11-14T22:13:20Z).
fn replay(id: &str, approved_by: Option<&str>) -> Value {
    let mut r = json!({
        "id": id, "from": "2023-11-14T22:00:00Z", "to": "2023-11-14T23:00:00Z",
        "reason": "parser bug 42", "requestedBy": "alice",
    });
    if let Some(approver) = approved_by {
        r["approvedBy"] = json!(approver);
    }
    r
}

/// A topic config of `cloudtrail` as set (`None`: the broker's default).
async fn topic_config(bootstrap: &str, key: &str) -> Option<String> {
    let mut admin = common::kafka::admin(bootstrap).await;
    let configs = admin.describe_topic_configs("cloudtrail").await.unwrap();
    configs
        .get(key)
        .filter(|c| !c.is_default)
        .and_then(|c| c.value.clone())
}

/// The replays handed to the broker.
async fn handed_over(bootstrap: &str) -> Vec<ReplaySpec> {
    let value = topic_config(bootstrap, "sluice.table.replays").await;
    parse_replays(value.as_deref().unwrap_or_default()).unwrap()
}

/// `(id, phase)` of every entry of `status.replays`.
fn phases(status: &Value) -> Vec<(String, String)> {
    status["replays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().into(),
                r["phase"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn pair(id: &str, phase: &str) -> (String, String) {
    (id.into(), phase.into())
}

#[tokio::test]
async fn an_approved_replay_is_run_by_the_broker_and_an_unapproved_one_never_reaches_it() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();

    // Neither replay is approved: one has no approver, alice approved her own.
    let refused = json!([
        replay("fix-42", None),
        replay("self-approved", Some("alice"))
    ]);
    let (ctx, api) = context(Observation::default());
    let verifier = answer_apply(
        api,
        &bootstrap,
        &["TopicChanged", "ReplayRefused", "TopicReady"],
    );
    reconcile(feed_with_replays(refused, 1).into(), ctx)
        .await
        .unwrap();
    let (events, status) = verifier.await.unwrap();
    assert_eq!(events[1]["type"], "Warning");
    assert_eq!(
        events[1]["note"],
        "replay fix-42 has no approvedBy: it is not approved; replay self-approved is approved by its own requester alice: it needs a second person \
         (four eyes) (owner: cloud-security, #cloudsec-oncall)"
    );
    assert_true_while_ready(&status, "ReplayRefused", "NotApproved");
    assert_eq!(
        phases(&status),
        [pair("fix-42", "Refused"), pair("self-approved", "Refused")]
    );
    assert_eq!(
        handed_over(&bootstrap).await,
        [],
        "nothing reaches the broker"
    );
    assert_eq!(
        topic_config(&bootstrap, "sluice.feed.owner")
            .await
            .as_deref(),
        Some("cloud-security")
    );

    // Records of the window reach the table.
    produce(&bootstrap, "cloudtrail", 0, 20).await;
    let replay_scrape =
        |done: fn(&TableFigures) -> bool| scrape_until(&broker, Duration::from_secs(90), done);
    replay_scrape(|t| t.rows >= 20).await;

    // The feed's team approves fix-42: it is handed over (and only it), and run.
    let approved = json!([
        replay("fix-42", Some("cloud-security")),
        replay("self-approved", Some("alice")),
    ]);
    let mut f = feed_with_replays(approved.clone(), 2);
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = context(Observation::default());
    let verifier = answer_apply(api, &bootstrap, &["TopicChanged"]);
    reconcile(f.clone().into(), ctx).await.unwrap();
    let (_, status) = verifier.await.unwrap();
    assert_eq!(
        handed_over(&bootstrap).await,
        [ReplaySpec {
            id: "fix-42".into(),
            from_ms: 1_699_999_200_000,
            to_ms: 1_700_002_800_000,
            reason: "parser bug 42".into(),
            requested_by: "alice".into(),
            approved_by: "cloud-security".into(),
            dead_letters: false,
            bytes_per_second: sluice_schema::replay::DEFAULT_REPLAY_BYTES_PER_SECOND,
        }]
    );
    assert_eq!(
        phases(&status),
        [pair("fix-42", "Pending"), pair("self-approved", "Refused")]
    );
    assert_eq!(
        condition(&status, "ReplayRefused").0,
        "True",
        "self-approved is still refused"
    );
    let tables = replay_scrape(|t| {
        t.replays
            .get("fix-42")
            .is_some_and(|r| r.iter().all(|b| b.status.phase == ReplayPhase::Succeeded))
    })
    .await;

    // The broker's report reaches the status, with its Event.
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = scraped_context(tables);
    let verifier = answer_apply(api, &bootstrap, &["ReplaySucceeded"]);
    reconcile(f.clone().into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    let done = &status["replays"][0];
    assert_eq!(done["phase"], "Succeeded", "{status}");
    assert_eq!(
        (
            &done["recordsRead"],
            &done["rowsRemoved"],
            &done["rowsAdded"]
        ),
        (&json!(20), &json!(20), &json!(20)),
        "{done}"
    );
    assert_eq!(done["snapshotIds"].as_array().unwrap().len(), 1, "{done}");
    assert!(
        done["startedTime"].is_string() && done["finishedTime"].is_string(),
        "{done}"
    );
    let note = events[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("replay fix-42 succeeded: 20 rows removed, 20 added"),
        "{note}"
    );

    // Removed from the spec: no longer handed over (what it did to the table stays).
    f.spec.replays.remove(0);
    f.metadata.generation = Some(3);
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = context(Observation::default());
    let verifier = answer_apply(api, &bootstrap, &["TopicChanged"]);
    reconcile(f.into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    let note = events[0]["note"].as_str().unwrap();
    assert!(note.contains("Delete(\"sluice.table.replays\")"), "{note}");
    assert_eq!(handed_over(&bootstrap).await, []);
    assert_eq!(phases(&status), [pair("self-approved", "Refused")]);
}

/// A context whose cluster's last scrape found `reports` (pod, phase, error) of replay
/// `fix-42` of `cloudtrail`.
fn replay_context(reports: &[(&str, ReplayPhase, Option<&str>)]) -> TestContext {
    let reports = reports
        .iter()
        .map(|(pod, phase, error)| BrokerReplay {
            pod: pod.to_string(),
            status: ReplayStatus {
                id: "fix-42".into(),
                phase: *phase,
                started_ms: Some(1_800_000_000_000),
                error: error.map(str::to_string),
                ..ReplayStatus::default()
            },
        })
        .collect();
    cloudtrail_scraped(TableFigures {
        brokers: 2,
        table: "sluice.cloudtrail".into(),
        replays: BTreeMap::from([("fix-42".to_string(), reports)]),
        ..TableFigures::default()
    })
}

#[tokio::test]
async fn the_cluster_policy_names_the_approvers_and_the_brokers_reports_become_events() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let policy = json!({"approvers": ["secops-leads"], "allowFeedOwner": false});
    let cluster = || cluster_with_replay_policy(&bootstrap, policy.clone());

    // The feed's team may not approve under this policy.
    let by_owner = feed_with_replays(json!([replay("fix-42", Some("cloud-security"))]), 1);
    let (ctx, api) = context(Observation::default());
    let verifier = answer_apply_of(
        api,
        cluster(),
        &["TopicChanged", "ReplayRefused", "TopicReady"],
    );
    reconcile(by_owner.into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    assert_eq!(
        events[1]["note"],
        "replay fix-42 is approved by cloud-security, who may not approve it under the \
         cluster's replayPolicy (allowed: secops-leads) (owner: cloud-security, #cloudsec-oncall)"
    );
    assert_eq!(handed_over(&bootstrap).await, []);

    // An approver of the policy: handed over, nothing refused.
    let mut f = feed_with_replays(json!([replay("fix-42", Some("secops-leads"))]), 2);
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = context(Observation::default());
    let verifier = answer_apply_of(api, cluster(), &["TopicChanged"]);
    reconcile(f.clone().into(), ctx).await.unwrap();
    let (_, status) = verifier.await.unwrap();
    assert_eq!(
        handed_over(&bootstrap)
            .await
            .iter()
            .map(|r| (r.id.as_str(), r.approved_by.as_str()))
            .collect::<Vec<_>>(),
        [("fix-42", "secops-leads")]
    );
    assert_eq!(
        condition(&status, "ReplayRefused"),
        ("False".into(), "AllApproved".into())
    );
    assert_eq!(phases(&status), [pair("fix-42", "Pending")]);

    // One broker runs it: started, once.
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = replay_context(&[
        ("lake-broker-0", ReplayPhase::Running, None),
        ("lake-broker-1", ReplayPhase::Pending, None),
    ]);
    let verifier = answer_apply_of(api, cluster(), &["ReplayStarted"]);
    reconcile(f.clone().into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    assert_eq!(events[0]["type"], "Normal");
    assert!(
        events[0]["note"].as_str().unwrap().starts_with(
            "replay fix-42 started: window 2023-11-14T22:00:00Z to 2023-11-14T23:00:00Z"
        ),
        "{}",
        events[0]
    );
    assert_eq!(phases(&status), [pair("fix-42", "Running")]);
    assert_eq!(status["replays"][0]["startedTime"], "2027-01-15T08:00:00Z");

    // The other one fails it: a Warning naming the owner, the error in the status.
    f.status = serde_json::from_value(status).unwrap();
    let (ctx, api) = replay_context(&[
        ("lake-broker-0", ReplayPhase::Succeeded, None),
        ("lake-broker-1", ReplayPhase::Failed, Some("commit refused")),
    ]);
    let verifier = answer_apply_of(api, cluster(), &["ReplayFailed"]);
    reconcile(f.into(), ctx).await.unwrap();
    let (events, status) = verifier.await.unwrap();
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(
        events[0]["note"],
        "replay fix-42 failed: lake-broker-1: commit refused (owner: cloud-security, #cloudsec-oncall)"
    );
    assert_eq!(phases(&status), [pair("fix-42", "Failed")]);
    assert_eq!(
        status["replays"][0]["message"],
        "lake-broker-1: commit refused"
    );
}
