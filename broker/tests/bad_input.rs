//! Bad input on the Kafka listener of the real `sluice-broker` binary: oversized,
//! truncated and garbage frames, unknown APIs and versions, and corrupt produce batches.
//! Each test runs its own broker (file storage in a tempdir, free loopback ports) and
//! checks both what the client sees and the `sluice_protocol_errors_total` counter.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{encode_body, raw_frame, record_batch, temp_storage, BrokerProcess, KafkaConn};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::Compression;

const UNSUPPORTED_VERSION: i16 = 35;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn protocol_errors(kind: &str) -> String {
    format!("sluice_protocol_errors_total{{kind=\"{kind}\"}}")
}

/// Asserts the protocol error counter of `kind` reaches exactly `expected`.
fn assert_protocol_errors(broker: &BrokerProcess, kind: &str, expected: f64) {
    let series = protocol_errors(kind);
    let got = broker.wait_for_metric(&series, expected);
    assert_eq!(
        got,
        Some(expected),
        "{series} should be {expected}; /metrics:\n{}",
        broker.metrics()
    );
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-bad-input-test"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"))
}

/// A well-formed ApiVersions v3 round trip on `conn` (the correlation id is checked by
/// the helper).
fn assert_api_versions_works(conn: &mut KafkaConn) {
    let resp: ApiVersionsResponse = conn.request(ApiKey::ApiVersions, 3, &api_versions_request());
    assert_eq!(resp.error_code, 0, "ApiVersions v3 failed: {resp:?}");
    assert!(
        resp.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16),
        "ApiVersions v3 does not list Produce: {resp:?}"
    );
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn create_topic(conn: &mut KafkaConn, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let resp: CreateTopicsResponse = conn.request(ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics.len(), 1, "{resp:?}");
    assert_eq!(
        resp.topics[0].error_code, 0,
        "creating {name}: {:?}",
        resp.topics[0].error_message
    );
}

/// Produces `records` to partition 0 of `topic` with ProduceRequest v9, acks=-1, and
/// returns the single partition response.
fn produce(conn: &mut KafkaConn, topic: &str, records: Bytes) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp: ProduceResponse = conn.request(ApiKey::Produce, 9, &req);
    assert_eq!(resp.responses.len(), 1, "{resp:?}");
    assert_eq!(resp.responses[0].name.0.as_str(), topic, "{resp:?}");
    assert_eq!(resp.responses[0].partition_responses.len(), 1, "{resp:?}");
    let p = resp.responses[0].partition_responses[0].clone();
    assert_eq!(p.index, 0, "{resp:?}");
    p
}

#[test]
fn oversized_frame_closes_the_connection_and_the_broker_keeps_serving() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &["--max-request-bytes", "1024"]);

    let mut conn = broker.connect();
    conn.write_raw(&1_000_000i32.to_be_bytes());
    conn.expect_closed();
    assert_protocol_errors(&broker, "frame_too_large", 1.0);

    let mut fresh = broker.connect();
    assert_api_versions_works(&mut fresh);
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &[]);
    assert!(
        ApiKey::try_from(999i16).is_err(),
        "999 became a real API key"
    );

    let mut conn = broker.connect();
    conn.write_raw(&raw_frame(999, 0, 7, &[]));
    conn.expect_closed();
    assert_protocol_errors(&broker, "unknown_api_key", 1.0);
}

#[test]
fn unsupported_metadata_version_closes_the_connection() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &[]);

    let mut conn = broker.connect();
    // The codec cannot encode v99, so the body is a v12 one under a v99 header; the
    // broker must refuse on the header alone.
    let body = encode_body(&MetadataRequest::default(), 12);
    conn.write_raw(&raw_frame(ApiKey::Metadata as i16, 99, 7, &body));
    conn.expect_closed();
    assert_protocol_errors(&broker, "unsupported_version", 1.0);
}

