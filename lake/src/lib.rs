//! Sluice's lake output (`docs/lake.md`): a feed's records as rows of an Apache Iceberg
//! table, each with its topic, partition and offset, committed exactly once with the
//! offset ranges every snapshot added in its summary. The catalogs and the table format
//! are iceberg-rust's; this crate decides the columns, the lineage and the commit rule.
//! It reads no Kafka data itself: the broker hands it rows (`broker/src/lake`).
//!
//! Two table modes (`spec::TableMode`): raw (key, value and headers as bytes) and
//! schema (a column per field of the feed's registered schema, evolving with it).
//!
//! Layers, lowest first: `spec`, `lineage`, `columns`, `rows`, `evolution` (with
//! `avro_columns`, `json_columns`) and `values` (with `avro_values`) are pure;
//! `catalog`, `fence` and `table` talk to a catalog; `writer` writes data files;
//! `commit` decides and makes a commit; `rewrite` commits a snapshot that replaces
//! files, which `compaction` uses.

mod avro_columns;
mod avro_values;
pub mod catalog;
pub mod columns;
pub mod commit;
pub mod compaction;
pub mod copy_rows;
pub mod error;
pub mod evolution;
pub mod fence;
mod json_columns;
pub mod lineage;
pub mod maintenance;
pub mod replay;
pub mod rewrite;
pub mod rows;
pub mod spec;
pub mod table;
pub mod values;
pub mod writer;

pub use catalog::CatalogConfig;
pub use error::{LakeError, Result};
pub use evolution::{table_schema, Evolution, NewColumn};
pub use rows::Row;
pub use spec::TableSpec;
pub use table::FeedSchema;
pub use values::{AvroSchemas, ValueFormat};
