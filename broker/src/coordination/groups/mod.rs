//! Consumer groups. A broker coordinates the groups whose `__consumer_offsets` partition
//! it leads; committed offsets live in that partition, so they share the engine's
//! durability and move with it.
//!
//! - [`coordinator`]: the [`GroupCoordinator`]: membership entry points, timers, listing
//! - [`ownership`]: which offsets partitions are loaded here, and the bucket's word on it
//! - [`commits`]: who may commit, durable commits and compaction, OffsetDelete
//! - [`offsets`]: the offsets records and the in-memory table of committed offsets
//! - [`offsets_topic`]: the offsets topic's id, size, coordinators and creation
//! - [`classic`]: one group under the classic JoinGroup/SyncGroup protocol
//! - [`kip848`]: one group under the KIP-848 ConsumerGroupHeartbeat protocol
//! - [`assignor`]: the server-side assignor of KIP-848 groups

pub mod assignor;
pub mod classic;
pub mod commits;
pub mod coordinator;
pub mod kip848;
pub mod offsets;
pub mod offsets_topic;
pub mod ownership;

#[cfg(test)]
mod tests;

pub use commits::MAX_METADATA_BYTES;
pub use coordinator::{
    ConsumerGroupTiming, GroupCoordinator, MAX_SESSION_TIMEOUT, MIN_SESSION_TIMEOUT,
};
