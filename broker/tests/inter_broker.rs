//! Brokers reaching each other on a secured fleet: two brokers whose every listener is
//! SASL_SSL (CLIENT for clients, CONTROL for the operator and the other brokers, as the
//! operator's secured clusters have them), with a test CA, SCRAM logins and the
//! authorizer on. A batch with schema-invalid records produced to broker 1 puts them
//! in the dead-letter partition broker 2 leads: broker 1 forwards them over CONTROL,
//! logged in as the inter-broker user, and does so again after broker 2 restarts.
//! Without the inter-broker settings such a broker refuses to start, saying what is
//! missing.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{free_port, temp_storage, BrokerProcess};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, CreateTopicsRequest, FetchRequest,
    InitProducerIdRequest, MetadataRequest, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sluice_auth::Mechanism;
use sluice_protocol::client::{self, ClientSecurity, ClientSpec, Conn, ScramLogin, TlsClient};
use sluice_protocol::record_batch::{encode_batch, NewRecord, ProducerFields};
use sluice_testkit::http_send;

const TIMEOUT: Duration = Duration::from_secs(10);
const ADMIN_PASSWORD: &str = "admin-pw-51c2";
const BROKER_PASSWORD: &str = "broker-pw-9d04";

const SCHEMA: &str =
    r#"{"type":"object","properties":{"user":{"type":"string"}},"required":["user"]}"#;
const GOOD: &str = r#"{"user":"alice"}"#;
const WRONG: &str = r#"{"user":7}"#;
const NOT_JSON: &str = "user=carol";

/// The test's own client: what it calls, and the SASL login.
const SPEC: ClientSpec = ClientSpec {
    client_id: "inter-broker-test",
    versions: &[
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 9, 12),
        (ApiKey::CreateTopics, 5, 7),
        (ApiKey::Produce, 8, 11),
        (ApiKey::Fetch, 4, 12),
        (ApiKey::InitProducerId, 2, 4),
        (ApiKey::AlterPartitionReassignments, 0, 0),
        (ApiKey::SaslHandshake, 1, 1),
        (ApiKey::SaslAuthenticate, 0, 2),
    ],
};

