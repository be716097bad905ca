//! The one error type of the protocol crate: what can be wrong with a frame or a request,
//! with a short label per kind for the broker's protocol error counter.

use kafka_protocol::messages::ApiKey;
use thiserror::Error;

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
    #[error("cannot encode {key:?} v{version} {what}: {reason}")]
    Encode {
        key: ApiKey,
        version: i16,
        /// `request` or `response`.
        what: &'static str,
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
