//! Producing records and committing offsets, so the admin tests have offsets and lag to
//! read. Uses the operator's own connection type at fixed versions.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, OffsetCommitRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_operator::kafka::{ClientSecurity, Conn};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A PLAINTEXT connection as the operator.
async fn connect(addr: &str) -> Result<Conn, sluice_operator::kafka::AdminError> {
    sluice_operator::kafka::connect(addr, Duration::from_secs(10), &ClientSecurity::default()).await
}

/// Produces `count` records to `topic`/`partition` (acks=all), one batch a request (the
/// encoder makes one batch a record without producer sequences), and checks each answer.
pub async fn produce(bootstrap: &str, topic: &str, partition: i32, count: usize) {
    let mut conn = connect(bootstrap).await.unwrap();
    for i in 0..count {
        produce_one(&mut conn, topic, partition, i).await;
    }
}

async fn produce_one(conn: &mut Conn, topic: &str, partition: i32, i: usize) {
    let records: Vec<Record> = std::iter::once(i)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("host-{i}"))),
            value: Some(Bytes::from(format!("{{\"event\":\"login\",\"n\":{i}}}"))),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.freeze()))])]);
    let response = conn.call_version(&request, 9).await.unwrap();
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(
        p.error_code, 0,
        "produce to {topic}-{partition} failed: {:?}",
        p.error_message
    );
}

/// Commits `offset` for `group` on `topic`/`partition`, as a standalone (simple) consumer.
pub async fn commit(bootstrap: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])]);
    // As every client does: ask where the group's coordinator is, then commit there.
    let mut conn = connect(bootstrap).await.unwrap();
    let found = conn
        .call_version(
            &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
            3,
        )
        .await
        .unwrap();
    assert_eq!(found.error_code, 0, "FindCoordinator for {group}");
    let mut conn = connect(&format!("{}:{}", found.host, found.port))
        .await
        .unwrap();
    let response = conn.call_version(&request, 8).await.unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(
        p.error_code, 0,
        "commit of {group} on {topic}-{partition} failed"
    );
}

/// A PLAINTEXT admin client of the broker at `bootstrap` (10 s per call).
pub async fn admin(bootstrap: &str) -> sluice_operator::kafka::AdminClient {
    sluice_operator::kafka::AdminClient::connect(
        bootstrap,
        Duration::from_secs(10),
        &ClientSecurity::default(),
    )
    .await
    .unwrap()
}
