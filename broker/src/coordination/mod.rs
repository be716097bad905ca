//! Cluster coordination through the bucket: topics, configs, partition assignment,
//! nodes and the controller lease (`meta/cluster`, compare-and-swap), heartbeats
//! (`meta/nodes/<id>/heartbeat`), producer id blocks (`meta/producer-ids`), the
//! controller's decisions ([`controller`], [`placement`]), topic administration
//! ([`topics`]) and consumer groups ([`groups`]). Nothing here imports `server`.

pub mod controller;
pub mod groups;
pub mod liveness;
pub mod metadata;
pub mod placement;
pub mod producer_ids;
pub mod topic_config;
pub mod topics;

#[cfg(test)]
pub(crate) mod testing;

pub use metadata::{ClusterMetadata, MetadataStore, PartitionAssignment, TopicMetadata};
