//! One client connection: frames are read and dispatched in order, handlers run
//! concurrently, and responses are written back in request order (Kafka's contract).
//! Produce assigns offsets before the next request is read, so pipelined produce
//! requests keep their order while their durability waits overlap.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use sluice_protocol::codec::peek_key_version;
use sluice_protocol::ProtocolError;
use sluice_protocol::{decode_request, encode_response, versions, FrameDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::handlers::{self, Reply};
use super::Broker;
use crate::metrics::KindLabel;

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
    let mut frames = FrameDecoder::new(broker.args.max_request_bytes);
    loop {
        let frame = match read_frame(&mut reader, &mut frames).await {
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

/// Reads until the next whole frame; `Ok(None)` when the peer closed between frames. A
/// frame over the size limit is refused before its body is read.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    frames: &mut FrameDecoder,
) -> Result<Option<Bytes>, ProtocolError> {
    loop {
        let n = reader.read(frames.unfilled()).await?;
        if n == 0 {
            return frames.closed().map(|()| None);
        }
        if let Some(frame) = frames.filled(n)? {
            return Ok(Some(frame));
        }
    }
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
        .get_or_create(&crate::metrics::ApiLabel {
            api: versions::name(key),
        })
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
