//! The broker process: its shared state ([`broker`]), start-up and shutdown
//! ([`startup`]), its part in the fleet ([`fleet`]), the Kafka listener ([`connection`])
//! with its request handlers ([`handlers`]), and the metrics and admin endpoint ([`http`]).

mod authorization;
pub mod broker;
pub mod connection;
pub mod fleet;
pub mod handlers;
pub mod http;
mod inter_broker;
mod quota;
mod registry_api;
pub mod session;
pub mod startup;

pub use broker::Broker;
