//! One client connection to a Kafka broker over tokio (feature `client`): requests framed
//! and encoded by this crate, responses decoded with the kafka-protocol crate, versions
//! negotiated with ApiVersions, every call bounded in time. The only I/O in this crate;
//! the operator's admin client and the broker's forwarding to other brokers use it.
//!
//! The connection runs over any byte stream ([`Stream`]): plain TCP ([`Conn::connect`]),
//! or whatever the caller layers on it first (TLS) and hands to [`Conn::handshake`].
//! With feature `client-security`, [`connect`] does that layering as a listener asks:
//! TLS and a SASL/SCRAM login ([`ClientSecurity`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::api_key_of;
use crate::{encode_request, versions, FrameDecoder};

#[cfg(feature = "client-security")]
mod security;
#[cfg(feature = "client-security")]
pub use security::{connect, ClientSecurity, ConnectError, ScramLogin, TlsClient};

/// Largest response frame accepted (metadata of many topics stays far below it).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What went wrong talking to a broker: which broker, which call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} to {addr} timed out")]
    Timeout { addr: String, what: String },
    #[error("{api} with {addr}: {reason}")]
    Protocol {
        addr: String,
        api: String,
        reason: String,
    },
    #[error("{addr} supports no version of {api} this client implements")]
    Unsupported { addr: String, api: String },
    #[error("ApiVersions with {addr} failed with error code {code}")]
    ApiVersions { addr: String, code: i16 },
}

impl ClientError {
    /// Transport problems (the broker may be restarting): worth a retry soon.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Io { .. } | ClientError::Timeout { .. })
    }
}

/// Who is connecting and which versions of which APIs it implements.
#[derive(Debug, Clone, Copy)]
pub struct ClientSpec {
    pub client_id: &'static str,
    /// `(api, min, max)`: the highest version both sides support is used.
    pub versions: &'static [(ApiKey, i16, i16)],
}

/// A byte stream a connection runs over: TCP, or TLS over TCP. Sync so that a `Conn`
/// stays as shareable as it was over a bare `TcpStream`.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// Opens a TCP connection to `addr` (`host:port`) within `timeout`, with Nagle off:
/// requests are single writes that wait for their answer.
pub async fn tcp_connect(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_string(),
            what: "connect".into(),
        })?
        .map_err(|source| ClientError::Io {
            addr: addr.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A connection to one broker with the API versions negotiated on it.
pub struct Conn {
    addr: String,
    stream: Box<dyn Stream>,
    timeout: Duration,
    client_id: &'static str,
    next_correlation_id: i32,
    versions: HashMap<i16, i16>,
    /// When the broker ends this connection's SASL login (KIP-368), if it does.
    session_expires_at: Option<Instant>,
}

impl Conn {
    /// Connects to `addr` (`host:port`) over plain TCP and negotiates versions with
    /// ApiVersions.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        spec: ClientSpec,
    ) -> Result<Conn, ClientError> {
        let stream = tcp_connect(addr, timeout).await?;
        Self::handshake(addr, Box::new(stream), timeout, spec).await
    }

    /// Negotiates versions with ApiVersions over `stream`, already connected to `addr`
    /// (and secured, if it is to be): `addr` only names the broker in errors.
    pub async fn handshake(
        addr: &str,
        stream: Box<dyn Stream>,
        timeout: Duration,
        spec: ClientSpec,
    ) -> Result<Conn, ClientError> {
        let mut conn = Conn {
            addr: addr.to_string(),
            stream,
            timeout,
            client_id: spec.client_id,
            next_correlation_id: 1,
            versions: HashMap::new(),
            session_expires_at: None,
        };
        // ApiVersions first, at the highest version this client implements (v3 if it
        // lists none); its answer lists the rest.
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(spec.client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let api_versions = spec
            .versions
            .iter()
            .find(|(k, _, _)| *k == ApiKey::ApiVersions)
            .map_or(3, |(_, _, max)| *max);
        let response: ApiVersionsResponse = conn.call_version(&request, api_versions).await?;
        if response.error_code != 0 {
            return Err(ClientError::ApiVersions {
                addr: addr.to_string(),
                code: response.error_code,
            });
        }
        for (key, min, max) in spec.versions {
            let Some(theirs) = response.api_keys.iter().find(|k| k.api_key == *key as i16) else {
                continue;
            };
            let theirs = (theirs.min_version, theirs.max_version);
            if let Some(version) = versions::negotiate((*min, *max), theirs) {
                conn.versions.insert(*key as i16, version);
            }
        }
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// When the broker ends the SASL login of this connection (KIP-368 session
    /// lifetime), if it ends it: after it, any request but a new login closes the
    /// connection, so a long-lived connection is replaced before then. None without a
    /// login, or when the login lasts as long as the connection.
    pub fn session_expires_at(&self) -> Option<Instant> {
        self.session_expires_at
    }

    /// The negotiated version of `key`, or `Unsupported` when there is none in common.
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        self.versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| ClientError::Unsupported {
                addr: self.addr.clone(),
                api: format!("{key:?}"),
            })
    }

    /// Sends `request` at the negotiated version and decodes the response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
    ) -> Result<(R::Response, i16), ClientError> {
        let key = api_key_of::<R>();
        let version = self.version(key)?;
        Ok((self.call_version(request, version).await?, version))
    }

    /// Sends `request` at `version`, whatever was negotiated.
    pub async fn call_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let key = api_key_of::<R>();
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            api: format!("{key:?} v{version}"),
            reason,
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let client_id = Some(StrBytes::from_static_str(self.client_id));
        let request = encode_request(request, version, correlation_id, client_id)
            .map_err(|e| protocol(e.to_string()))?;

        let what = format!("{key:?} v{version}");
        let mut frame = tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&request).await?;
            read_frame(&mut self.stream).await
        })
        .await
        .map_err(|_| ClientError::Timeout {
            addr: self.addr.clone(),
            what: what.clone(),
        })?
        .map_err(|source| ClientError::Io {
            addr: self.addr.clone(),
            source,
        })?;

        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(|e| protocol(format!("decoding the response header: {e:#}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol(format!(
                "correlation id {} in answer to {correlation_id}",
                header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut frame, version)
            .map_err(|e| protocol(format!("decoding the response: {e:#}")))?;
        if frame.has_remaining() {
            return Err(protocol(format!(
                "{} bytes left after the response",
                frame.remaining()
            )));
        }
        Ok(response)
    }
}

