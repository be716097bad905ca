//! The admin client against a real `sluice-broker`: topics, partitions, configs,
//! offsets, consumer groups and lag.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::ResponseError;
use sluice_operator::kafka::{topic_lag, AdminClient, ClientSecurity, ConfigOp};

use common::broker::Broker;
use common::kafka::{commit, produce};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn creates_describes_grows_and_deletes_a_topic() {
    let broker = Broker::start();
    let mut admin = common::kafka::admin(&broker.bootstrap).await;
    assert_eq!(admin.brokers(), vec![0], "one broker, node 0");

    assert_eq!(admin.describe_topic("audit").await.unwrap(), None);
    let configs = BTreeMap::from([("retention.ms".to_string(), "86400000".to_string())]);
    let id = admin.create_topic("audit", 3, &configs).await.unwrap();
    let described = admin
        .describe_topic("audit")
        .await
        .unwrap()
        .expect("topic exists");
    assert_eq!(described.partitions(), 3);
    assert_eq!(
        described.id, id,
        "Metadata and CreateTopics report the same topic id"
    );
    assert!(id.is_some());

    let err = admin
        .create_topic("audit", 3, &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ResponseError::TopicAlreadyExists));
    assert!(!err.is_transient());

    admin.create_partitions("audit", 5).await.unwrap();
    assert_eq!(
        admin
            .describe_topic("audit")
            .await
            .unwrap()
            .unwrap()
            .partitions(),
        5
    );
    let shrink = admin.create_partitions("audit", 2).await.unwrap_err();
    assert_eq!(
        shrink.code(),
        Some(ResponseError::InvalidPartitions),
        "{shrink}"
    );
    assert_eq!(
        admin
            .describe_topic("audit")
            .await
            .unwrap()
            .unwrap()
            .partitions(),
        5
    );

    admin.delete_topics(&["audit".to_string()]).await.unwrap();
    assert_eq!(admin.describe_topic("audit").await.unwrap(), None);
    // Deleting what is already gone is not an error.
    admin.delete_topics(&["audit".to_string()]).await.unwrap();
}

#[tokio::test]
async fn sets_and_resets_topic_configs() {
    let broker = Broker::start();
    let mut admin = common::kafka::admin(&broker.bootstrap).await;
    admin
        .create_topic("dns", 1, &BTreeMap::new())
        .await
        .unwrap();

    let before = admin.describe_topic_configs("dns").await.unwrap();
    assert!(before["retention.ms"].is_default);

    admin
        .alter_topic_configs(
            "dns",
            &[
                ConfigOp::Set("retention.ms".into(), "3600000".into()),
                ConfigOp::Set("retention.bytes".into(), "1048576".into()),
            ],
        )
        .await
        .unwrap();
    let set = admin.describe_topic_configs("dns").await.unwrap();
    assert_eq!(set["retention.ms"].value.as_deref(), Some("3600000"));
    assert!(!set["retention.ms"].is_default);
    assert_eq!(set["retention.bytes"].value.as_deref(), Some("1048576"));

    admin
        .alter_topic_configs("dns", &[ConfigOp::Delete("retention.bytes".into())])
        .await
        .unwrap();
    let reset = admin.describe_topic_configs("dns").await.unwrap();
    assert!(reset["retention.bytes"].is_default);
    assert_eq!(reset["retention.bytes"].value.as_deref(), Some("-1"));

    let bad = admin
        .alter_topic_configs(
            "dns",
            &[ConfigOp::Set("retention.ms".into(), "soon".into())],
        )
        .await
        .unwrap_err();
    assert!(
        bad.code().is_some(),
        "a config the broker refuses is a Kafka error: {bad}"
    );
}

#[tokio::test]
async fn reads_offsets_groups_and_lag() {
    let broker = Broker::start();
    let mut admin = common::kafka::admin(&broker.bootstrap).await;
    admin
        .create_topic("edr", 2, &BTreeMap::new())
        .await
        .unwrap();
    produce(&broker.bootstrap, "edr", 0, 7).await;
    produce(&broker.bootstrap, "edr", 1, 3).await;
    commit(&broker.bootstrap, "detections", "edr", 0, 5).await;
    commit(&broker.bootstrap, "detections", "edr", 1, 3).await;

    let topic = admin.describe_topic("edr").await.unwrap().unwrap();
    let ends = admin.end_offsets(&topic).await.unwrap();
    assert_eq!(ends, BTreeMap::from([(0, 7), (1, 3)]));
    let starts = admin.start_offsets(&topic).await.unwrap();
    assert_eq!(starts, BTreeMap::from([(0, 0), (1, 0)]));

    assert!(admin
        .list_groups()
        .await
        .unwrap()
        .contains(&"detections".to_string()));
    let offsets = admin.committed_offsets("detections").await.unwrap();
    assert_eq!(offsets.offsets[&("edr".to_string(), 0)], 5);
    assert_eq!(topic_lag(&offsets, "edr", &ends), Some(2));

    let max = sluice_operator::controller::cluster::max_consumer_lag(
        &broker.bootstrap,
        &Default::default(),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(max, Some(2));
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_transient_error_not_a_hang() {
    // A port nothing listens on: the connect fails fast or times out, both bounded.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = AdminClient::connect(
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(2),
        &ClientSecurity::default(),
    )
    .await
    .err()
    .expect("nothing listens there");
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
