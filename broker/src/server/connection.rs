//! One client connection: frames are read and dispatched in order, handlers run
//! concurrently, and responses are written back in request order (Kafka's contract).
//! Produce assigns offsets before the next request is read, so pipelined produce
//! requests keep their order while their durability waits overlap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;
use sluice_protocol::codec::peek_key_version;
use sluice_protocol::ProtocolError;
use sluice_protocol::{decode_request, encode_response, versions, FrameDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::authorization::{self, Check};
use super::handlers::{self, Client, Reply};
use super::quota::{self, Usage};
use super::session::{AfterLogin, Gate, ListenerInfo, Session};
use super::Broker;
use crate::metrics::KindLabel;
use crate::security::tls::certificate_principal;
use crate::security::Principal;

/// Requests of one connection being handled at once.
const MAX_IN_FLIGHT: usize = 32;

/// Largest frame before a SASL login (Kafka's `sasl.server.max.receive.size`): an
/// unauthenticated client cannot make the broker buffer a large request.
const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

/// Serves one accepted connection of `listener`: the TLS handshake first where the
/// listener uses TLS (bounded by the authentication timeout), then Kafka requests.
pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerInfo>,
) {
    let deadline = Instant::now() + broker.security.authentication_timeout;
    if !listener.protocol.uses_tls() {
        let session = Session::new(listener, peer, Principal::anonymous());
        return serve_stream(broker, socket, session, deadline).await;
    }
    let Some(tls) = broker.security.tls.clone() else {
        // startup refuses a TLS listener without a certificate.
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let handshake = tokio::time::timeout_at(deadline, acceptor.accept(socket)).await;
    let probe = Session::new(listener.clone(), peer, Principal::anonymous());
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            probe.count(&broker, "SSL", "failed");
            debug!(%peer, listener = %listener.name, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            probe.count(&broker, "SSL", "timeout");
            debug!(%peer, listener = %listener.name, "TLS handshake timed out");
            return;
        }
    };
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first());
    let principal = match certificate {
        None => Principal::anonymous(),
        Some(cert) => match certificate_principal(cert, &broker.security.principal_mapper) {
            Ok(p) => {
                probe.count(&broker, "SSL", "ok");
                info!(target: "sluice::audit", event = "authentication", result = "ok",
                    mechanism = "SSL", principal = %p, listener = %listener.name, source = %peer);
                p
            }
            Err(reason) => {
                probe.count(&broker, "SSL", "failed");
                warn!(target: "sluice::audit", event = "authentication", result = "failed",
                    mechanism = "SSL", listener = %listener.name, source = %peer, %reason);
                return;
            }
        },
    };
    serve_stream(
        broker,
        stream,
        Session::new(listener, peer, principal),
        deadline,
    )
    .await
}

