//! What can go wrong writing a table, as one error type for the broker to log, count and
//! report in a Feed's status.

/// A failure of the lake writer. `Iceberg` carries the catalog's or file store's own error.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("invalid table setting: {0}")]
    Spec(String),
    #[error("catalog configuration: {0}")]
    CatalogConfig(String),
    /// The feed's registered schema has a construct no table column can hold (the
    /// message names the field).
    #[error("the feed's schema cannot be a table: {0}")]
    Schema(String),
    #[error("table {table} does not fit the feed: {reason}")]
    Incompatible { table: String, reason: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
}

impl LakeError {
    /// An [`LakeError::Incompatible`] that does not name its table yet (from
    /// `evolution::table_schema`, which sees only schemas) names `table`.
    pub fn for_table(self, table: &str) -> Self {
        match self {
            LakeError::Incompatible { table: t, reason } if t.is_empty() => {
                LakeError::Incompatible {
                    table: table.to_string(),
                    reason,
                }
            }
            other => other,
        }
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;
