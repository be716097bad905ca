//! One client connection: frames are read and dispatched in order, handlers run
//! concurrently, and responses are written back in request order (Kafka's contract).
//! Produce assigns offsets before the next request is read, so pipelined produce
//! requests keep their order while their durability waits overlap.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::handlers::{self, Reply};
use super::Broker;
use crate::metrics::KindLabel;
use crate::protocol::codec::{peek_key_version, ProtocolError};
use crate::protocol::{decode_request, encode_response, frame};

/// Requests of one connection being handled at once.
const MAX_IN_FLIGHT: usize = 32;

pub async fn serve(broker: Arc<Broker>, socket: TcpStream, peer: SocketAddr) {
    let (mut reader, mut writer) = socket.into_split();
    let (tx, mut rx) = mpsc::channel::<JoinHandle<Outgoing>>(MAX_IN_FLIGHT);
    let write_loop = tokio::spawn(async move {
        while let Some(task) = rx.recv().await {
            match task.await {
                Ok(Outgoing::Bytes(bytes)) => {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Ok(Outgoing::Nothing) => {}
                Ok(Outgoing::Close) => {
                    let _ = writer.shutdown().await;
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "request handler panicked; closing connection");
                    return;
                }
            }
        }
    });
    let max = broker.args.max_request_bytes;
    loop {
        let frame = match frame::read_frame(&mut reader, max).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                reject(&broker, peer, &e);
                break;
            }
        };
        let task = match handle_frame(&broker, frame, peer).await {
            Ok(task) => task,
            Err(e) => {
                reject(&broker, peer, &e);
                break;
            }
        };
        if tx.send(task).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = write_loop.await;
    debug!(%peer, "connection closed");
}

fn reject(broker: &Broker, peer: SocketAddr, e: &ProtocolError) {
    if !matches!(e, ProtocolError::Io(_)) {
        warn!(%peer, error = %e, "closing connection");
    }
    broker
        .metrics
        .protocol_errors
        .get_or_create(&KindLabel {
            kind: e.kind().to_string(),
        })
        .inc();
}

/// Decodes a frame and starts its handler; the returned task yields the encoded
/// response (`None` for acks=0 produce).
async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<JoinHandle<Outgoing>, ProtocolError> {
    let request = match decode_request(frame.clone()) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            key: ApiKey::ApiVersions,
            ..
        }) => {
            // KIP-511: answer with v0 and our versions so the client can pick one.
            let (_, _, correlation_id) = peek_key_version(&frame)?;
            let body = ResponseKind::ApiVersions(
                ApiVersionsResponse::default()
                    .with_error_code(ResponseError::UnsupportedVersion.code())
                    .with_api_keys(handlers::api_versions::supported()),
            );
            let bytes = encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)?;
            return Ok(tokio::spawn(async move { Outgoing::Bytes(bytes) }));
        }
        Err(e) => return Err(e),
    };
    let key = request.api_key;
    let version = request.version;
    let correlation_id = request.header.correlation_id;
    broker
        .metrics
        .requests
        .get_or_create(&crate::metrics::ApiLabel { api: api_name(key) })
        .inc();
    let pending = handlers::dispatch(broker.clone(), request, peer).await;
    let encode = move |reply: Reply| -> Outgoing {
        match reply {
            Reply::Send(body) => match encode_response(key, version, correlation_id, &body) {
                Ok(bytes) => Outgoing::Bytes(bytes),
                Err(e) => {
                    // Never skip a response: the client would pair later ones wrongly.
                    warn!(error = %e, "closing connection: response failed to encode");
                    Outgoing::Close
                }
            },
            Reply::Silent => Outgoing::Nothing,
            Reply::Close => Outgoing::Close,
        }
    };
    if key == ApiKey::Produce {
        // Offsets are already assigned in request order; only the durability wait runs
        // beside later requests, so pipelined produces share WAL objects.
        return Ok(tokio::spawn(async move { encode(pending.await) }));
    }
    // Everything else takes effect in request order, as on a Kafka broker, which handles
    // one request of a connection at a time.
    let out = encode(pending.await);
    Ok(tokio::spawn(async move { out }))
}

/// What the write loop does for one request, in request order.
enum Outgoing {
    Bytes(Bytes),
    Nothing,
    Close,
}

fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "produce",
        ApiKey::Fetch => "fetch",
        ApiKey::ListOffsets => "list_offsets",
        ApiKey::Metadata => "metadata",
        ApiKey::ApiVersions => "api_versions",
        ApiKey::CreateTopics => "create_topics",
        ApiKey::DeleteTopics => "delete_topics",
        ApiKey::DeleteRecords => "delete_records",
        ApiKey::InitProducerId => "init_producer_id",
        ApiKey::DescribeConfigs => "describe_configs",
        ApiKey::CreatePartitions => "create_partitions",
        ApiKey::IncrementalAlterConfigs => "incremental_alter_configs",
        ApiKey::DescribeCluster => "describe_cluster",
        ApiKey::FindCoordinator => "find_coordinator",
        ApiKey::JoinGroup => "join_group",
        ApiKey::SyncGroup => "sync_group",
        ApiKey::Heartbeat => "heartbeat",
        ApiKey::LeaveGroup => "leave_group",
        ApiKey::OffsetCommit => "offset_commit",
        ApiKey::OffsetFetch => "offset_fetch",
        ApiKey::OffsetDelete => "offset_delete",
        ApiKey::DescribeGroups => "describe_groups",
        ApiKey::ListGroups => "list_groups",
        ApiKey::DeleteGroups => "delete_groups",
        ApiKey::ConsumerGroupHeartbeat => "consumer_group_heartbeat",
        ApiKey::ConsumerGroupDescribe => "consumer_group_describe",
        _ => "other",
    }
}
