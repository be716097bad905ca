//! The cluster observer against a real `sluice-broker`: what the autoscaler reads
//! (throughput, per-partition load, CPU, lag, leaders, the fleet) and what it does
//! (drain and undrain a broker, move a partition's leadership).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_operator::controller::cluster::{BrokerObserver, ClusterObserver, ObserveTarget};

use common::broker::Broker;
use common::kafka::{commit, produce};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn reads_what_the_autoscaler_needs_and_drains_through_the_fleet_endpoint() {
    let broker = Broker::start();
    let mut admin = common::kafka::admin(&broker.bootstrap).await;
    admin
        .create_topic("edr", 2, &BTreeMap::new())
        .await
        .unwrap();
    produce(&broker.bootstrap, "edr", 1, 30).await;
    commit(&broker.bootstrap, "detections", "edr", 1, 10).await;

    let observer = BrokerObserver { timeout: TIMEOUT };
    let target = ObserveTarget {
        brokers: vec![("b-0".into(), broker.metrics.clone())],
        bootstrap: Some(broker.bootstrap.clone()),
        security: Default::default(),
        autoscaling: true,
    };
    let obs = observer.observe(&target).await;
    assert!(obs.problems.is_empty(), "{:?}", obs.problems);
    assert_eq!(
        obs.tables,
        Some(BTreeMap::new()),
        "/v1/lake is read; no topic has a table"
    );
    let produced = obs.produce_bytes.as_ref().unwrap().values["b-0"];
    assert!(produced > 0.0, "produce bytes are scraped");
    assert!(obs.cpu_seconds.as_ref().unwrap().values["b-0"] > 0.0);
    let per_partition = &obs.partition_bytes.as_ref().unwrap().values;
    assert_eq!(
        per_partition.get("b-0/edr/1"),
        Some(&produced),
        "{per_partition:?}"
    );
    assert_eq!(obs.leaders.get(&("edr".to_string(), 0)), Some(&0));
    assert_eq!(
        obs.lag.get(&("detections".into(), "edr".into(), 1)),
        Some(&(20, 10)),
        "lag and committed offset per partition"
    );
    let fleet = obs.fleet.as_ref().expect("the fleet view");
    assert_eq!(fleet.nodes.len(), 1);
    assert_eq!(
        (
            fleet.nodes[0].id,
            fleet.nodes[0].alive,
            fleet.nodes[0].draining
        ),
        (0, true, false)
    );
    assert!(
        fleet.nodes[0].partitions_led >= 2,
        "edr's partitions (and the consumer offsets topic's)"
    );

    // Drain and undrain through the broker's fleet endpoint.
    observer
        .set_draining(&broker.metrics, 0, true)
        .await
        .unwrap();
    let obs = observer.observe(&target).await;
    assert!(obs.fleet.unwrap().nodes[0].draining);
    observer
        .set_draining(&broker.metrics, 0, false)
        .await
        .unwrap();
    let err = observer
        .set_draining(&broker.metrics, 7, true)
        .await
        .unwrap_err();
    assert!(err.contains("404") && err.contains("no broker 7"), "{err}");

    // A move to a broker that is not in the fleet is refused with the reason.
    let refused = observer
        .move_partitions(
            &broker.bootstrap,
            &Default::default(),
            &[("edr".into(), 0, 5)],
        )
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("edr-0"), "{refused:?}");
}
