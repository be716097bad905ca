//! Deterministic simulation of Sluice's storage and leadership protocol: several real
//! brokers, their controller role, producers and consumers in one process under
//! simulated time (turmoil), on a simulated bucket with injected faults, driven by one
//! seed. See docs/simulation.md.

pub mod bucket;
pub mod checker;
pub mod client;
pub mod host;
pub mod report;
pub mod run;
pub mod schedule;
pub mod trace;
pub mod world;

pub use run::{run, run_seeds, shrink, Outcome, RunConfig, Stats};
pub use schedule::Schedule;
