//! The autoscaler and the balancer, as pure functions over recorded signals, so they are
//! tested on traces and simulated without a cluster. Nothing here has effects: the
//! controller's step `controller::cluster::apply_autoscale` applies the decisions.
//!
//! - [`decide`]: desired brokers = the maximum over signals (throughput against a
//!   per-broker target, consumer lag against a threshold with KEDA's activation and
//!   persistent-lag semantics, CPU when known), with HPA's behaviour: tolerance, scale
//!   up at once within step limits, scale down only after a stabilisation window,
//!   min/max.
//! - [`scale`]: the step towards the decision: scale out at once, drain before a
//!   scale-in.
//! - [`balance`]: leadership moves (metadata only) that bring broker load — throughput,
//!   not partition counts — within tolerance, and the drain plan before a scale-in.

pub mod balance;
pub mod decide;
pub mod scale;

pub use balance::{broker_loads, plan_moves, BrokerLoad, Move, PartitionLoad};
pub use decide::{Autoscaler, Decision, Policy, Signal, Signals};
pub use scale::{scale_step, FleetNode, FleetView, Phase, ScaleStep};
