//! OffsetForLeaderEpoch (KIP-320): after a leader change a client asks where the epoch
//! it last fetched in ended, to detect a log that diverged from what it consumed.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{check_leader_epoch, led_partition};
use crate::server::Broker;

pub fn handle(broker: &Broker, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let meta = broker.metadata.current();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = meta.topics.get(t.topic.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let part = match led_partition(broker, topic, p.partition) {
                        Ok(part) => part,
                        Err(e) => return r.with_error_code(e.code()),
                    };
                    let current = part.offsets().leader_epoch;
                    if let Some(e) = check_leader_epoch(p.current_leader_epoch, current) {
                        return r.with_error_code(e.code());
                    }
                    match part.end_offset_for_epoch(p.leader_epoch) {
                        Some((epoch, end)) => r.with_leader_epoch(epoch).with_end_offset(end),
                        None => r,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
