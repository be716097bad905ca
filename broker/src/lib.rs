//! Sluice broker: a Kafka-compatible broker whose only durable store is an object store.
//!
//! - [`protocol`]: the Kafka wire protocol (sans-IO)
//! - [`clock`]: wall-clock time for timestamps and expiry
//! - [`storage`]: the log engine on object storage (WAL, segments, manifests)
//! - [`coordination`]: cluster metadata (topics, configs, assignment) kept by CAS
//! - [`server`]: connections, request handlers, the metrics endpoint

pub mod clock;
pub mod config;
pub mod coordination;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod storage;
