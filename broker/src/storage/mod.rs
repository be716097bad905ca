//! The storage engine. Durable data lives only in the object store:
//!
//! - `wal/<node>/<incarnation>/<seq>`: WAL objects ([`wal`]), written by [`wal_writer`]
//! - `log/<topic-id>/<partition>/<base-offset>`: segments ([`segment`])
//! - `log/<topic-id>/<partition>/manifest/<version>`: manifests ([`manifest`])
//! - `meta/...`: cluster metadata, kept by `coordination`
//!
//! Every compare-and-swap is a put-if-absent of a new version ([`versioned`]). The
//! protocol and its invariants are written down in `docs/storage-protocol.md`.

pub mod cache;
pub mod engine;
pub mod error;
pub mod faults;
pub mod manifest;
pub mod object;
pub mod partition;
pub mod producer;
pub mod segment;
pub mod versioned;
pub mod wal;
pub mod wal_gc;
pub mod wal_writer;

pub use engine::{Appended, EngineConfig, LogEngine};
pub use error::StorageError;
pub use object::Store;
pub use partition::{Offsets, PartitionLog};
