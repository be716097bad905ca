//! The Kafka wire protocol: framing, request decoding, response encoding, the versions we
//! implement, and the record batch format. Sans-IO: nothing here touches a socket.

pub mod codec;
pub mod frame;
pub mod record_batch;
pub mod versions;

pub use codec::{decode_request, encode_response, DecodedRequest, ProtocolError};
