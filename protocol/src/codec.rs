//! Request decoding and response encoding (the broker's side) and request encoding (a
//! client's side) on top of the kafka-protocol crate.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::{frame, versions, ProtocolError};

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
    let fail = encode_error(api_key, version, "response");
    frame::encode_frame(256, |buf| {
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, api_key.response_header_version(version))
            .map_err(fail)?;
        body.encode(buf, version).map_err(fail)
    })
}

/// Encodes a request as `version` with its header and the 4-byte size prefix.
pub fn encode_request<R: Request>(
    body: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<StrBytes>,
) -> Result<Bytes, ProtocolError> {
    let api_key = api_key_of::<R>();
    let fail = encode_error(api_key, version, "request");
    frame::encode_frame(128, |buf| {
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(client_id)
            .encode(buf, api_key.request_header_version(version))
            .map_err(fail)?;
        body.encode(buf, version).map_err(fail)
    })
}

/// The API key of a request type.
pub fn api_key_of<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("every kafka-protocol request type has a known key")
}

fn encode_error(
    key: ApiKey,
    version: i16,
    what: &'static str,
) -> impl Fn(anyhow::Error) -> ProtocolError + Copy {
    move |e| ProtocolError::Encode {
        key,
        version,
        what,
        reason: format!("{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    /// A request frame without its size prefix, as `decode_request` takes it.
    fn request_frame<R: Request>(version: i16, body: &R) -> Bytes {
        let client = Some(StrBytes::from_static_str("test"));
        encode_request(body, version, 42, client)
            .unwrap()
            .slice(frame::SIZE_LEN..)
    }

    #[test]
    fn decodes_a_supported_request() {
        let req = decode_request(request_frame(3, &ApiVersionsRequest::default())).unwrap();
        assert_eq!(req.api_key, ApiKey::ApiVersions);
        assert_eq!(req.header.correlation_id, 42);
    }

    #[test]
    fn refuses_unknown_keys_unsupported_versions_and_garbage() {
        assert!(matches!(
            decode_request(request_frame(13, &MetadataRequest::default())),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            decode_request(unknown),
            Err(ProtocolError::UnknownApiKey(0x7f00))
        ));
        let truncated =
            request_frame(9, &MetadataRequest::default().with_topics(Some(vec![]))).slice(..12);
        assert!(matches!(
            decode_request(truncated),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1])),
            Err(ProtocolError::ShortHeader(2))
        ));
    }

    #[test]
    fn the_table_of_supported_apis_decides_which_versions_get_through() {
        let header_only = |key: ApiKey, version: i16| {
            let mut f = (key as i16).to_be_bytes().to_vec();
            f.extend_from_slice(&version.to_be_bytes());
            f.extend_from_slice(&7i32.to_be_bytes());
            decode_request(Bytes::from(f))
        };
        for api in versions::SUPPORTED {
            for outside in [api.min - 1, api.max + 1] {
                assert!(
                    matches!(
                        header_only(api.key, outside),
                        Err(ProtocolError::UnsupportedVersion { key, version })
                            if key == api.key && version == outside
                    ),
                    "{:?} v{outside} refused",
                    api.key
                );
            }
            for inside in [api.min, api.max] {
                assert!(
                    !matches!(
                        header_only(api.key, inside),
                        Err(ProtocolError::UnsupportedVersion { .. })
                    ),
                    "{:?} v{inside} let through",
                    api.key
                );
            }
        }
        assert!(matches!(
            header_only(ApiKey::EndTxn, 1),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
    }
}
