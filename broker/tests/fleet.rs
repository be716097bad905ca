//! A fleet of real brokers on one bucket: leaders spread, metadata-only moves
//! (AlterPartitionReassignments), drain, failover after kill -9, and a paused broker
//! ("split brain": alive, cut off, then back) that is fenced and never acknowledges
//! again. Clients are librdkafka (rdkafka); admin calls go over the raw protocol.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fleet::Fleet;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);
/// Failover: session timeout (2 s) plus detection and take-over.
const FAILOVER: Duration = Duration::from_secs(20);

/// Where an acknowledged record landed: (partition, offset) → value.
type Acked = BTreeMap<(i32, i64), String>;

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        // A paused broker holds requests unanswered: a client waiting the default 60 s
        // on one (a metadata request sent to it, say) would outlast the produce timeout.
        .set("socket.timeout.ms", "10000");
    c
}

fn producer(bootstrap: &str) -> FutureProducer {
    config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "10000")
        .create()
        .expect("producer")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().unwrap();
    let res = admin
        .create_topics(
            [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .unwrap();
    res[0].as_ref().expect("topic created");
}

/// Produces `n` records spread over `partitions` and records where each landed.
async fn produce(
    p: &FutureProducer,
    topic: &str,
    partitions: i32,
    tag: &str,
    n: usize,
    acked: &mut Acked,
) {
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let value = format!("{tag}-{i}");
            let partition = (i as i32) % partitions;
            let p = p.clone();
            let topic = topic.to_string();
            async move {
                let delivery = p
                    .send(
                        FutureRecord::<(), _>::to(&topic)
                            .partition(partition)
                            .payload(&value),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap_or_else(|(e, _)| panic!("produce {value}: {e}"));
                (delivery.partition, delivery.offset, value)
            }
        })
        .collect();
    for (part, offset, value) in futures::future::join_all(sends).await {
        assert!(
            acked.insert((part, offset), value.clone()).is_none(),
            "offset {part}/{offset} acknowledged twice (second: {value})"
        );
    }
}

/// Reads every partition from the start to its high watermark.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Acked {
    common::fleet::read_log(bootstrap, topic, partitions, WAIT)
}