async fn serve_stream<S>(broker: Arc<Broker>, stream: S, mut session: Session, deadline: Instant)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = session.peer;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<JoinHandle<Outgoing>>(MAX_IN_FLIGHT);
    let write_loop = tokio::spawn(async move {
        while let Some(task) = rx.recv().await {
            match task.await {
                Ok(Outgoing::Bytes(bytes)) => {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                    // TLS keeps the tail of a write buffered until flushed: a client
                    // would wait for the rest of its response. Flush once nothing else
                    // is queued (a no-op on plain TCP).
                    if rx.is_empty() && writer.flush().await.is_err() {
                        return;
                    }
                }
                Ok(Outgoing::Nothing) => {}
                Ok(Outgoing::Final(bytes)) => {
                    let _ = writer.write_all(&bytes).await;
                    let _ = writer.shutdown().await;
                    return;
                }
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
    let mut frames = FrameDecoder::new(if session.authenticated() {
        broker.args.max_request_bytes
    } else {
        MAX_UNAUTHENTICATED_FRAME
    });
    loop {
        let read = if session.authenticated() {
            read_frame(&mut reader, &mut frames).await
        } else {
            match tokio::time::timeout_at(deadline, read_frame(&mut reader, &mut frames)).await {
                Ok(r) => r,
                Err(_) => {
                    session.count(&broker, "SASL", "timeout");
                    debug!(%peer, "closing connection: no SASL login in time");
                    break;
                }
            }
        };
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                reject(&broker, peer, &e);
                break;
            }
        };
        let was_authenticated = session.authenticated();
        let handled = match handle_frame(&broker, frame, &mut session).await {
            Ok(handled) => handled,
            Err(e) => {
                reject(&broker, peer, &e);
                break;
            }
        };
        if !was_authenticated && session.authenticated() {
            frames.set_max_len(broker.args.max_request_bytes);
        }
        if tx.send(handled.task).await.is_err() || handled.last {
            break;
        }
        if !handled.mute.is_zero() {
            // KIP-219: an over-quota client is not read from until its throttle ends.
            tokio::time::sleep(handled.mute).await;
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

/// A request started: the task yielding its encoded response (nothing for acks=0
/// produce), whether it is the connection's last, and how long to wait before reading
/// the next request (a client quota's throttle).
struct Handled {
    task: JoinHandle<Outgoing>,
    last: bool,
    mute: Duration,
}

impl Handled {
    fn ready(out: Outgoing, last: bool) -> Self {
        Handled {
            task: tokio::spawn(async move { out }),
            last,
            mute: Duration::ZERO,
        }
    }
}

/// Decodes a frame and starts its handler.
async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    session: &mut Session,
) -> Result<Handled, ProtocolError> {
    let started = std::time::Instant::now();
    let frame_len = frame.len();
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
            return Ok(Handled::ready(Outgoing::Bytes(bytes), false));
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
    let encode = move |reply: Reply, wait: Duration| -> Outgoing {
        match reply {
            Reply::Send(mut body) => {
                if !wait.is_zero() {
                    quota::set_throttle(&mut body, wait);
                }
                encode_body(key, version, correlation_id, &body)
            }
            Reply::Silent => Outgoing::Nothing,
            Reply::Close => Outgoing::Close,
        }
    };
    match session.gate(key, Instant::now()) {
        Gate::Serve => {}
        Gate::Close(reason) => {
            debug!(peer = %session.peer, api = versions::name(key), reason, "closing connection");
            return Ok(Handled::ready(Outgoing::Close, true));
        }
        Gate::Login => {
            let (body, after) = match request.body {
                RequestKind::SaslHandshake(r) => (
                    ResponseKind::SaslHandshake(session.handshake(broker, &r)),
                    AfterLogin::Continue,
                ),
                RequestKind::SaslAuthenticate(r) => {
                    let (resp, after) = session.authenticate(broker, &r, Instant::now());
                    (ResponseKind::SaslAuthenticate(resp), after)
                }
                _ => unreachable!("the gate lets only SASL requests log in"),
            };
            let out = encode(handlers::reply(body), Duration::ZERO);
            return Ok(match (after, out) {
                (AfterLogin::Close(delay), Outgoing::Bytes(bytes)) => {
                    // The refusal waits, so guessing passwords costs time; no later
                    // request of this connection is read.
                    let task = tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        Outgoing::Final(bytes)
                    });
                    Handled {
                        task,
                        last: true,
                        mute: Duration::ZERO,
                    }
                }
                (_, out) => Handled::ready(out, false),
            });
        }
    }
    let client = Client {
        id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        host: format!("/{}", session.peer.ip()),
        principal: session.principal.clone(),
        listener: session.listener.name.clone(),
        address: session.peer.ip(),
    };
    let user = session.principal.name.clone();
    let client_id = client.id.clone();
    let mut request = request;
    let patch = match authorization::check(broker, &client, version, &mut request.body) {
        Check::Allow => None,
        Check::Narrowed(patch) => Some(patch),
        Check::Deny(body) => {
            let out = encode(Reply::Send(body), Duration::ZERO);
            return Ok(Handled::ready(out, false));
        }
    };
    let pending = handlers::dispatch(broker.clone(), request, client).await;
    let encode = move |mut reply: Reply, wait: Duration| {
        if let (Some(patch), Reply::Send(body)) = (patch, &mut reply) {
            patch(body);
        }
        encode(reply, wait)
    };
    if key == ApiKey::Produce {
        // Offsets are already assigned in request order; only the durability wait runs
        // beside later requests, so pipelined produces share WAL objects.
        let usage = Usage {
            produce_bytes: frame_len,
            fetch_bytes: 0,
            handling: started.elapsed(),
        };
        let wait = quota::throttle(broker, &user, &client_id, &usage);
        return Ok(Handled {
            task: tokio::spawn(async move { encode(pending.await, wait) }),
            last: false,
            mute: wait,
        });
    }
    // Everything else takes effect in request order, as on a Kafka broker, which handles
    // one request of a connection at a time.
    let reply = pending.await;
    let usage = Usage {
        produce_bytes: 0,
        fetch_bytes: match &reply {
            Reply::Send(body) => quota::fetch_bytes(body),
            _ => 0,
        },
        handling: started.elapsed(),
    };
    let wait = quota::throttle(broker, &user, &client_id, &usage);
    Ok(Handled {
        mute: wait,
        ..Handled::ready(encode(reply, wait), false)
    })
}

fn encode_body(key: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Outgoing {
    match encode_response(key, version, correlation_id, body) {
        Ok(bytes) => Outgoing::Bytes(bytes),
        Err(e) => {
            // Never skip a response: the client would pair later ones wrongly.
            warn!(error = %e, "closing connection: response failed to encode");
            Outgoing::Close
        }
    }
}

/// What the write loop does for one request, in request order.
enum Outgoing {
    Bytes(Bytes),
    Nothing,
    /// The last response: send it, then close.
    Final(Bytes),
    Close,
}
