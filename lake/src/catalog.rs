//! Which Iceberg catalog tables are registered in, from one URI: a SQL database
//! (`sqlite:<path>`, the embedded default), an Iceberg REST catalog (`http(s)://…`:
//! Polaris, Nessie, Lakekeeper, S3 Tables, Apache Iceberg's own), or AWS Glue (`glue`,
//! or `glue:<endpoint>` for a Glue-compatible endpoint). All come from the iceberg-rust
//! crates; nothing here speaks a catalog's protocol itself.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_glue::{
    GlueCatalogBuilder, AWS_REGION_NAME, GLUE_CATALOG_PROP_URI, GLUE_CATALOG_PROP_WAREHOUSE,
};
use iceberg_catalog_rest::{
    RestCatalogBuilder, REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE,
};
use iceberg_catalog_sql::{
    SqlBindStyle, SqlCatalogBuilder, SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI,
    SQL_CATALOG_PROP_WAREHOUSE,
};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;

use crate::error::{LakeError, Result};

/// The catalog's name in the SQL catalog's tables (the same name pyiceberg's and the
/// JDBC catalog's `catalog_name` column must be given to see the tables).
pub const CATALOG_NAME: &str = "sluice";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKind {
    /// A SQL database through sqlx (`sqlite:` URIs).
    Sql(String),
    /// An Iceberg REST catalog's base URI.
    Rest(String),
    /// AWS Glue: None for AWS's own endpoint, else the endpoint URL. Region and
    /// credentials come from the AWS environment (IRSA included) or `region_name`,
    /// `aws_access_key_id`, … properties.
    Glue(Option<String>),
}

/// A catalog to connect to, and where new tables' files go.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub kind: CatalogKind,
    /// Root of new tables (`file:///…/tables`, `s3://bucket/prefix/tables`); for a REST
    /// catalog also sent as its `warehouse` unless a property sets one.
    pub warehouse: String,
    /// Passed on to the catalog and its file IO (credentials, `s3.endpoint`, …).
    pub props: HashMap<String, String>,
}

impl CatalogConfig {
    pub fn new(uri: &str, warehouse: &str, props: HashMap<String, String>) -> Result<Self> {
        let kind = if uri.starts_with("sqlite:") {
            CatalogKind::Sql(uri.to_string())
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            CatalogKind::Rest(uri.trim_end_matches('/').to_string())
        } else if uri == "glue" {
            CatalogKind::Glue(None)
        } else if let Some(endpoint) = uri.strip_prefix("glue:") {
            CatalogKind::Glue(Some(endpoint.to_string()))
        } else {
            return Err(LakeError::CatalogConfig(format!(
                "catalog {uri:?} is none of sqlite:<path> (SQL catalog), http(s)://… (REST catalog), glue or glue:<endpoint> (AWS Glue)"
            )));
        };
        if warehouse.is_empty() {
            return Err(LakeError::CatalogConfig("no warehouse location".into()));
        }
        Ok(CatalogConfig {
            kind,
            warehouse: warehouse.trim_end_matches('/').to_string(),
            props,
        })
    }

    /// Connects (the SQL catalog creates its tables in a new database).
    pub async fn connect(&self) -> Result<Arc<dyn Catalog>> {
        if let CatalogKind::Sql(uri) = &self.kind {
            create_sqlite_dir(uri)?;
        }
        let storage = Arc::new(OpenDalResolvingStorageFactory::new());
        let mut props = self.props.clone();
        Ok(match &self.kind {
            CatalogKind::Sql(uri) => {
                props.insert(SQL_CATALOG_PROP_URI.into(), uri.clone());
                props.insert(SQL_CATALOG_PROP_WAREHOUSE.into(), self.warehouse.clone());
                props.insert(
                    SQL_CATALOG_PROP_BIND_STYLE.into(),
                    SqlBindStyle::QMark.to_string(),
                );
                Arc::new(
                    SqlCatalogBuilder::default()
                        .with_storage_factory(storage)
                        .load(CATALOG_NAME, props)
                        .await?,
                )
            }
            CatalogKind::Rest(uri) => {
                props.insert(REST_CATALOG_PROP_URI.into(), uri.clone());
                props
                    .entry(REST_CATALOG_PROP_WAREHOUSE.into())
                    .or_insert_with(|| self.warehouse.clone());
                Arc::new(
                    RestCatalogBuilder::default()
                        .with_storage_factory(storage)
                        .load(CATALOG_NAME, props)
                        .await?,
                )
            }
            CatalogKind::Glue(endpoint) => {
                if let Some(endpoint) = endpoint {
                    props.insert(GLUE_CATALOG_PROP_URI.into(), endpoint.clone());
                }
                props.insert(GLUE_CATALOG_PROP_WAREHOUSE.into(), self.warehouse.clone());
                for (prop, var) in GLUE_PROPS_FROM_ENV {
                    if let Ok(v) = std::env::var(var) {
                        props.entry(prop.to_string()).or_insert(v);
                    }
                }
                Arc::new(
                    GlueCatalogBuilder::default()
                        .with_storage_factory(storage)
                        .load(CATALOG_NAME, props)
                        .await?,
                )
            }
        })
    }

    /// Where a new table's files go: `<warehouse>/<namespace>/<table>`.
    pub fn table_location(&self, namespace: &str, table: &str) -> String {
        format!("{}/{namespace}/{table}", self.warehouse)
    }
}

/// Glue's client settings from the AWS variables when no property gives them (the SDK
/// finds IRSA's web identity by itself).
const GLUE_PROPS_FROM_ENV: [(&str, &str); 2] = [
    (AWS_REGION_NAME, "AWS_REGION"),
    (AWS_REGION_NAME, "AWS_DEFAULT_REGION"),
];

/// sqlite creates a missing database file but not its directory.
fn create_sqlite_dir(uri: &str) -> Result<()> {
    let path = uri.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            LakeError::CatalogConfig(format!("creating {} for {uri}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

/// `sqlite:<path>?mode=rwc`: sqlx's URI for a database file created when missing.
pub fn sqlite_uri(path: &std::path::Path) -> String {
    format!("sqlite:{}?mode=rwc", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_uri() {
        let c = CatalogConfig::new("sqlite:/x/c.db", "file:///x/tables/", HashMap::new()).unwrap();
        assert_eq!(c.kind, CatalogKind::Sql("sqlite:/x/c.db".into()));
        assert_eq!(c.table_location("sec", "dns"), "file:///x/tables/sec/dns");
        let r =
            CatalogConfig::new("http://127.0.0.1:8181/", "s3://b/tables", HashMap::new()).unwrap();
        assert_eq!(r.kind, CatalogKind::Rest("http://127.0.0.1:8181".into()));
        let g = CatalogConfig::new(
            "glue:http://127.0.0.1:5000",
            "s3://b/tables",
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            g.kind,
            CatalogKind::Glue(Some("http://127.0.0.1:5000".into()))
        );
        let err = CatalogConfig::new("thrift://hive:9083", "s3://b", HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("none of"), "{err}");
    }
}
