//! The Kafka wire protocol as Sluice speaks it: framing, request decoding and response
//! encoding, the one table of supported APIs, and the record batch format. Sans-IO:
//! nothing here touches a socket, except the optional tokio client connection
//! (feature `client`, secured with TLS and SASL/SCRAM by feature `client-security`)
//! that the operator and the broker's forwarding share.

#[cfg(feature = "client")]
pub mod client;
pub mod codec;
pub mod error;
pub mod frame;
pub mod record_batch;
pub mod versions;

pub use codec::{decode_request, encode_request, encode_response, DecodedRequest};
pub use error::ProtocolError;
pub use frame::FrameDecoder;
