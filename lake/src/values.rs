//! Record values to columns (schema mode): each value becomes one JSON object (Avro
//! decoded with the writer schema of its framing id, `avro_values.rs`; JSON parsed),
//! and arrow-json's decoder turns the objects into the table's columns after the
//! lineage ones, with the table's Arrow types and field ids.
//!
//! A value that gives no columns (none, not framed, an id with no schema, not decodable,
//! not an object, or not fitting the columns: possible when the feed's validation mode
//! is `observe`) does not fail the batch: its row keeps its lineage and has null in
//! every other column, and [`schema_batch`] counts it. Every record in a committed
//! offset range is a row (`lineage.rs`), so such a record is not left out either.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_json::ReaderBuilder;
use arrow_schema::{ArrowError, Schema as ArrowSchema};
use serde_json::{Map, Value};
use sluice_schema::{wire, Format};

use crate::avro_values;
use crate::error::Result;
use crate::rows::{lineage_columns, Row};

/// The writer schema of a framing id, when the registry has one (parsed once by the
/// caller, e.g. from `sluice_schema::avro::parse`).
pub type AvroSchemas = Arc<dyn Fn(i32) -> Option<Arc<apache_avro::Schema>> + Send + Sync>;

/// How a schema-mode table's record values are encoded.
#[derive(Clone)]
pub enum ValueFormat {
    /// Confluent-framed Avro, each value decoded with the schema of its id.
    Avro(AvroSchemas),
    /// Confluent-framed JSON.
    JsonSchema,
    /// Plain JSON.
    Json,
}

impl ValueFormat {
    pub fn format(&self) -> Format {
        match self {
            ValueFormat::Avro(_) => Format::Avro,
            ValueFormat::JsonSchema => Format::JsonSchema,
            ValueFormat::Json => Format::Json,
        }
    }

    /// The value as a JSON object for the columns `user`, or None when it gives none.
    fn object(&self, value: &[u8], user: &ArrowSchema) -> Option<Value> {
        let doc = match self {
            ValueFormat::Json => serde_json::from_slice(value).ok()?,
            ValueFormat::JsonSchema => serde_json::from_slice(wire::split(value).ok()?.1).ok()?,
            ValueFormat::Avro(schemas) => {
                let (id, payload) = wire::split(value).ok()?;
                let schema = schemas(id)?;
                let record = sluice_schema::avro::decode_exact(&schema, payload).ok()?;
                avro_values::record(&record, user.fields()).ok()?
            }
        };
        doc.is_object().then_some(doc)
    }
}

/// The batch of schema-mode `rows` of `topic` for the table's Arrow `schema` (lineage
/// columns first), and how many rows got null columns because their value gave none.
/// Fails only when such a row cannot be written: the table has a required column
/// besides the lineage ones (tables Sluice creates have none).
pub fn schema_batch(
    schema: &Arc<ArrowSchema>,
    topic: &str,
    rows: &[Row],
    values: &ValueFormat,
) -> Result<(RecordBatch, usize)> {
    let mut arrays = lineage_columns(schema, topic, rows)?;
    let user = Arc::new(ArrowSchema::new(
        schema
            .fields()
            .iter()
            .skip(arrays.len())
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let mut undecoded = 0;
    if !user.fields().is_empty() {
        let docs: Vec<Value> = rows
            .iter()
            .map(|r| {
                r.value
                    .as_deref()
                    .and_then(|v| values.object(v, &user))
                    .unwrap_or_else(|| {
                        undecoded += 1;
                        empty()
                    })
            })
            .collect();
        let (columns, unfit) = decode(&user, docs)?;
        arrays.extend(columns);
        undecoded += unfit;
    }
    Ok((RecordBatch::try_new(schema.clone(), arrays)?, undecoded))
}

/// An object with no fields: a row of nulls.
fn empty() -> Value {
    Value::Object(Map::new())
}

/// The columns of `docs`. One object that does not fit fails arrow-json's whole batch,
/// so then each is tried alone and the ones that fail are decoded as [`empty`].
fn decode(user: &Arc<ArrowSchema>, docs: Vec<Value>) -> Result<(Vec<ArrayRef>, usize)> {
    if let Ok(batch) = decode_all(user, &docs) {
        return Ok((batch.columns().to_vec(), 0));
    }
    let mut unfit = 0;
    let docs: Vec<Value> = docs
        .into_iter()
        .map(|d| {
            if decode_all(user, std::slice::from_ref(&d)).is_ok() {
                d
            } else {
                unfit += 1;
                empty()
            }
        })
        .collect();
    let batch = decode_all(user, &docs)?;
    Ok((batch.columns().to_vec(), unfit))
}

fn decode_all(user: &Arc<ArrowSchema>, docs: &[Value]) -> Result<RecordBatch, ArrowError> {
    let mut decoder = ReaderBuilder::new(user.clone()).build_decoder()?;
    decoder.serialize(docs)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(user.clone())))
}

#[cfg(test)]
mod tests;
