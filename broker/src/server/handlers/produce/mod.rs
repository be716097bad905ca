//! Produce: validate each partition's batch, assign offsets in request order, then wait
//! for the WAL object holding them to be durable before acknowledging (acks 1 and all
//! are the same here: the object store is the replication). A topic with a schema
//! policy validates each batch first ([`govern`]).

mod govern;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;
use sluice_protocol::record_batch::{self, BatchError};
use tracing::debug;

use govern::{govern, Governed, Source};
use kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;

use super::{led_partition, str_bytes, PendingResponse, Reply};
use crate::coordination::groups::offsets::OFFSETS_TOPIC;
use crate::coordination::topic_config;
use crate::metrics::{KindLabel, PartitionLabel};
use crate::server::Broker;
use crate::storage::{Appended, PartitionLog};

/// Throttle hint sent while the produce buffer is nearly full.
const THROTTLE_MS: i32 = 100;

enum Outcome {
    Appended(Arc<PartitionLog>, Appended, usize, i32),
    Failed(
        ResponseError,
        Option<String>,
        Vec<BatchIndexAndErrorMessage>,
    ),
}

impl Outcome {
    fn failed(e: ResponseError, message: Option<String>) -> Outcome {
        Outcome::Failed(e, message, Vec::new())
    }
}

pub async fn handle(
    broker: Arc<Broker>,
    _version: i16,
    req: ProduceRequest,
    client_id: &str,
) -> PendingResponse {
    let started = Instant::now();
    let timeout = if req.timeout_ms > 0 {
        Duration::from_millis(req.timeout_ms as u64)
    } else {
        broker.request_timeout()
    };
    let meta = broker.metadata.current();
    let mut outcomes: Vec<(String, Vec<(i32, Outcome)>)> = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut parts = Vec::new();
        for p in topic.partition_data {
            let outcome = if name == OFFSETS_TOPIC {
                Outcome::failed(
                    ResponseError::InvalidTopicException,
                    Some(format!(
                        "{OFFSETS_TOPIC} is internal; commit offsets with OffsetCommit"
                    )),
                )
            } else if req.transactional_id.is_some() {
                Outcome::failed(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported yet".into()),
                )
            } else {
                let topic = meta.topics.get(&name).map(|t| (name.as_str(), t));
                append_one(&broker, topic, p.index, p.records, client_id, timeout).await
            };
            if let Outcome::Failed(e, _, _) = &outcome {
                broker
                    .metrics
                    .produce_errors
                    .get_or_create(&KindLabel {
                        kind: format!("{e:?}"),
                    })
                    .inc();
            }
            parts.push((p.index, outcome));
        }
        outcomes.push((name, parts));
    }
    let acks = req.acks;
    // One deadline for the whole request: partitions are awaited in turn.
    let deadline = started + timeout;
    Box::pin(async move {
        let mut topics = Vec::with_capacity(outcomes.len());
        for (name, parts) in outcomes {
            let mut responses = Vec::with_capacity(parts.len());
            for (index, outcome) in parts {
                let r = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_log_append_time_ms(-1);
                responses.push(match outcome {
                    Outcome::Failed(e, msg, record_errors) => r
                        .with_error_code(e.code())
                        .with_base_offset(-1)
                        .with_error_message(msg.map(str_bytes))
                        .with_record_errors(record_errors),
                    Outcome::Appended(part, appended, bytes, records) => {
                        match broker
                            .engine
                            .wait_durable(
                                &part,
                                appended.durable_at,
                                deadline.saturating_duration_since(Instant::now()),
                            )
                            .await
                        {
                            Ok(()) => {
                                if !appended.duplicate {
                                    broker.metrics.produce_bytes.inc_by(bytes as u64);
                                    broker.metrics.produce_records.inc_by(records as u64);
                                    broker
                                        .metrics
                                        .partition_produce_bytes
                                        .get_or_create(&PartitionLabel {
                                            topic: part.topic.clone(),
                                            partition: part.partition,
                                        })
                                        .inc_by(bytes as u64);
                                }
                                r.with_base_offset(appended.base_offset)
                                    .with_log_start_offset(appended.log_start_offset)
                            }
                            Err(e) => r
                                .with_error_code(e.kafka_error().code())
                                .with_base_offset(-1)
                                .with_error_message(Some(str_bytes(e.to_string()))),
                        }
                    }
                });
            }
            topics.push(
                TopicProduceResponse::default()
                    .with_name(super::topic_name(name))
                    .with_partition_responses(responses),
            );
        }
        broker
            .metrics
            .produce_latency
            .observe(started.elapsed().as_secs_f64());
        if acks == 0 {
            let failed = topics
                .iter()
                .flat_map(|t| &t.partition_responses)
                .any(|p| p.error_code != 0);
            return if failed { Reply::Close } else { Reply::Silent };
        }
        let throttle = if broker.engine.is_throttling() {
            THROTTLE_MS
        } else {
            0
        };
        super::reply(ResponseKind::Produce(
            ProduceResponse::default()
                .with_responses(topics)
                .with_throttle_time_ms(throttle),
        ))
    })
}

async fn append_one(
    broker: &Broker,
    topic: Option<(&str, &crate::coordination::TopicMetadata)>,
    index: i32,
    records: Option<bytes::Bytes>,
    client_id: &str,
    timeout: Duration,
) -> Outcome {
    let part = match led_partition(broker, topic.map(|t| t.1), index) {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e, None),
    };
    let (name, topic) = topic.expect("led_partition found the topic");
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Outcome::failed(ResponseError::CorruptMessage, Some("no records".into()));
    };
    let header = match record_batch::validate_produce_records(&records) {
        Ok(h) => h,
        Err(e) => {
            debug!(error = %e, "rejecting produce batch");
            let code = match e {
                BatchError::CrcMismatch { .. }
                | BatchError::Truncated(_)
                | BatchError::LengthMismatch { .. } => ResponseError::CorruptMessage,
                BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
                _ => ResponseError::InvalidRecord,
            };
            return Outcome::failed(code, Some(e.to_string()));
        }
    };
    let max = topic_config::settings(&topic.configs).max_message_bytes;
    if records.len() > max {
        return Outcome::failed(
            ResponseError::MessageTooLarge,
            Some(format!(
                "batch of {} bytes exceeds max.message.bytes {max}",
                records.len()
            )),
        );
    }
    if header.is_control() {
        return Outcome::failed(
            ResponseError::InvalidRecord,
            Some("control batches are not accepted from clients".into()),
        );
    }
    let source = Source {
        topic: name,
        metadata: topic,
        partition: index,
        client_id,
    };
    let (batch, header, client_base) = match govern(broker, &source, records, header, timeout).await
    {
        Governed::Land {
            batch,
            header,
            client_base,
        } => (batch, header, client_base),
        Governed::Refuse {
            error,
            message,
            record_errors,
        } => return Outcome::Failed(error, Some(message), record_errors),
    };
    let records = if header.is_control() {
        0
    } else {
        header.records_count
    };
    match broker
        .engine
        .append_rewritten(&part, &batch, header, client_base, timeout)
        .await
    {
        Ok(a) => Outcome::Appended(part, a, batch.len(), records),
        Err(e) => Outcome::failed(e.kafka_error(), Some(e.to_string())),
    }
}
