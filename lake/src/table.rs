//! Opening a feed's table: created on first use (namespace too) with the mode's columns,
//! the spec's partitioning and a location under the warehouse. An existing raw-mode
//! table must have the columns this writer fills, with the same types, or it is refused
//! rather than broken; an existing schema-mode table is evolved to the feed's schema
//! (`evolution.rs`: new fields added as columns, a retyped one refused). Two brokers
//! creating or evolving the same table at once both end up with the one table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use sluice_schema::Format;

use crate::catalog::CatalogConfig;
use crate::columns::{partition_spec, raw_schema};
use crate::error::{LakeError, Result};
use crate::evolution::{derive, new_table, Evolution, NewColumn};
use crate::lineage::{self, Positions};
use crate::spec::{TableMode, TableSpec};

/// Table properties Sluice sets on tables it creates.
pub const TOPIC_PROPERTY: &str = "sluice.topic";

/// Schema updates tried before giving up for now (each after another writer changed
/// the table's schema first).
const EVOLVE_ATTEMPTS: usize = 5;

/// The registered schema a schema-mode table follows: the subject's latest version (an
/// Avro schema for Avro, a JSON Schema for the JSON formats).
#[derive(Debug, Clone, Copy)]
pub struct FeedSchema<'a> {
    pub format: Format,
    pub text: &'a str,
}

pub fn ident(spec: &TableSpec) -> TableIdent {
    TableIdent::new(
        NamespaceIdent::new(spec.namespace.clone()),
        spec.name.clone(),
    )
}

/// The columns a new table of this mode has; schema mode needs the feed's schema.
pub fn schema_for(mode: TableMode, feed: Option<&FeedSchema<'_>>) -> Result<Schema> {
    match (mode, feed) {
        (TableMode::Raw, _) => raw_schema(),
        (TableMode::Schema, Some(feed)) => new_table(feed.format, feed.text),
        (TableMode::Schema, None) => Err(LakeError::Spec(
            "sluice.table.mode \"schema\" needs the feed's registered schema".into(),
        )),
    }
}

/// Loads a raw-mode table, creating it (and its namespace) when missing.
pub async fn open_or_create(
    catalog: &Arc<dyn Catalog>,
    config: &CatalogConfig,
    spec: &TableSpec,
    topic: &str,
) -> Result<Table> {
    open_or_create_with(catalog, config, spec, topic, None).await
}

/// Loads the table, creating it (and its namespace) when missing; in schema mode with
/// `feed`'s columns, and an existing table is first evolved to them ([`evolve`]).
pub async fn open_or_create_with(
    catalog: &Arc<dyn Catalog>,
    config: &CatalogConfig,
    spec: &TableSpec,
    topic: &str,
    feed: Option<&FeedSchema<'_>>,
) -> Result<Table> {
    let ident = ident(spec);
    let wanted = schema_for(spec.mode, feed)?;
    match catalog.load_table(&ident).await {
        Ok(t) => return fit(catalog, t, &wanted, spec, feed).await,
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
            Ok(t) => fit(catalog, t, &wanted, spec, feed).await,
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

/// An existing table made to hold what the writer writes, or refused.
async fn fit(
    catalog: &Arc<dyn Catalog>,
    table: Table,
    wanted: &Schema,
    spec: &TableSpec,
    feed: Option<&FeedSchema<'_>>,
) -> Result<Table> {
    match (spec.mode, feed) {
        (TableMode::Schema, Some(feed)) => evolve(catalog, table, feed).await,
        _ => {
            check_columns(&table, wanted, spec)?;
            Ok(table)
        }
    }
}

/// Brings a schema-mode table's columns to `feed`'s schema: nothing when it has them,
/// otherwise the new fields are added as optional columns in one schema update, which
/// must land before rows of that schema version are written (a writer opened on the
/// older columns would leave the new fields out). Refused with
/// [`LakeError::Incompatible`] when a column would have to change type or become
/// optional; nothing is changed then. Returns the table as it now is.
pub async fn evolve(
    catalog: &Arc<dyn Catalog>,
    table: Table,
    feed: &FeedSchema<'_>,
) -> Result<Table> {
    let name = table.identifier().to_string();
    let mut table = table;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let metadata = table.metadata();
        let evolution = derive(
            feed.format,
            feed.text,
            Some(metadata.current_schema()),
            metadata.last_column_id(),
        )
        .map_err(|e| e.for_table(&name))?;
        let Evolution::Add { columns, .. } = evolution else {
            return Ok(table);
        };
        let tx = Transaction::new(&table);
        let action = columns
            .into_iter()
            .fold(tx.update_schema(), |a, c| a.add_column(add_column(c)));
        let tx = action.apply(tx)?;
        match tx.commit(catalog.as_ref()).await {
            Ok(t) => return Ok(t),
            // Another writer changed the schema first (perhaps adding the same
            // columns): decide again on its schema.
            Err(e) if attempt < EVOLVE_ATTEMPTS => {
                tracing::debug!(table = %name, attempt, "schema update failed, re-reading: {e}");
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                table = catalog.load_table(table.identifier()).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn add_column(c: NewColumn) -> AddColumn {
    let f = c.field;
    let b = AddColumn::builder()
        .name(f.name.clone())
        .field_type(f.field_type.as_ref().clone());
    match (c.parent, f.doc.clone()) {
        (Some(p), Some(d)) => b.parent(p).doc(d).build(),
        (Some(p), None) => b.parent(p).build(),
        (None, Some(d)) => b.doc(d).build(),
        (None, None) => b.build(),
    }
}

/// Raw mode: every column we write exists with the same type and id (extra columns are
/// fine: someone may have added one).
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
