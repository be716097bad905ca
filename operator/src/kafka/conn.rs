//! One Kafka connection: size-prefixed frames over a tokio `TcpStream`, request headers
//! and response decoding with the kafka-protocol crate, every call bounded in time.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::AdminError;

/// Largest response frame accepted (metadata of many topics stays far below it).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const CLIENT_ID: &str = "sluice-operator";

/// The versions this client implements for each API it uses: the highest version both
/// sides support is used.
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 9, 12),
    (ApiKey::CreateTopics, 5, 7),
    (ApiKey::CreatePartitions, 2, 3),
    (ApiKey::DeleteTopics, 4, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::AlterPartitionReassignments, 0, 0),
];

/// A connection to one broker with the API versions negotiated on it.
pub struct Conn {
    addr: String,
    stream: TcpStream,
    timeout: Duration,
    next_correlation_id: i32,
    versions: HashMap<i16, i16>,
}

impl Conn {
    /// Connects to `addr` (`host:port`) and negotiates versions with ApiVersions.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, AdminError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| AdminError::Timeout {
                addr: addr.to_string(),
                what: "connect".into(),
            })?
            .map_err(|source| AdminError::Io {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            addr: addr.to_string(),
            stream,
            timeout,
            next_correlation_id: 1,
            versions: HashMap::new(),
        };
        // ApiVersions v0 is understood by every broker; its answer lists the rest.
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response: ApiVersionsResponse = conn.call_version(&request, 3).await?;
        if response.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::ApiVersions,
                addr,
                response.error_code,
                None,
            ));
        }
        for (key, min, max) in CLIENT_VERSIONS {
            let Some(theirs) = response.api_keys.iter().find(|k| k.api_key == *key as i16) else {
                continue;
            };
            let version = (*max).min(theirs.max_version);
            if version >= (*min).max(theirs.min_version) {
                conn.versions.insert(*key as i16, version);
            }
        }
        Ok(conn)
    }

    /// The negotiated version of `key`, or `Unsupported` when there is none in common.
    pub fn version(&self, key: ApiKey) -> Result<i16, AdminError> {
        self.versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| AdminError::Unsupported {
                addr: self.addr.clone(),
                api: format!("{key:?}"),
            })
    }

    /// Sends `request` at the negotiated version and decodes the response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
    ) -> Result<(R::Response, i16), AdminError> {
        let key = api_key::<R>();
        let version = self.version(key)?;
        Ok((self.call_version(request, version).await?, version))
    }

    /// Sends `request` at `version`, whatever was negotiated.
    pub async fn call_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, AdminError> {
        let key = api_key::<R>();
        let protocol = |reason: String| AdminError::Protocol {
            addr: self.addr.clone(),
            api: format!("{key:?} v{version}"),
            reason,
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        encode_request_header_into_buffer(&mut buf, &header)
            .map_err(|e| protocol(format!("encoding the header: {e:#}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| protocol(format!("encoding the request: {e:#}")))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        let what = format!("{key:?} v{version}");
        let mut frame = tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&buf).await?;
            let len = self.stream.read_i32().await?;
            if len < 0 || len as usize > MAX_RESPONSE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response frame of {len} bytes"),
                ));
            }
            let mut body = vec![0u8; len as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(bytes::Bytes::from(body))
        })
        .await
        .map_err(|_| AdminError::Timeout {
            addr: self.addr.clone(),
            what: what.clone(),
        })?
        .map_err(|source| AdminError::Io {
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

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("every kafka-protocol request type has a known key")
}
