//! Bad input to the group coordinator and the idempotent producer path gets the Kafka
//! error code clients expect, and changes nothing: stale generations, unknown members,
//! commits for unknown partitions, oversized commit metadata, sequence gaps, fenced
//! producer epochs.

mod common;

use bytes::Bytes;
use common::{temp_storage, BrokerProcess, KafkaConn};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::Compression;
use sluice_protocol::record_batch::{encode_batch, NewRecord, ProducerFields};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn call<Req: kafka_protocol::protocol::Encodable, Resp: Decodable>(
    conn: &mut KafkaConn,
    key: ApiKey,
    v: i16,
    req: &Req,
) -> Resp {
    let mut body = conn.send(key, v, req);
    Resp::decode(&mut body, v).expect("decoding response")
}

fn join(
    conn: &mut KafkaConn,
    member: &str,
    session_ms: i32,
    protocol_type: &str,
) -> JoinGroupResponse {
    call(
        conn,
        ApiKey::JoinGroup,
        5,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(member))
            .with_protocol_type(s(protocol_type))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"meta"))]),
    )
}

fn commit(
    conn: &mut KafkaConn,
    generation: i32,
    member: &str,
    topic: &str,
    partition: i32,
    metadata: &str,
) -> i16 {
    let r: OffsetCommitResponse = call(
        conn,
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(7)
                    .with_committed_metadata(Some(s(metadata)))])]),
    );
    r.topics[0].partitions[0].error_code
}

fn fetch_committed(conn: &mut KafkaConn) -> i64 {
    let r: OffsetFetchResponse = call(
        conn,
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s("ge")))
                .with_partition_indexes(vec![0])]))]),
    );
    r.groups[0].topics[0].partitions[0].committed_offset
}

#[test]
fn group_coordinator_refuses_bad_requests_with_kafka_errors() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let mut conn = broker.connect();
    let created: CreateTopicsResponse = call(
        &mut conn,
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s("ge")))
                .with_num_partitions(1)
                .with_replication_factor(-1)])
            .with_timeout_ms(10_000),
    );
    assert_eq!(created.topics[0].error_code, 0);
    // Before any FindCoordinator nobody coordinates groups (the offsets topic is created
    // by the first lookup, as clients always make one first).
    let early = join(&mut conn, "", 10_000, "consumer");
    assert_eq!(early.error_code, 16, "NOT_COORDINATOR");
    let found: FindCoordinatorResponse = call(
        &mut conn,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default().with_key(s("g")),
    );
    assert_eq!(
        (found.error_code, found.node_id.0),
        (0, 0),
        "this broker coordinates"
    );

    let first = join(&mut conn, "", 10_000, "consumer");
    assert_eq!(
        first.error_code, 79,
        "MEMBER_ID_REQUIRED with an id to rejoin with"
    );
    let member = first.member_id.to_string();
    let joined = join(&mut conn, &member, 10_000, "consumer");
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.as_str(), member);
    let synced: SyncGroupResponse = call(
        &mut conn,
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(s(&member)),
    );
    assert_eq!(synced.error_code, 0);

    let hb = |conn: &mut KafkaConn, generation, m: &str| -> i16 {
        let r: HeartbeatResponse = call(
            conn,
            ApiKey::Heartbeat,
            3,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(generation)
                .with_member_id(s(m)),
        );
        r.error_code
    };
    assert_eq!(hb(&mut conn, 1, &member), 0);
    assert_eq!(hb(&mut conn, 0, &member), 22, "ILLEGAL_GENERATION");
    assert_eq!(hb(&mut conn, 1, "stranger"), 25, "UNKNOWN_MEMBER_ID");

    assert_eq!(
        commit(&mut conn, 0, &member, "ge", 0, ""),
        22,
        "stale generation"
    );
    assert_eq!(
        commit(&mut conn, 1, "stranger", "ge", 0, ""),
        25,
        "unknown member"
    );
    assert_eq!(
        commit(&mut conn, 1, &member, "nope", 0, ""),
        3,
        "unknown topic"
    );
    assert_eq!(
        commit(&mut conn, 1, &member, "ge", 9, ""),
        3,
        "unknown partition"
    );
    assert_eq!(
        commit(&mut conn, 1, &member, "ge", 0, &"m".repeat(5000)),
        12,
        "OFFSET_METADATA_TOO_LARGE"
    );
    assert_eq!(
        fetch_committed(&mut conn),
        -1,
        "refused commits changed nothing"
    );
    assert_eq!(commit(&mut conn, 1, &member, "ge", 0, "ok"), 0);
    assert_eq!(fetch_committed(&mut conn), 7);

    assert_eq!(
        join(&mut conn, "", 100, "consumer").error_code,
        26,
        "INVALID_SESSION_TIMEOUT"
    );
    assert_eq!(
        join(&mut conn, &member, 10_000, "connect").error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );

    let delete = |conn: &mut KafkaConn| -> i16 {
        let r: DeleteGroupsResponse = call(
            conn,
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]),
        );
        r.results[0].error_code
    };
    assert_eq!(
        delete(&mut conn),
        68,
        "NON_EMPTY_GROUP while a member is in it"
    );
    let left: LeaveGroupResponse = call(
        &mut conn,
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&member)),
    );
    assert_eq!(left.error_code, 0);
    assert_eq!(delete(&mut conn), 0);
    assert_eq!(
        fetch_committed(&mut conn),
        -1,
        "offsets went with the group"
    );
    assert_eq!(delete(&mut conn), 69, "GROUP_ID_NOT_FOUND");
}

fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, count: usize) -> Bytes {
    let records = (0..count).map(|i| NewRecord {
        key: None,
        value: Some(Bytes::from(format!("v{i}"))),
        timestamp: 1_700_000_000_000,
    });
    let producer = (producer_id >= 0).then_some(ProducerFields {
        producer_id,
        epoch,
        base_sequence,
    });
    encode_batch(records, producer, Compression::None)
}

fn produce(conn: &mut KafkaConn, batch: Bytes) -> (i16, i64) {
    let r: ProduceResponse = call(
        conn,
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s("idem")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]),
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn idempotent_producer_sequence_gaps_and_fenced_epochs() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let mut conn = broker.connect();
    conn.auto_create_topic("idem");
    let pid = conn.init_producer_id();

    assert_eq!(produce(&mut conn, idempotent_batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(produce(&mut conn, idempotent_batch(pid, 0, 3, 2)), (0, 3));
    assert_eq!(
        produce(&mut conn, idempotent_batch(pid, 0, 0, 3)),
        (0, 0),
        "a retried batch gets its original offset"
    );
    assert_eq!(
        produce(&mut conn, idempotent_batch(pid, 0, 9, 1)).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&mut conn, idempotent_batch(pid, 1, 0, 1)),
        (0, 5),
        "a bumped epoch restarts the sequence"
    );
    assert_eq!(
        produce(&mut conn, idempotent_batch(pid, 0, 5, 1)).0,
        47,
        "INVALID_PRODUCER_EPOCH for the fenced epoch"
    );
    assert_eq!(
        produce(&mut conn, idempotent_batch(pid, 1, 1, 1)),
        (0, 6),
        "nothing refused was written"
    );
}

fn fetch_at_end(
    conn: &mut KafkaConn,
    topic_id: uuid::Uuid,
    offset: i64,
    max_wait_ms: i32,
) -> (std::time::Duration, usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let started = std::time::Instant::now();
    let r: FetchResponse = call(
        conn,
        ApiKey::Fetch,
        13,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]),
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (started.elapsed(), p.records.as_ref().map_or(0, |b| b.len()))
}

#[test]
fn fetch_long_polls_until_min_bytes_or_max_wait() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let mut conn = broker.connect();
    let meta = conn.auto_create_topic("idem");
    let topic_id = meta.topics[0].topic_id;
    assert!(!topic_id.is_nil(), "Metadata v12 carries the topic id");

    // Nothing to read: the fetch waits out max_wait and returns empty.
    let (waited, bytes) = fetch_at_end(&mut conn, topic_id, 0, 800);
    assert_eq!(bytes, 0);
    assert!(
        waited >= std::time::Duration::from_millis(700),
        "returned after {waited:?}"
    );

    // A record produced while the fetch waits ends the wait early.
    let addr = broker.bootstrap();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut other = KafkaConn::connect(addr.parse().unwrap());
        produce(&mut other, idempotent_batch(-1, -1, -1, 1))
    });
    let (waited, bytes) = fetch_at_end(&mut conn, topic_id, 0, 5_000);
    assert_eq!(producer.join().unwrap().0, 0);
    assert!(bytes > 0, "the new record is returned");
    assert!(
        waited < std::time::Duration::from_millis(3_000),
        "woke at once, after {waited:?}"
    );
}

/// Every advertised ListOffsets version gets an answer (v1-v3 have no leader epoch field,
/// and an encoder error must never leave a request unanswered).
#[test]
fn list_offsets_answers_every_advertised_version() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let mut conn = broker.connect();
    conn.auto_create_topic("idem");
    assert_eq!(produce(&mut conn, idempotent_batch(-1, -1, -1, 1)).0, 0);
    for version in 1..=10 {
        let r: ListOffsetsResponse = call(
            &mut conn,
            ApiKey::ListOffsets,
            version,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(s("idem")))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)])]),
        );
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, 1), "ListOffsets v{version}");
    }
}

/// acks=0: a successful produce gets no response; a failed one closes the connection, so
/// the client refreshes its metadata instead of sending into nothing (Kafka's behaviour).
#[test]
fn acks_zero_failures_close_the_connection() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &["--auto-create-topics", "false"]);
    let mut conn = broker.connect();
    let request = |topic: &str| {
        let req = ProduceRequest::default()
            .with_acks(0)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(idempotent_batch(-1, -1, -1, 1)))])]);
        common::raw_frame(ApiKey::Produce as i16, 9, 7, &common::encode_body(&req, 9))
    };
    conn.write_raw(&request("missing"));
    conn.expect_closed();
}
