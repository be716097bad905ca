//! ListOffsets: earliest, latest, max timestamp and the first offset at a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::{check_leader_epoch, led_partition};
use crate::server::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// ListOffsets v4 added the leader epoch; the codec refuses it set in older versions.
const LEADER_EPOCH_VERSION: i16 = 4;

pub async fn handle(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let meta = broker.metadata.current();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = meta.topics.get(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let part = match led_partition(broker, topic, p.partition_index) {
                Ok(part) => part,
                Err(e) => {
                    partitions.push(r.with_error_code(e.code()));
                    continue;
                }
            };
            let o = part.offsets();
            if let Some(e) = check_leader_epoch(p.current_leader_epoch, o.leader_epoch) {
                partitions.push(r.with_error_code(e.code()));
                continue;
            }
            let found = match p.timestamp {
                LATEST => Ok(Some((o.high_watermark, -1))),
                EARLIEST | EARLIEST_LOCAL => Ok(Some((o.log_start_offset, -1))),
                LATEST_TIERED => Ok(None),
                MAX_TIMESTAMP => broker.engine.max_timestamp(&part).await,
                ts if ts >= 0 => broker.engine.offset_for_timestamp(&part, ts).await,
                _ => {
                    partitions.push(r.with_error_code(ResponseError::InvalidRequest.code()));
                    continue;
                }
            };
            let epoch = if version >= LEADER_EPOCH_VERSION {
                o.leader_epoch
            } else {
                -1
            };
            partitions.push(match found {
                Ok(Some((offset, ts))) => r
                    .with_offset(offset)
                    .with_timestamp(ts)
                    .with_leader_epoch(epoch),
                Ok(None) => r.with_leader_epoch(epoch),
                Err(e) => r.with_error_code(e.kafka_error().code()),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
