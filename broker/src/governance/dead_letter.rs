//! Writing dead-letter batches to their partition's leader: this broker (an append like
//! any produce) or another one (a Produce request over a connection kept per broker, to
//! its inter-broker listener, with the TLS and login that listener asks for).
//! Returns once the batch is durable, so a client's batch is acknowledged only after its
//! invalid records are safe. The partition is the source partition modulo the
//! dead-letter topic's partition count: the same source always writes to the same
//! dead-letter partition, where its retries are recognised as duplicates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_protocol::client::{self, ClientError, ClientSpec, Conn};
use sluice_protocol::record_batch::BatchHeader;
use tracing::warn;

use crate::coordination::metadata::NodeInfo;
use crate::coordination::ClusterMetadata;
use crate::security::inter_broker::InterBroker;
use crate::storage::LogEngine;

const FORWARD_CLIENT: ClientSpec = ClientSpec {
    client_id: "sluice-dead-letter",
    versions: &[
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Produce, 8, 11),
        // The login on SASL inter-broker listeners (framed tokens: v1 handshake).
        (ApiKey::SaslHandshake, 1, 1),
        (ApiKey::SaslAuthenticate, 0, 2),
    ],
};

/// A connection whose login ends sooner than this (KIP-368) is replaced before a
/// forward: the peer would close it at the first request after the end.
const SESSION_MARGIN: Duration = Duration::from_secs(5);

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

pub struct DeadLetterWriter {
    /// How the other brokers are reached: listener, TLS, login.
    inter_broker: InterBroker,
    /// One connection per broker node, used one request at a time.
    conns: tokio::sync::Mutex<HashMap<i32, Conn>>,
}

impl DeadLetterWriter {
    pub fn new(inter_broker: InterBroker) -> DeadLetterWriter {
        DeadLetterWriter {
            inter_broker,
            conns: tokio::sync::Mutex::default(),
        }
    }

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
        let Some(addr) = peer_address(&self.inter_broker, info) else {
            return Err(failed(
                ResponseError::ListenerNotFound,
                format!(
                    "the leader, node {node}, has no inter-broker listener {}",
                    self.inter_broker.listener
                ),
            ));
        };
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
    /// The connection to `node` is made (with its login) when there is none, after a
    /// failure, when the node moved, or when its login is about to end.
    async fn forward(
        &self,
        node: i32,
        addr: &str,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<(i16, Option<String>), String> {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let mut conns = self.conns.lock().await;
        let usable = conns.get(&node).is_some_and(|c| {
            c.addr() == addr
                && c.session_expires_at()
                    .is_none_or(|end| Instant::now() + SESSION_MARGIN < end)
        });
        if !usable {
            conns.remove(&node);
        }
        let response = loop {
            let reused = conns.contains_key(&node);
            if !reused {
                let conn = self.connect(node, addr, timeout).await?;
                conns.insert(node, conn);
            }
            let conn = conns.get_mut(&node).expect("connected above");
            match conn.call(&request).await {
                Ok((r, _)) => break r,
                Err(e) => {
                    // The connection's state is unknown after a failed call: start afresh.
                    conns.remove(&node);
                    // A kept connection the peer closed (it restarted, or ended an idle
                    // connection) is tried again at once on a new one, as the client
                    // would retry: a batch from an idempotent client is recognised as a
                    // duplicate if the first one did land.
                    if !(reused && matches!(e, ClientError::Io { .. })) {
                        return Err(e.to_string());
                    }
                }
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

    /// A new connection to `node` at `addr`, secured and logged in as the inter-broker
    /// listener asks.
    async fn connect(&self, node: i32, addr: &str, timeout: Duration) -> Result<Conn, String> {
        let security = &self.inter_broker.security;
        client::connect(addr, timeout, FORWARD_CLIENT, security)
            .await
            .map_err(|e| {
                warn!(node, %addr, listener = %self.inter_broker.listener, error = %e, "cannot connect to the broker leading a dead-letter partition");
                e.to_string()
            })
    }
}

/// `host:port` of `node` on the inter-broker listener; a node of an older version
/// (no endpoints per listener) by its one address. None: it has no such listener.
pub fn peer_address(inter_broker: &InterBroker, node: &NodeInfo) -> Option<String> {
    let e = node.endpoint(&inter_broker.listener)?;
    // A bare IPv6 address needs brackets before its port.
    Some(match e.host.contains(':') && !e.host.starts_with('[') {
        true => format!("[{}]:{}", e.host, e.port),
        false => format!("{}:{}", e.host, e.port),
    })
}
