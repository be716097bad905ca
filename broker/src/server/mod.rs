//! The broker process: startup and recovery, the Kafka listener, request handlers,
//! background retention, the metrics endpoint, and graceful shutdown.

pub mod broker;
pub mod connection;
pub mod fleet;
pub mod handlers;
pub mod http;

pub use broker::Broker;
