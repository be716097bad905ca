//! One Kafka connection: requests framed and encoded by `sluice-protocol` over a tokio
//! `TcpStream`, responses decoded with the kafka-protocol crate, every call bounded in time.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use sluice_protocol::codec::api_key_of;
use sluice_protocol::{encode_request, versions, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::AdminError;

/// Largest response frame accepted (metadata of many topics stays far below it).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const CLIENT_ID: &str = "sluice-operator";

/// The versions this client implements for each API it uses, the one place its request
/// versions come from: the highest version both sides support is used.
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
        // ApiVersions first, at the highest version this client implements; its answer
        // lists the rest.
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let (_, api_versions) = client_range(ApiKey::ApiVersions).expect("ApiVersions is listed");
        let response: ApiVersionsResponse = conn.call_version(&request, api_versions).await?;
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
            let theirs = (theirs.min_version, theirs.max_version);
            if let Some(version) = versions::negotiate((*min, *max), theirs) {
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
        let key = api_key_of::<R>();
        let version = self.version(key)?;
        Ok((self.call_version(request, version).await?, version))
    }

    /// Sends `request` at `version`, whatever was negotiated.
    pub async fn call_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, AdminError> {
        let key = api_key_of::<R>();
        let protocol = |reason: String| AdminError::Protocol {
            addr: self.addr.clone(),
            api: format!("{key:?} v{version}"),
            reason,
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let client_id = Some(StrBytes::from_static_str(CLIENT_ID));
        let request = encode_request(request, version, correlation_id, client_id)
            .map_err(|e| protocol(e.to_string()))?;

        let what = format!("{key:?} v{version}");
        let mut frame = tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&request).await?;
            read_frame(&mut self.stream).await
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

/// The range of `key` in [`CLIENT_VERSIONS`].
fn client_range(key: ApiKey) -> Option<(i16, i16)> {
    CLIENT_VERSIONS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// Reads one response frame; the broker closing the connection first is an error.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Bytes> {
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
    use super::*;

    #[test]
    fn every_client_range_can_be_encoded_and_meets_the_sluice_broker() {
        for (key, min, max) in CLIENT_VERSIONS {
            let codec = key.valid_versions();
            assert!(
                codec.min <= *min && *max <= codec.max,
                "{key:?} {min}..={max}"
            );
            let broker = versions::range(*key).expect("the Sluice broker implements it");
            assert!(
                versions::negotiate((*min, *max), broker).is_some(),
                "{key:?} {min}..={max} misses the broker's {broker:?}"
            );
        }
    }
}
