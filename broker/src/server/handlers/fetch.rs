//! Fetch with long-poll: answer as soon as `min_bytes` are available or `max_wait_ms`
//! passes, waking on every durable WAL write. No transactions exist yet, so the last
//! stable offset is the high watermark under both isolation levels.

use std::time::{Duration, Instant};

use super::{check_leader_epoch, led_partition};
use crate::server::Broker;
use crate::storage::ReadLimit;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;

/// Fetch v13 switched from topic names to topic ids.
const TOPIC_ID_VERSION: i16 = 13;

pub async fn handle(broker: &Broker, version: i16, req: FetchRequest) -> FetchResponse {
    let started = Instant::now();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut events = broker.engine.durability_events();
    loop {
        events.borrow_and_update();
        let (resp, bytes, errors) = read_once(broker, version, &req).await;
        let done = bytes >= req.min_bytes.max(0) as usize
            || errors
            || tokio::time::Instant::now() >= deadline;
        if done {
            broker.metrics.fetch_bytes.inc_by(bytes as u64);
            broker
                .metrics
                .fetch_latency
                .observe(started.elapsed().as_secs_f64());
            return resp;
        }
        match tokio::time::timeout_at(deadline, events.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                let (resp, bytes, _) = read_once(broker, version, &req).await;
                broker.metrics.fetch_bytes.inc_by(bytes as u64);
                return resp;
            }
        }
    }
}

/// One pass over the requested partitions: the response, bytes returned, and whether any
/// partition answered with an error (which ends the long-poll, as in Kafka).
async fn read_once(
    broker: &Broker,
    version: i16,
    req: &FetchRequest,
) -> (FetchResponse, usize, bool) {
    let meta = broker.metadata.current();
    let mut remaining = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let found = if version >= TOPIC_ID_VERSION {
            meta.topic_by_id(t.topic_id).map(|(n, m)| (n.clone(), m))
        } else {
            meta.topics
                .get(t.topic.0.as_str())
                .map(|m| (t.topic.0.to_string(), m))
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut data = PartitionData::default().with_partition_index(p.partition);
            let result = match &found {
                None if version >= TOPIC_ID_VERSION => Err(ResponseError::UnknownTopicId),
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some((_, m)) => match led_partition(broker, Some(m), p.partition) {
                    Err(e) => Err(e),
                    Ok(part) => {
                        let offsets = part.offsets();
                        data = data
                            .with_high_watermark(offsets.high_watermark)
                            .with_last_stable_offset(offsets.high_watermark)
                            .with_log_start_offset(offsets.log_start_offset);
                        if let Some(e) =
                            check_leader_epoch(p.current_leader_epoch, offsets.leader_epoch)
                        {
                            Err(e)
                        } else {
                            // Only the response's first batch may exceed a limit.
                            let limit = ReadLimit {
                                max_bytes: (p.partition_max_bytes.max(0) as usize).min(remaining),
                                first_may_exceed: total == 0,
                            };
                            broker
                                .engine
                                .read(&part, p.fetch_offset, limit)
                                .await
                                .map_err(|e| e.kafka_error())
                        }
                    }
                },
            };
            match result {
                Ok(records) => {
                    total += records.len();
                    remaining = remaining.saturating_sub(records.len());
                    data = data.with_records(Some(records));
                }
                Err(e) => {
                    any_error = true;
                    data = data
                        .with_error_code(e.code())
                        .with_records(Some(bytes::Bytes::new()));
                }
            }
            partitions.push(data.with_aborted_transactions(None));
        }
        let mut topic = FetchableTopicResponse::default().with_partitions(partitions);
        topic = if version >= TOPIC_ID_VERSION {
            topic.with_topic_id(t.topic_id)
        } else {
            topic.with_topic(t.topic.clone())
        };
        topics.push(topic);
    }
    (
        FetchResponse::default()
            .with_responses(topics)
            .with_session_id(0),
        total,
        any_error,
    )
}