/// A test CA, a certificate it signed for 127.0.0.1 and localhost (both brokers serve
/// it), and the users file: the files the brokers read.
struct Files {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Files {
    fn new() -> Files {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "broker");
        let cert = params.signed_by(&key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.crt", &ca_pem);
        write("tls.crt", &cert.pem());
        write("tls.key", &key.serialize_pem());
        write(
            "users",
            &format!("admin={ADMIN_PASSWORD}\nbroker={BROKER_PASSWORD}\n"),
        );
        Files { dir, ca_pem }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A broker of the fleet: CLIENT (SASL_SSL) on the harness's Kafka port, CONTROL
/// (SASL_SSL) on another, the authorizer on, `admin` and `broker` super users, fast
/// liveness settings, and `inter_broker` (the flags under test).
fn spawn(url: &str, files: &Files, node: i32, inter_broker: &[String]) -> BrokerProcess {
    BrokerProcess::spawn_with(url, |client| {
        let control = free_port();
        let mut args: Vec<String> = [
            "--node-id",
            &node.to_string(),
            "--listeners",
            &format!("CLIENT://{client},CONTROL://127.0.0.1:{control}"),
            "--listener-security-protocol-map",
            "CLIENT:SASL_SSL,CONTROL:SASL_SSL",
            "--ssl-certificate-file",
            &files.path("tls.crt"),
            "--ssl-key-file",
            &files.path("tls.key"),
            "--sasl-bootstrap-users-file",
            &files.path("users"),
            "--super-users",
            "User:admin;User:broker",
            "--authorizer",
            "on",
            "--heartbeat-interval-ms",
            "200",
            "--session-timeout-ms",
            "2000",
            "--metadata-poll-ms",
            "50",
            "--offsets-topic-partitions",
            "2",
            "--auto-create-topics",
            "false",
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(inter_broker);
        args
    })
}

/// The operator's settings: forwards over CONTROL as `broker`, trusting the test CA.
fn inter_broker_flags(files: &Files) -> Vec<String> {
    [
        "--inter-broker-listener-name",
        "CONTROL",
        "--inter-broker-user",
        "broker",
        "--inter-broker-ssl-ca-file",
        &files.path("ca.crt"),
    ]
    .map(String::from)
    .to_vec()
}

async fn admin(files: &Files, broker: &BrokerProcess) -> Conn {
    let security = ClientSecurity {
        tls: Some(TlsClient::from_ca_pem(files.ca_pem.as_bytes()).unwrap()),
        sasl: Some(ScramLogin {
            mechanism: Mechanism::Sha512,
            user: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        }),
    };
    client::connect(&broker.bootstrap(), TIMEOUT, SPEC, &security)
        .await
        .unwrap_or_else(|e| panic!("admin login to {}: {e}", broker.bootstrap()))
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Registers the JSON schema under `subject` through `broker`'s registry API.
fn register(broker: &BrokerProcess, subject: &str) {
    let body = serde_json::json!({ "schemaType": "JSON", "schema": SCHEMA }).to_string();
    let path = format!("/subjects/{subject}/versions");
    let (status, text) =
        http_send(broker.metrics_addr, "POST", &path, &body).expect("registry reachable");
    assert_eq!(status, 200, "{text}");
}

async fn create_topic(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(configs)]);
    let (r, _) = conn.call(&request).await.unwrap();
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0, "creating {topic}: {:?}", t.error_message);
}

/// Moves partition 0 of `topic` to `node` and waits until Metadata names it leader.
async fn move_to(conn: &mut Conn, topic: &str, node: i32) {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(node)]))])]);
    let (r, _) = conn.call(&request).await.unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic))),
        ]));
        let (m, _) = conn.call(&request).await.unwrap();
        let leader = m.topics[0].partitions.first().map(|p| p.leader_id.0);
        if leader == Some(node) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not led by {node}: {leader:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Produces `batch` to partition 0 of `topic` with acks=all, retried while the answer
/// is retriable (a partition being taken over, a forward that failed), as a producer
/// does: the partition's final error code and message.
async fn produce(conn: &mut Conn, topic: &str, batch: Bytes) -> (i16, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.clone()))])]);
        let (r, _) = conn.call(&request).await.unwrap();
        let p = &r.responses[0].partition_responses[0];
        let message = p.error_message.as_ref().map(|m| m.to_string());
        let retriable =
            ResponseError::try_from_code(p.error_code).is_some_and(|e| e.is_retriable());
        if !retriable || Instant::now() > deadline {
            return (p.error_code, message);
        }
        eprintln!(
            "produce to {topic}: retrying after {}: {message:?}",
            p.error_code
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn init_producer_id(conn: &mut Conn) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (r, _) = conn.call(&request).await.unwrap();
    assert_eq!(r.error_code, 0, "InitProducerId");
    r.producer_id.0
}

fn batch(values: &[&str], producer_id: i64, base_sequence: i32) -> Bytes {
    encode_batch(
        values.iter().map(|v| NewRecord {
            key: None,
            value: Some(Bytes::from(v.to_string())),
            timestamp: 1_700_000_000_000,
        }),
        Some(ProducerFields {
            producer_id,
            epoch: 0,
            base_sequence,
        }),
        Compression::None,
    )
}

/// Every record of partition 0 of `topic` up to its high watermark (or a gap before
/// it), read from its leader: value and headers.
async fn read(conn: &mut Conn, topic: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let text =
        |b: &Option<Bytes>| String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned();
    let mut out = Vec::new();
    let mut offset = 0;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let request = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1024 * 1024)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(1024 * 1024)])]);
        let (r, _) = conn.call(&request).await.unwrap();
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetching {topic}");
        if offset >= p.high_watermark {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "reading {topic} timed out at {offset}"
        );
        let mut records = p.records.clone().unwrap_or_default();
        let from = offset;
        for r in RecordBatchDecoder::decode_all(&mut records)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .filter(|r| r.offset >= from)
        {
            let headers = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), text(v)))
                .collect();
            out.push((text(&r.value), headers));
            offset = r.offset + 1;
        }
        if offset == from {
            // Nothing below the high watermark from here: the offsets of invalid
            // records, which went to the dead-letter topic, are a gap at the end.
            return out;
        }
    }
}

/// Logins of the inter-broker user over CONTROL that `broker`'s audit log shows.
fn inter_broker_logins(broker: &BrokerProcess) -> usize {
    broker
        .logs()
        .lines()
        .filter(|l| l.contains("event=\"authentication\"") || l.contains("event=authentication"))
        .filter(|l| l.contains("result=\"ok\"") || l.contains("result=ok"))
        .filter(|l| l.contains("principal=User:broker") && l.contains("listener=CONTROL"))
        .count()
}

