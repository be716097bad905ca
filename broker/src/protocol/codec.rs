//! Request decoding and response encoding on top of the kafka-protocol crate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use super::versions;

#[derive(Debug, Error)]
pub enum ProtocolError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    #[error("request too short for a header: {0} bytes")]
    ShortHeader(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed {key:?} v{version} request: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {key:?} v{version} response: {reason}")]
    Encode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

impl ProtocolError {
    /// A short label for the protocol error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::Io(_) => "io",
            ProtocolError::FrameTooLarge { .. } => "frame_too_large",
            ProtocolError::NegativeFrameSize(_) => "negative_frame_size",
            ProtocolError::TruncatedFrame => "truncated_frame",
            ProtocolError::ShortHeader(_) => "short_header",
            ProtocolError::UnknownApiKey(_) => "unknown_api_key",
            ProtocolError::UnsupportedVersion { .. } => "unsupported_version",
            ProtocolError::Malformed { .. } => "malformed",
            ProtocolError::Encode { .. } => "encode",
        }
    }
}

/// A request ready for a handler.
#[derive(Debug)]
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Peeks at the API key and version of a frame.
pub fn peek_key_version(frame: &[u8]) -> Result<(i16, i16, i32), ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::ShortHeader(frame.len()));
    }
    let mut b = frame;
    Ok((b.get_i16(), b.get_i16(), b.get_i32()))
}

/// Decodes one frame (without its size prefix) into a header and body. Versions outside
/// [`versions::SUPPORTED`] are refused here, so handlers only see what they implement.
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, ProtocolError> {
    let (raw_key, version, _) = peek_key_version(&frame)?;
    let api_key = ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApiKey(raw_key))?;
    if !versions::is_supported(api_key, version) {
        return Err(ProtocolError::UnsupportedVersion {
            key: api_key,
            version,
        });
    }
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        key: api_key,
        version,
        reason: format!("{e:#}"),
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut buf, version).map_err(malformed)?;
    Ok(DecodedRequest {
        api_key,
        version,
        header,
        body,
    })
}

/// Encodes a response with its header and the 4-byte size prefix.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let fail = |e: anyhow::Error| ProtocolError::Encode {
        key: api_key,
        version,
        reason: format!("{e:#}"),
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(fail)?;
    body.encode(&mut buf, version).map_err(fail)?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{encode_request_header_into_buffer, StrBytes};

    fn frame(key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_supported_request() {
        let f = frame(
            ApiKey::ApiVersions,
            3,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        let req = decode_request(f).unwrap();
        assert_eq!(req.api_key, ApiKey::ApiVersions);
        assert_eq!(req.header.correlation_id, 42);
    }

    #[test]
    fn refuses_unknown_keys_unsupported_versions_and_garbage() {
        let f = frame(
            ApiKey::Metadata,
            13,
            &RequestKind::Metadata(MetadataRequest::default()),
        );
        assert!(matches!(
            decode_request(f),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            decode_request(unknown),
            Err(ProtocolError::UnknownApiKey(0x7f00))
        ));
        let truncated = frame(
            ApiKey::Metadata,
            9,
            &RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![]))),
        )
        .slice(..12);
        assert!(matches!(
            decode_request(truncated),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1])),
            Err(ProtocolError::ShortHeader(2))
        ));
    }
}