/// Reads one response frame; the broker closing the connection first is an error.
async fn read_frame(stream: &mut (impl AsyncRead + Unpin + ?Sized)) -> std::io::Result<Bytes> {
    let mut frames = FrameDecoder::new(MAX_RESPONSE_BYTES);
    loop {
        let n = stream.read(frames.unfilled()).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let frame = frames
            .filled(n)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if let Some(frame) = frame {
            return Ok(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ResponseKind;

    use super::*;
    use crate::{decode_request, encode_response};

    /// A stream that is not TCP (as TLS is not) carries the ApiVersions negotiation.
    #[tokio::test]
    async fn handshake_runs_over_any_stream() {
        let (client, mut broker) = tokio::io::duplex(64 * 1024);
        let broker = tokio::spawn(async move {
            let frame = read_frame(&mut broker).await.unwrap();
            let request = decode_request(frame).unwrap();
            assert_eq!(request.api_key, ApiKey::ApiVersions);
            let body =
                ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(vec![
                    ApiVersion::default()
                        .with_api_key(ApiKey::ApiVersions as i16)
                        .with_max_version(3),
                    ApiVersion::default()
                        .with_api_key(ApiKey::Metadata as i16)
                        .with_min_version(0)
                        .with_max_version(10),
                ]));
            let response = encode_response(
                request.api_key,
                request.version,
                request.header.correlation_id,
                &body,
            )
            .unwrap();
            broker.write_all(&response).await.unwrap();
        });
        let spec = ClientSpec {
            client_id: "test",
            versions: &[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 9, 12)],
        };
        let conn = Conn::handshake("duplex", Box::new(client), Duration::from_secs(5), spec)
            .await
            .unwrap();
        broker.await.unwrap();
        assert_eq!(conn.version(ApiKey::Metadata).unwrap(), 10);
        assert!(matches!(
            conn.version(ApiKey::Produce),
            Err(ClientError::Unsupported { .. })
        ));
    }
}