#[tokio::test]
async fn dead_letters_reach_the_leader_on_another_broker_over_sasl_ssl() {
    let files = Files::new();
    let (_storage, url) = temp_storage();
    let flags = inter_broker_flags(&files);
    let mut brokers: Vec<BrokerProcess> = (1..=2)
        .map(|node| {
            let mut b = spawn(&url, &files, node, &flags);
            b.wait_ready(common::READY_TIMEOUT);
            b
        })
        .collect();
    register(&brokers[0], "auth-value");
    let mut on1 = admin(&files, &brokers[0]).await;
    create_topic(&mut on1, "auth-dlq", &[]).await;
    create_topic(
        &mut on1,
        "auth",
        &[
            ("sluice.schema.subject", "auth-value"),
            ("sluice.schema.format", "json"),
            ("sluice.schema.level", "full"),
            ("sluice.schema.mode", "dead-letter"),
            ("sluice.dead.letter.topic", "auth-dlq"),
        ],
    )
    .await;
    move_to(&mut on1, "auth", 1).await;
    move_to(&mut on1, "auth-dlq", 2).await;

    let pid = init_producer_id(&mut on1).await;
    let (code, message) = produce(&mut on1, "auth", batch(&[GOOD, WRONG], pid, 0)).await;
    assert_eq!(code, 0, "{message:?}");

    let mut on2 = admin(&files, &brokers[1]).await;
    let dead = read(&mut on2, "auth-dlq").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, WRONG);
    assert_eq!(dead[0].1["sluice.dlq.reason"], "schema", "{:?}", dead[0].1);
    assert_eq!(dead[0].1["sluice.dlq.topic"], "auth");
    let landed: Vec<String> = read(&mut on1, "auth")
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(landed, vec![GOOD]);
    assert!(
        inter_broker_logins(&brokers[1]) >= 1,
        "broker 2 saw no login of User:broker over CONTROL\n{}",
        brokers[1].log_tail()
    );

    // Broker 2 restarts: broker 1's connection to it is dead, and the next forward
    // connects and logs in again.
    let logins_before = inter_broker_logins(&brokers[1]);
    brokers[1].kill9();
    brokers[1].restart();
    move_to(&mut on1, "auth-dlq", 2).await;
    let (code, message) = produce(&mut on1, "auth", batch(&[NOT_JSON], pid, 2)).await;
    assert_eq!(code, 0, "{message:?}");
    let mut on2 = admin(&files, &brokers[1]).await;
    let dead = read(&mut on2, "auth-dlq").await;
    let values: Vec<&str> = dead.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(values, vec![WRONG, NOT_JSON], "{dead:?}");
    assert_eq!(dead[1].1["sluice.dlq.reason"], "not_json");
    assert!(
        inter_broker_logins(&brokers[1]) > logins_before,
        "no new login of User:broker after the restart\n{}",
        brokers[1].log_tail()
    );
}

/// Starts a broker that must refuse to start, and returns its log.
fn refused(url: &str, files: &Files, flags: &[String]) -> String {
    let mut broker = spawn(url, files, 1, flags);
    let status = broker
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("started without {flags:?}\n{}", broker.log_tail()));
    assert!(!status.success(), "{status}");
    broker.logs()
}

#[test]
fn without_inter_broker_settings_a_sasl_ssl_broker_refuses_to_start() {
    let files = Files::new();
    let (_storage, url) = temp_storage();
    let flag = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ca = files.path("ca.crt");

    let log = refused(&url, &files, &[]);
    assert!(
        log.contains("inter-broker listener CLIENT uses SASL_SSL: give --inter-broker-ssl-ca-file"),
        "{log}"
    );
    let log = refused(&url, &files, &flag(&["--inter-broker-ssl-ca-file", &ca]));
    assert!(
        log.contains("inter-broker listener CLIENT uses SASL_SSL: give --inter-broker-user"),
        "{log}"
    );
    let log = refused(
        &url,
        &files,
        &flag(&[
            "--inter-broker-listener-name",
            "CONTROL",
            "--inter-broker-ssl-ca-file",
            &ca,
            "--inter-broker-user",
            "nobody",
        ]),
    );
    assert!(
        log.contains("--inter-broker-user nobody has no nobody=PASSWORD line"),
        "{log}"
    );
    let log = refused(
        &url,
        &files,
        &flag(&["--inter-broker-listener-name", "INTERNAL"]),
    );
    assert!(
        log.contains("no such listener (the listeners are CLIENT, CONTROL)"),
        "{log}"
    );
}