/// Every acknowledged record is readable exactly once, at its acknowledged offset.
fn verify(bootstrap: &str, topic: &str, partitions: i32, acked: &Acked) {
    let log = read_all(bootstrap, topic, partitions);
    for (at, value) in acked {
        assert_eq!(log.get(at), Some(value), "acknowledged record at {at:?}");
    }
    let mut seen = HashSet::new();
    for v in log.values() {
        assert!(seen.insert(v), "{v} is in the log twice");
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaders_and_group_coordinators_spread_over_the_fleet() {
    let mut fleet = Fleet::start(3, &[]);
    let bootstrap = fleet.bootstrap();
    create_topic(&bootstrap, "spread", 12).await;
    let spread = fleet.spread("spread");
    assert_eq!(spread, BTreeMap::from([(1, 4), (2, 4), (3, 4)]));
    // Every broker answers Metadata with all brokers and the same leaders.
    let leaders = fleet.leaders("spread");
    for b in &fleet.brokers {
        let m: kafka_protocol::messages::MetadataResponse = b.connect().request(
            kafka_protocol::messages::ApiKey::Metadata,
            12,
            &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
        );
        assert_eq!(m.brokers.len(), 3);
        let t = m
            .topics
            .iter()
            .find(|t| t.name.as_ref().unwrap().0.as_str() == "spread")
            .unwrap();
        for p in &t.partitions {
            assert_eq!(p.leader_id.0, leaders[&p.partition_index].node);
        }
    }
    // Groups: the offsets topic appears with the first group and spreads too.
    let p = producer(&bootstrap);
    let mut acked = Acked::new();
    produce(&p, "spread", 12, "a", 240, &mut acked).await;
    // Each broker reports the bytes of the partitions it leads, for the balancer.
    let led = |node: i32, leaders: &BTreeMap<i32, common::fleet::Leader>| {
        leaders
            .iter()
            .filter(|(_, l)| l.node == node)
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
    };
    for node in 1..=3 {
        let metrics = fleet.node(node).metrics();
        for part in led(node, &leaders) {
            let series = format!(
                "sluice_partition_produce_bytes_total{{topic=\"spread\",partition=\"{part}\"}}"
            );
            let bytes = common::metric_value(&metrics, &series).unwrap_or(0.0);
            assert!(bytes > 0.0, "{series} on node {node}");
        }
    }
    let c: BaseConsumer = config(&bootstrap)
        .set("group.id", "spread-group")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("spread", 0, Offset::Offset(7))
        .unwrap();
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit through the coordinator");
    let offsets = fleet.spread("__consumer_offsets");
    assert_eq!(offsets, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    verify(&bootstrap, "spread", 12, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_fails_partitions_over_and_loses_nothing() {
    let mut fleet = Fleet::start(3, &[]);
    let bootstrap = fleet.bootstrap();
    create_topic(&bootstrap, "failover", 12).await;
    let before = fleet.leaders("failover");
    let p = producer(&bootstrap);
    let mut acked = Acked::new();
    produce(&p, "failover", 12, "before", 600, &mut acked).await;
    fleet.node(2).kill9();
    let killed_at = Instant::now();
    let after = fleet.wait_leaders("failover", FAILOVER, "node 2's partitions fail over", |l| {
        l.values().all(|x| x.node == 1 || x.node == 3)
    });
    eprintln!("failover took {:?}", killed_at.elapsed());
    for (part, old) in &before {
        if old.node == 2 {
            assert_eq!(
                after[part].epoch,
                old.epoch + 1,
                "partition {part} has a new epoch"
            );
        } else {
            assert_eq!(after[part], *old, "partition {part} did not move");
        }
    }
    produce(&p, "failover", 12, "after", 600, &mut acked).await;
    // The controller collects the dead stream once its tails moved into segments: only
    // the fence (its highest object) stays.
    let stream = std::path::PathBuf::from(fleet.url.trim_start_matches("file://")).join("wal/2");
    let objects = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let deadline = Instant::now() + WAIT;
    loop {
        let incarnations: Vec<_> = std::fs::read_dir(&stream).unwrap().flatten().collect();
        if incarnations.iter().all(|i| objects(&i.path()) == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead stream of node 2 not collected"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(fences_of(&fleet.url, 2).len(), 1, "the fence stays");
    // The restarted node is a new incarnation that leads nothing until moves give it work.
    fleet.node(2).restart();
    produce(&p, "failover", 12, "restarted", 120, &mut acked).await;
    verify(&bootstrap, "failover", 12, &acked);
}

/// Names the WAL objects of `node` that are fences (kind byte 1 after the magic).
fn fences_of(url: &str, node: i32) -> Vec<String> {
    let root =
        std::path::PathBuf::from(url.trim_start_matches("file://")).join(format!("wal/{node}"));
    let mut out = Vec::new();
    for inc in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for obj in std::fs::read_dir(inc.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let data = std::fs::read(obj.path()).unwrap_or_default();
            if data.get(8) == Some(&1) {
                out.push(obj.path().display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reassignment_moves_partitions_without_fencing_or_copying() {
    let mut fleet = Fleet::start(3, &[]);
    let bootstrap = fleet.bootstrap();
    create_topic(&bootstrap, "moves", 6).await;
    let p = producer(&bootstrap);
    let mut acked = Acked::new();
    produce(&p, "moves", 6, "a", 300, &mut acked).await;
    let before = fleet.leaders("moves");
    // Every partition moves to the next node.
    let moves: Vec<(i32, i32)> = before
        .iter()
        .map(|(part, l)| (*part, l.node % 3 + 1))
        .collect();
    let started = Instant::now();
    let r = fleet.reassign("moves", &moves);
    assert_eq!(r.error_code, 0);
    for t in &r.responses {
        for part in &t.partitions {
            assert_eq!(part.error_code, 0, "{:?}", part.error_message);
        }
    }
    let after = fleet.wait_leaders("moves", WAIT, "moves complete", |l| {
        moves.iter().all(|(part, to)| l[part].node == *to)
    });
    eprintln!("6 moves took {:?}", started.elapsed());
    for (part, old) in &before {
        assert_eq!(after[part].epoch, old.epoch + 1);
    }
    let listed: kafka_protocol::messages::ListPartitionReassignmentsResponse = fleet.any().request(
        kafka_protocol::messages::ApiKey::ListPartitionReassignments,
        0,
        &kafka_protocol::messages::ListPartitionReassignmentsRequest::default(),
    );
    assert!(listed.topics.is_empty(), "no move left pending: {listed:?}");
    for node in 1..=3 {
        assert!(
            fences_of(&fleet.url, node).is_empty(),
            "graceful moves fence nothing"
        );
    }
    produce(&p, "moves", 6, "b", 300, &mut acked).await;
    verify(&bootstrap, "moves", 6, &acked);
    // Bad requests change nothing.
    let r = fleet.reassign("moves", &[(0, 9)]);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        kafka_protocol::ResponseError::InvalidReplicaAssignment.code()
    );
    let r = fleet.reassign("nope", &[(0, 1)]);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        kafka_protocol::ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(fleet.leaders("moves"), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_broker_hands_everything_over_and_stops_cleanly() {
    let mut fleet = Fleet::start(3, &[]);
    let bootstrap = fleet.bootstrap();
    create_topic(&bootstrap, "drain", 9).await;
    let p = producer(&bootstrap);
    let mut acked = Acked::new();
    produce(&p, "drain", 9, "a", 270, &mut acked).await;
    let answer = fleet.drain(1, 3);
    assert_eq!(answer["draining"], true);
    let deadline = Instant::now() + WAIT;
    loop {
        let c = fleet.cluster();
        let led = c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == 3)
            .unwrap()["partitions_led"]
            .as_u64()
            .unwrap();
        if led == 0 && c["partitions_moving"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "drain did not finish: {c}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let spread = fleet.spread("drain");
    assert_eq!(spread.get(&3), None, "{spread:?}");
    let status = fleet.node(3).terminate();
    assert!(status.success(), "a drained broker stops cleanly: {status}");
    produce(&p, "drain", 9, "b", 270, &mut acked).await;
    verify(&bootstrap, "drain", 9, &acked);
    assert!(
        fences_of(&fleet.url, 3).is_empty(),
        "nothing of node 3 needed fencing"
    );
}

/// Split brain: node 2 is paused (SIGSTOP) past the session timeout — alive but cut off
/// from the fleet — so its partitions fail over; when it resumes it must not acknowledge
/// anything for the partitions it lost, and it exits to restart as a new incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_broker_is_fenced_and_never_acknowledges_again() {
    let mut fleet = Fleet::start(3, &[]);
    let bootstrap = fleet.bootstrap();
    create_topic(&bootstrap, "brain", 6).await;
    let p = producer(&bootstrap);
    let mut acked = Acked::new();
    produce(&p, "brain", 6, "a", 300, &mut acked).await;
    let lost: Vec<i32> = fleet
        .leaders("brain")
        .iter()
        .filter(|(_, l)| l.node == 2)
        .map(|(p, _)| *p)
        .collect();
    assert!(!lost.is_empty());
    let mut zombie = fleet.node(2).connect();
    let pid = fleet.node(2).pid();
    signal(pid, "-STOP");
    fleet.wait_leaders(
        "brain",
        FAILOVER,
        "the paused broker's partitions fail over",
        |l| l.values().all(|x| x.node != 2 && x.node != -1),
    );
    produce(&p, "brain", 6, "b", 300, &mut acked).await;
    signal(pid, "-CONT");
    // Its first answers, before it learns anything, must not be acknowledgements.
    for part in &lost {
        if let Some((code, offset)) = zombie.produce_one("brain", *part, "zombie") {
            assert_ne!(
                code, 0,
                "the fenced broker acknowledged offset {offset} of partition {part}"
            );
        }
    }
    let status = fleet
        .node(2)
        .wait_exit(WAIT)
        .expect("the fenced broker exits");
    assert_eq!(
        status.code(),
        Some(sluice_broker::server::startup::EXIT_FENCED)
    );
    produce(&p, "brain", 6, "c", 300, &mut acked).await;
    verify(&bootstrap, "brain", 6, &acked);
    let log = read_all(&bootstrap, "brain", 6);
    assert!(
        log.values().all(|v| v != "zombie"),
        "no zombie record is in the log"
    );
}

/// Split brain through the fault layer: from 4 s on, node 2 cannot write its heartbeat
/// (cut off from the fleet) but its data still reaches the bucket. The controller
/// declares it dead and its partitions fail over; the take-over fences its WAL stream,
/// so it acknowledges nothing more for them, and it exits to restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_cut_off_from_the_fleet_is_fenced() {
    let mut fleet = Fleet::start(
        3,
        &[
            "--inject-faults",
            "put_error=1,only=meta/nodes/2/heartbeat,after_ms=4000",
        ],
    );
    let bootstrap = fleet.bootstrap();
    create_topic(&bootstrap, "cut", 6).await;
    let p = producer(&bootstrap);
    let mut acked = Acked::new();
    produce(&p, "cut", 6, "a", 300, &mut acked).await;
    let lost: Vec<i32> = fleet
        .leaders("cut")
        .iter()
        .filter(|(_, l)| l.node == 2)
        .map(|(p, _)| *p)
        .collect();
    assert!(!lost.is_empty());
    let mut conn = fleet.node(2).connect();
    // Keep writing through node 2 until it stops acknowledging.
    let mut writes = 0;
    let deadline = Instant::now() + FAILOVER;
    loop {
        assert!(Instant::now() < deadline, "node 2 kept acknowledging");
        match conn.produce_one("cut", lost[0], &format!("through-2-{writes}")) {
            Some((0, offset)) => {
                acked.insert((lost[0], offset), format!("through-2-{writes}"));
                writes += 1;
            }
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(writes > 0, "node 2 served until it was cut off");
    let status = fleet
        .node(2)
        .wait_exit(WAIT)
        .expect("the cut-off broker exits");
    assert_eq!(
        status.code(),
        Some(sluice_broker::server::startup::EXIT_FENCED)
    );
    let after = fleet.wait_leaders("cut", FAILOVER, "failover", |l| {
        l.values().all(|x| x.node == 1 || x.node == 3)
    });
    assert!(lost.iter().all(|p| after[p].node != 2));
    produce(&p, "cut", 6, "b", 300, &mut acked).await;
    verify(&bootstrap, "cut", 6, &acked);
}