#[test]
fn api_versions_with_unsupported_version_gets_a_v0_answer() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &[]);

    let mut conn = broker.connect();
    let body = encode_body(&api_versions_request(), 3);
    conn.write_raw(&raw_frame(ApiKey::ApiVersions as i16, 99, 1234, &body));
    // KIP-511: the answer is an ApiVersions v0 response (header v0) with our versions.
    let mut resp_body = conn.read_response(ApiKey::ApiVersions, 0, 1234);
    let resp =
        ApiVersionsResponse::decode(&mut resp_body, 0).expect("decoding ApiVersions v0 response");
    assert_eq!(resp.error_code, UNSUPPORTED_VERSION, "{resp:?}");
    assert!(!resp.api_keys.is_empty(), "{resp:?}");
    let own = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap_or_else(|| panic!("ApiVersions missing from {resp:?}"));
    assert!(own.min_version <= 3 && 3 <= own.max_version, "{own:?}");
    assert!(resp_body.is_empty(), "{} trailing bytes", resp_body.len());

    // The connection stays open so the client can retry with a version it now knows.
    assert_api_versions_works(&mut conn);
    assert_eq!(
        broker.metric(&protocol_errors("unsupported_version")),
        None,
        "an answered ApiVersions must not count as a closed connection"
    );
}

#[test]
fn garbage_body_closes_the_connection() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &[]);

    let mut conn = broker.connect();
    // Metadata v9 is flexible: its body starts with a compact-array varint. Three bytes
    // with the continuation bit set can never finish one.
    conn.write_raw(&raw_frame(
        ApiKey::Metadata as i16,
        9,
        7,
        &[0xff, 0xff, 0xff],
    ));
    conn.expect_closed();
    assert_protocol_errors(&broker, "malformed", 1.0);
}

#[test]
fn truncated_frame_closes_the_connection() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &[]);

    let mut conn = broker.connect();
    let mut partial = BytesMut::new();
    partial.put_i32(100);
    partial.put_slice(&raw_frame(ApiKey::ApiVersions as i16, 3, 7, &[])[4..14]);
    assert_eq!(partial.len(), 14);
    conn.write_raw(&partial);
    conn.shutdown_write();
    conn.expect_closed();
    assert_protocol_errors(&broker, "truncated_frame", 1.0);
}

#[test]
fn produce_with_corrupt_crc_is_refused_and_changes_nothing() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &[]);
    let mut conn = broker.connect();
    create_topic(&mut conn, "crc-test", 1);

    let good = record_batch(3, Compression::None);
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;

    let refused = produce(&mut conn, "crc-test", bad.freeze());
    assert_eq!(refused.error_code, CORRUPT_MESSAGE, "{refused:?}");

    let accepted = produce(&mut conn, "crc-test", good);
    assert_eq!(accepted.error_code, 0, "{accepted:?}");
    assert_eq!(
        accepted.base_offset, 0,
        "the refused batch must not have taken offsets: {accepted:?}"
    );
    assert_eq!(
        broker.metric(&protocol_errors("malformed")),
        None,
        "a corrupt batch is a produce error, not a protocol error"
    );
}

#[test]
fn produce_to_unknown_topic_without_auto_create() {
    let (_dir, storage) = temp_storage();
    let broker = BrokerProcess::start(&storage, &["--auto-create-topics", "false"]);
    let mut conn = broker.connect();

    let resp = produce(
        &mut conn,
        "no-such-topic",
        record_batch(1, Compression::None),
    );
    assert_eq!(resp.error_code, UNKNOWN_TOPIC_OR_PARTITION, "{resp:?}");
    assert_eq!(resp.base_offset, -1, "{resp:?}");
}

/// A tiny (29-byte) Metadata v1 frame whose topics array claims i32::MAX entries. kafka-protocol
/// 0.18 decodes arrays with `Vec::with_capacity(declared length)` before reading any
/// element, so the broker asks for ~150 GB, the allocation fails and the whole process
/// aborts ("memory allocation of 154618822584 bytes failed"). The vendored patch
/// (vendor/README.md) caps the reservation at the bytes left in the frame.
#[test]
fn huge_declared_array_length_does_not_kill_the_broker() {
    let (_dir, storage) = temp_storage();
    let mut broker = BrokerProcess::start(&storage, &[]);

    let mut conn = broker.connect();
    conn.write_raw(&raw_frame(
        ApiKey::Metadata as i16,
        1,
        7,
        &i32::MAX.to_be_bytes(),
    ));
    conn.expect_closed();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(broker.is_running(), "the broker died on a 29-byte request");
    assert_protocol_errors(&broker, "malformed", 1.0);
    assert_api_versions_works(&mut broker.connect());
}
