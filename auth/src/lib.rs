//! The SASL mechanisms and the TLS principal mapping of the broker's security boundary:
//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and PLAIN (RFC 4616) as Apache Kafka speaks them,
//! Kafka's `ssl.principal.mapping.rules` (KIP-371), and Kafka's ACL model ([`acl`]), which
//! the broker enforces and the operator reconciles from Feeds.
//!
//! Everything here is pure: bytes in, bytes or a decision out, no I/O and no runtime. The
//! inputs are unauthenticated network bytes, so every parser is bounded
//! ([`MAX_MESSAGE_LEN`], [`MAX_USERNAME_LEN`]), returns an error instead of panicking, and
//! can be fuzzed on its own (`fuzz/fuzz_targets/sasl.rs`).
//!
//! A SCRAM exchange, with the test client standing in for a Kafka client:
//!
//! ```
//! use sluice_auth::{Mechanism, ScramClient, ScramCredential, ScramServer};
//!
//! let stored = ScramCredential::generate(Mechanism::Sha512, "pencil", 4096);
//! let mut client = ScramClient::new(Mechanism::Sha512, "alice", "pencil");
//! let (server, server_first) =
//!     ScramServer::start(Mechanism::Sha512, &client.first(), |user| {
//!         (user == "alice").then(|| stored.clone())
//!     })?;
//! let (user, server_final) = server.finish(&client.final_message(&server_first)?)?;
//! client.verify_server_final(&server_final)?;
//! assert_eq!(user, "alice");
//! # Ok::<(), sluice_auth::SaslError>(())
//! ```

pub mod acl;
mod b64;
pub mod error;
pub mod mapping;
pub mod plain;
pub mod scram;

pub use error::{MappingError, SaslError};
pub use mapping::PrincipalMapper;
pub use plain::PlainCredentials;
pub use scram::client::ScramClient;
pub use scram::{Mechanism, ScramCredential, ScramServer};

/// The largest SASL message accepted, in bytes. Real ones are a few hundred bytes; the
/// bound keeps a hostile client from making the broker hash or copy megabytes.
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;

/// The longest username accepted, in bytes (after decoding).
pub const MAX_USERNAME_LEN: usize = 1024;
