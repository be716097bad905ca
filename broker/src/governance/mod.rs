//! Governance at the ingestion boundary: the schema registry every broker serves
//! ([`registry`]), checking a produce batch against its topic's policy ([`check`]), and
//! rewriting a batch whose invalid records go to a dead-letter topic ([`rewrite`]) and
//! writing them there ([`dead_letter`]). The
//! policy itself is a topic config (`coordination::topic_config::SchemaPolicy`); the
//! produce handler decides what a verdict means for the producer
//! (`docs/schema-validation.md`).

pub mod check;
pub mod dead_letter;
pub mod registry;
pub mod rewrite;

pub use dead_letter::DeadLetterWriter;
pub use registry::SchemaRegistry;
