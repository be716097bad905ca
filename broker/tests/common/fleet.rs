//! A fleet of `sluice-broker` processes on one bucket (node ids 1..=n, loopback ports),
//! with the admin calls the fleet tests need: leaders from Metadata, partition
//! reassignment, drain and the cluster view of `GET /v1/cluster`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{http_get, http_request, temp_storage, BrokerProcess, KafkaConn};

/// Reads every partition of `topic` from the start to its high watermark with a plain
/// librdkafka consumer, asserting offsets are dense and in order: (partition, offset) →
/// value. Transient client errors (a dead broker in the bootstrap list) are logged; a
/// persistent one ends at `timeout`.
pub fn read_log(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> BTreeMap<(i32, i64), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "log-checker")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = c.fetch_watermarks(topic, p, timeout).expect("watermarks");
        ends.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut log = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    while ends
        .iter()
        .any(|(p, end)| next.get(p).copied().unwrap_or(0) < *end)
    {
        assert!(
            Instant::now() < deadline,
            "reading back timed out at {next:?} of {ends:?}"
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("log checker: {e}");
                continue;
            }
        };
        let (p, o) = (m.partition(), m.offset());
        assert_eq!(
            o,
            next.get(&p).copied().unwrap_or(0),
            "offsets dense and in order in partition {p}"
        );
        next.insert(p, o + 1);
        let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
        log.insert((p, o), value);
    }
    log
}

/// Fast liveness settings so failovers happen within a test's patience.
pub const FLEET_ARGS: &[&str] = &[
    "--heartbeat-interval-ms",
    "200",
    "--session-timeout-ms",
    "2000",
    "--metadata-poll-ms",
    "50",
    "--offsets-topic-partitions",
    "6",
    "--auto-create-topics",
    "false",
    "--checkpoint-interval-ms",
    "2000",
    "--wal-gc-interval-ms",
    "1000",
];

pub struct Fleet {
    /// Index i holds node id i + 1.
    pub brokers: Vec<BrokerProcess>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Leader and epoch of one partition as Metadata reports it (leader -1: failing over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub node: i32,
    pub epoch: i32,
}

impl Fleet {
    /// Starts `n` brokers on a fresh file bucket with [`FLEET_ARGS`] and `extra` args.
    pub fn start(n: usize, extra: &[&str]) -> Fleet {
        let mut args = FLEET_ARGS.to_vec();
        args.extend_from_slice(extra);
        Fleet::start_exact(n, &args)
    }

    /// Starts `n` brokers on a fresh file bucket with exactly `args` (and `--node-id`).
    pub fn start_exact(n: usize, args: &[&str]) -> Fleet {
        let (dir, url) = temp_storage();
        let brokers = (1..=n)
            .map(|id| {
                let node = id.to_string();
                let mut all: Vec<&str> = vec!["--node-id", &node];
                all.extend_from_slice(args);
                BrokerProcess::start(&url, &all)
            })
            .collect();
        Fleet {
            brokers,
            url,
            _dir: Some(dir),
        }
    }

    pub fn node(&mut self, id: i32) -> &mut BrokerProcess {
        &mut self.brokers[id as usize - 1]
    }

    /// Comma-separated listeners of every broker (clients skip the dead ones).
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The first broker still running.
    pub fn running(&mut self) -> &mut BrokerProcess {
        let i = self
            .brokers
            .iter_mut()
            .position(|b| b.is_running())
            .expect("a running broker");
        &mut self.brokers[i]
    }

    /// A connection to the first running broker.
    pub fn any(&mut self) -> KafkaConn {
        self.running().connect()
    }

    pub fn metadata(&mut self, topic: &str) -> MetadataResponse {
        self.any().request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))])),
        )
    }

    /// Leaders by partition, as Metadata reports them.
    pub fn leaders(&mut self, topic: &str) -> BTreeMap<i32, Leader> {
        let m = self.metadata(topic);
        let t = m.topics.first().expect("topic in Metadata");
        t.partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    Leader {
                        node: p.leader_id.0,
                        epoch: p.leader_epoch,
                    },
                )
            })
            .collect()
    }

    /// Partitions led by each node.
    pub fn spread(&mut self, topic: &str) -> BTreeMap<i32, usize> {
        let mut out = BTreeMap::new();
        for l in self.leaders(topic).values() {
            *out.entry(l.node).or_insert(0) += 1;
        }
        out
    }

    /// Polls Metadata until `ok` holds for the leaders of `topic`; panics after
    /// `timeout` with the last view.
    pub fn wait_leaders(
        &mut self,
        topic: &str,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&BTreeMap<i32, Leader>) -> bool,
    ) -> BTreeMap<i32, Leader> {
        let deadline = Instant::now() + timeout;
        loop {
            let l = self.leaders(topic);
            if ok(&l) {
                return l;
            }
            if Instant::now() >= deadline {
                panic!("{what}: not within {timeout:?}; leaders: {l:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// AlterPartitionReassignments: each (partition, node) moves to node.
    pub fn reassign(
        &mut self,
        topic: &str,
        moves: &[(i32, i32)],
    ) -> AlterPartitionReassignmentsResponse {
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    moves
                        .iter()
                        .map(|(p, n)| {
                            ReassignablePartition::default()
                                .with_partition_index(*p)
                                .with_replicas(Some(vec![BrokerId(*n)]))
                        })
                        .collect(),
                )]);
        self.any()
            .request(ApiKey::AlterPartitionReassignments, 0, &req)
    }

    /// `GET /v1/cluster` from the first running broker.
    pub fn cluster(&mut self) -> serde_json::Value {
        let b = self.running();
        let (status, body) = http_get(b.metrics_addr, "/v1/cluster").expect("GET /v1/cluster");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("cluster JSON")
    }

    /// `POST /v1/nodes/{id}/drain` through broker `via`.
    pub fn drain(&mut self, via: i32, id: i32) -> serde_json::Value {
        let b = self.node(via);
        let (status, body) = http_request(b.metrics_addr, "POST", &format!("/v1/nodes/{id}/drain"))
            .expect("POST drain");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("drain JSON")
    }
}
