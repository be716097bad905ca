//! What can go wrong writing a table, as one error type for the broker to log, count and
//! report in a Feed's status.

/// A failure of the lake writer. `Iceberg` carries the catalog's or file store's own error.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("invalid table setting: {0}")]
    Spec(String),
    #[error("catalog configuration: {0}")]
    CatalogConfig(String),
    #[error("table {table} does not fit the feed: {reason}")]
    Incompatible { table: String, reason: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;
