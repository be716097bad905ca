//! The Kafka wire protocol as Sluice speaks it: framing, request decoding and response
//! encoding, the one table of supported APIs, and the record batch format. Sans-IO:
//! nothing here touches a socket; the broker and the operator's client do the I/O.

pub mod codec;
pub mod error;
pub mod frame;
pub mod record_batch;
pub mod versions;

pub use codec::{decode_request, encode_request, encode_response, DecodedRequest};
pub use error::ProtocolError;
pub use frame::FrameDecoder;
