//! The storage engine. Durable data lives only in the object store:
//!
//! - `wal/<node>/<incarnation>/<seq>`: WAL objects ([`wal`]), written by [`wal_writer`],
//!   sealed by a fence object ([`fence`]), read back by [`wal_replay`], collected by
//!   [`wal_gc`]
//! - `log/<topic-id>/<partition>/<base>-<node>-<incarnation>-<seq>`: segments
//!   ([`segment`]), each key written once
//! - `log/<topic-id>/<partition>/manifest/<version>`: manifests ([`manifest`])
//! - `meta/nodes/<node>/incarnation/<n>`: incarnations ([`engine`])
//! - `meta/...` otherwise: cluster metadata, kept by `coordination`
//!
//! Versions, incarnations, WAL sequences and a segment's base offset are zero-padded to
//! 20 digits. Every compare-and-swap is a put-if-absent of a new version ([`versioned`]).
//! The protocol and its numbered invariants (I1..I13, which the code cites) are
//! written down in `docs/storage-protocol.md`.

pub mod cache;
pub mod document;
pub mod engine;
pub mod error;
pub mod faults;
pub mod fence;
pub mod manifest;
pub mod object;
pub mod partition;
pub mod producer;
pub mod segment;
pub mod versioned;
pub mod wal;
pub mod wal_gc;
pub mod wal_replay;
pub mod wal_writer;

pub use engine::{Appended, EngineConfig, LogEngine};
pub use error::StorageError;
pub use object::Store;
pub use partition::{Offsets, PartitionLog, ReadLimit};
