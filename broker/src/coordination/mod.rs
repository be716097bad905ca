//! Cluster coordination state kept in the bucket by compare-and-swap: topics, their
//! configs and partition assignment (`meta/cluster`), and producer id blocks
//! (`meta/producer-ids`).

pub mod groups;
pub mod metadata;
pub mod producer_ids;
pub mod topic_config;

pub use metadata::{ClusterMetadata, MetadataStore, PartitionAssignment, TopicMetadata};
