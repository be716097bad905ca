//! Opening a feed's table: created on first use (namespace too) with the mode's columns,
//! the spec's partitioning and a location under the warehouse; an existing table must
//! have the columns this writer fills, with the same types, or it is refused rather than
//! broken. Two brokers creating the same table at once both end up with the one table.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};

use crate::catalog::CatalogConfig;
use crate::columns::{partition_spec, raw_schema};
use crate::error::{LakeError, Result};
use crate::lineage::{self, Positions};
use crate::spec::{TableMode, TableSpec};

/// Table properties Sluice sets on tables it creates.
pub const TOPIC_PROPERTY: &str = "sluice.topic";

pub fn ident(spec: &TableSpec) -> TableIdent {
    TableIdent::new(
        NamespaceIdent::new(spec.namespace.clone()),
        spec.name.clone(),
    )
}

/// The columns a table of this mode has.
pub fn schema_for(mode: TableMode) -> Result<Schema> {
    match mode {
        TableMode::Raw => raw_schema(),
    }
}

/// Loads the table, creating it (and its namespace) when missing.
pub async fn open_or_create(
    catalog: &Arc<dyn Catalog>,
    config: &CatalogConfig,
    spec: &TableSpec,
    topic: &str,
) -> Result<Table> {
    let ident = ident(spec);
    let wanted = schema_for(spec.mode)?;
    match catalog.load_table(&ident).await {
        Ok(t) => {
            check_columns(&t, &wanted, spec)?;
            return Ok(t);
        }
        Err(e) if is_missing(catalog, &ident, &e).await => {}
        Err(e) => return Err(e.into()),
    }
    let ns = ident.namespace().clone();
    // Another broker may create it at the same moment; some catalogs then answer a
    // server error rather than "already exists" (Iceberg's JDBC catalog on sqlite
    // does), so a failure counts only if the namespace still does not exist.
    if let Err(e) = catalog.create_namespace(&ns, HashMap::new()).await {
        if e.kind() != ErrorKind::NamespaceAlreadyExists && !catalog.namespace_exists(&ns).await? {
            return Err(e.into());
        }
    }
    let creation = TableCreation::builder()
        .name(spec.name.clone())
        .location(config.table_location(&spec.namespace, &spec.name))
        .partition_spec(partition_spec(&wanted, &spec.partitioning)?)
        .schema(wanted.clone())
        .properties([
            (TOPIC_PROPERTY.to_string(), topic.to_string()),
            ("write.format.default".to_string(), "parquet".to_string()),
            (
                "write.parquet.compression-codec".to_string(),
                "zstd".to_string(),
            ),
            // Snapshot expiry (`maintenance.rs`) keeps a week of history and at least
            // the last 100 snapshots; engines and users tune these standard properties.
            (
                "history.expire.max-snapshot-age-ms".to_string(),
                (7 * 24 * 3_600_000u64).to_string(),
            ),
            (
                "history.expire.min-snapshots-to-keep".to_string(),
                "100".to_string(),
            ),
        ])
        .build();
    match catalog.create_table(&ns, creation).await {
        Ok(t) => Ok(t),
        // The same race for the table: whoever created it, it must fit.
        Err(e) => match catalog.load_table(&ident).await {
            Ok(t) => {
                check_columns(&t, &wanted, spec)?;
                Ok(t)
            }
            Err(_) => Err(e.into()),
        },
    }
}

/// Whether a failed load means the table is not there. Catalogs differ: Glue answers
/// a missing database with a generic error, so the answer is asked for explicitly.
async fn is_missing(catalog: &Arc<dyn Catalog>, ident: &TableIdent, e: &iceberg::Error) -> bool {
    if matches!(
        e.kind(),
        ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound
    ) {
        return true;
    }
    match catalog.namespace_exists(ident.namespace()).await {
        Ok(false) => true,
        Ok(true) => matches!(catalog.table_exists(ident).await, Ok(false)),
        Err(_) => false,
    }
}

/// Every column we write exists with the same type and id (extra columns are fine:
/// someone may have added one).
fn check_columns(table: &Table, wanted: &Schema, spec: &TableSpec) -> Result<()> {
    let have = table.metadata().current_schema();
    for field in wanted.as_struct().fields() {
        let found = have.field_by_name(&field.name);
        let ok = found.is_some_and(|f| f.field_type == field.field_type && f.id == field.id);
        if !ok {
            return Err(LakeError::Incompatible {
                table: spec.qualified_name(),
                reason: match found {
                    None => format!("no column {:?}", field.name),
                    Some(f) => format!(
                        "column {:?} is {} (id {}), the writer needs {} (id {})",
                        field.name, f.field_type, f.id, field.field_type, field.id
                    ),
                },
            });
        }
    }
    Ok(())
}

/// Where each partition stands in the table's current snapshot.
pub fn positions(table: &Table) -> Positions {
    table
        .metadata()
        .current_snapshot()
        .map(|s| lineage::positions(&s.summary().additional_properties))
        .unwrap_or_default()
}
