//! Writing dead-letter batches to their partition's leader: this broker (an append like
//! any produce) or another one (a Produce request over a connection kept per broker).
//! Returns once the batch is durable, so a client's batch is acknowledged only after its
//! invalid records are safe. The partition is the source partition modulo the
//! dead-letter topic's partition count: the same source always writes to the same
//! dead-letter partition, where its retries are recognised as duplicates.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_protocol::client::{ClientSpec, Conn};
use sluice_protocol::record_batch::BatchHeader;

use crate::coordination::ClusterMetadata;
use crate::storage::LogEngine;

const FORWARD_CLIENT: ClientSpec = ClientSpec {
    client_id: "sluice-dead-letter",
    versions: &[(ApiKey::ApiVersions, 0, 3), (ApiKey::Produce, 8, 11)],
};

/// Why a dead-letter batch was not written; the client's batch fails with it.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter topic {0:?} does not exist")]
    NoTopic(String),
    #[error("dead-letter partition {topic}-{partition}: {error:?} ({message})")]
    Failed {
        topic: String,
        partition: i32,
        error: ResponseError,
        message: String,
    },
}

impl DeadLetterError {
    /// The error the client's batch is answered with: a missing dead-letter topic is a
    /// configuration mistake (INVALID_RECORD, not retried: the records are not lost, the
    /// producer sees the failure); anything else is passed on, retriable or not.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            DeadLetterError::NoTopic(_) => ResponseError::InvalidRecord,
            DeadLetterError::Failed { error, .. } => *error,
        }
    }
}

#[derive(Default)]
pub struct DeadLetterWriter {
    /// One connection per broker node, used one request at a time.
    conns: tokio::sync::Mutex<HashMap<i32, Conn>>,
}

impl DeadLetterWriter {
    /// Writes `batch` to the dead-letter partition of `source_partition`, as node
    /// `node_id` with `engine` and the cluster as `meta` shows it.
    pub async fn write(
        &self,
        (engine, meta, node_id): (&LogEngine, &ClusterMetadata, i32),
        topic: &str,
        source_partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<(), DeadLetterError> {
        let t = meta
            .topics
            .get(topic)
            .filter(|t| !t.partitions.is_empty())
            .ok_or_else(|| DeadLetterError::NoTopic(topic.to_string()))?;
        let partition = source_partition.rem_euclid(t.partitions.len() as i32);
        let failed = |error: ResponseError, message: String| DeadLetterError::Failed {
            topic: topic.to_string(),
            partition,
            error,
            message,
        };
        let local = engine.partition(t.id, partition).filter(|p| !p.is_closed());
        if let Some(part) = local {
            let header = BatchHeader::parse(&batch)
                .map_err(|e| failed(ResponseError::UnknownServerError, e.to_string()))?;
            let appended = engine
                .append(&part, &batch, header, timeout)
                .await
                .map_err(|e| failed(e.kafka_error(), e.to_string()))?;
            return engine
                .wait_durable(&part, appended.durable_at, timeout)
                .await
                .map_err(|e| failed(e.kafka_error(), e.to_string()));
        }
        let Some((node, info)) = meta.live_leader(&t.partitions[partition as usize]) else {
            return Err(failed(
                ResponseError::NotLeaderOrFollower,
                "no live leader".into(),
            ));
        };
        if node == node_id {
            // Assigned here but not open yet (taking over): the client retries.
            return Err(failed(
                ResponseError::NotLeaderOrFollower,
                "the partition is still being taken over".into(),
            ));
        }
        let addr = format!("{}:{}", info.host, info.port);
        let code = self
            .forward(node, &addr, topic, partition, batch, timeout)
            .await
            .map_err(|e| failed(ResponseError::RequestTimedOut, e))?;
        match code {
            (0, _) => Ok(()),
            (code, message) => Err(failed(
                ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
                message.unwrap_or_default(),
            )),
        }
    }

    /// Sends `batch` to `addr` with acks=all; the partition's error code and message.
    async fn forward(
        &self,
        node: i32,
        addr: &str,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<(i16, Option<String>), String> {
        let mut conns = self.conns.lock().await;
        if !conns.contains_key(&node) || conns[&node].addr() != addr {
            let conn = Conn::connect(addr, timeout, FORWARD_CLIENT)
                .await
                .map_err(|e| e.to_string())?;
            conns.insert(node, conn);
        }
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let conn = conns.get_mut(&node).expect("connected above");
        let response = match conn.call(&request).await {
            Ok((r, _)) => r,
            Err(e) => {
                // The connection's state is unknown after a failed call: start afresh.
                conns.remove(&node);
                return Err(e.to_string());
            }
        };
        let p = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or("the produce response names no partition")?;
        Ok((
            p.error_code,
            p.error_message.as_ref().map(|m| m.to_string()),
        ))
    }
}
