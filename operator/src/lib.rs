//! The Sluice operator: `SecurityLakeCluster` and `Feed` custom resources and their
//! controllers.
//!
//! - [`autoscale`]: the autoscaler and balancer decisions, pure functions.
//! - [`crd`]: the resource types (no logic beyond names and defaults).
//! - [`controller`]: one reconciler per kind, each split into dereference → validate →
//!   build (pure) → apply → status.
//! - [`kafka`]: a small Kafka admin client over the wire protocol.
//! - [`http`]: the HTTP client for the brokers' HTTP listener; [`registry`]: their
//!   schema registry API; [`lake`]: their lake writers' reports.
//! - [`provision`]: cloud resources (bucket, IAM role, VPC endpoint) per provider.
//! - [`metrics`]: the operator's own Prometheus metrics, and parsing of the brokers'.
//! - [`schemas`]: JSON schemas for `kubeconform` (CI checks of the chart and examples).

pub mod autoscale;
pub mod controller;
pub mod crd;
pub mod error;
pub mod http;
pub mod kafka;
pub mod lake;
pub mod metrics;
pub mod provision;
pub mod registry;
pub mod schemas;

pub use error::{Error, Result};
