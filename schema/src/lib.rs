//! A Confluent-compatible Schema Registry and the record validators of the produce path,
//! sans-IO: the registry's whole state is one serde value ([`registry::Registry`]) that the
//! broker persists with compare-and-swap, the REST API is a pure function ([`api::route`]) from
//! a request and a state to a response and maybe a new state, and [`validate::Validator`]
//! checks record values against registered schemas (compiled once, used for many records).

pub mod api;
pub mod avro;
pub mod compat;
pub mod error;
pub mod evidence;
pub mod json_schema;
pub mod lake_status;
pub mod registry;
pub mod replay;
pub mod stored;
pub mod table_config;
pub mod topic_configs;
pub mod validate;
pub mod wire;

pub use api::{route, ApiRequest, ApiResponse};
pub use compat::Compatibility;
pub use error::RegistryError;
pub use registry::{Registry, SchemaType, StoredSchema};
pub use validate::{Format, Invalid, Level, Reason, Validator};
