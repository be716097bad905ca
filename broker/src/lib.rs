//! Sluice broker: a Kafka-compatible broker whose only durable store is an object store.
//!
//! - [`clock`]: wall-clock time for timestamps and expiry
//! - [`storage`]: the log engine on object storage (WAL, segments, manifests)
//! - [`security`]: listeners' TLS and SASL logins, credentials kept in the bucket
//! - [`coordination`]: cluster metadata (topics, configs, assignment) kept by CAS
//! - [`server`]: connections, request handlers, the metrics endpoint
//!
//! The Kafka wire protocol (framing, codec, supported APIs, record batches) is the
//! `sluice-protocol` crate.

pub mod clock;
pub mod config;
pub mod coordination;
pub mod evidence;
pub mod governance;
pub mod lake;
pub mod metrics;
pub mod security;
pub mod server;
pub mod storage;
