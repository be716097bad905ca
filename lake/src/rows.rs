//! Records to Arrow: one `Row` per Kafka record, turned into a batch with the table's
//! Arrow schema (field ids included, so the Parquet files carry Iceberg's ids; Iceberg
//! binary is Arrow LargeBinary). The lineage columns are built here for both modes;
//! raw mode's key, value and headers too, schema mode's columns in `values.rs`.

use std::sync::Arc;

use arrow_array::builder::{Int32Builder, LargeBinaryBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema as ArrowSchema};
use bytes::Bytes;

use crate::columns;
use crate::error::{LakeError, Result};

/// One Kafka record with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (Kafka's record timestamp).
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The schema id of the value's framing, when the topic has a schema.
    pub schema_id: Option<i32>,
    /// The authenticated principal that produced it, when known.
    pub principal: Option<String>,
}

/// The Arrow batch of raw-mode `rows` of `topic`, with `schema` (the table's Arrow
/// schema).
pub fn raw_batch(schema: &Arc<ArrowSchema>, topic: &str, rows: &[Row]) -> Result<RecordBatch> {
    let mut key = LargeBinaryBuilder::new();
    let mut value = LargeBinaryBuilder::new();
    for r in rows {
        key.append_option(r.key.as_deref());
        value.append_option(r.value.as_deref());
    }
    let mut arrays = lineage_columns(schema, topic, rows)?;
    arrays.extend([
        Arc::new(key.finish()) as ArrayRef,
        Arc::new(value.finish()),
        headers_array(schema.field_with_name(columns::HEADERS)?, rows)?,
    ]);
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// The lineage columns of `rows` (`columns::lineage_fields`, in that order), the first
/// columns of a table in either mode.
pub(crate) fn lineage_columns(
    schema: &Arc<ArrowSchema>,
    topic: &str,
    rows: &[Row],
) -> Result<Vec<ArrayRef>> {
    for (i, lineage) in columns::lineage_fields().iter().enumerate() {
        if schema.fields().get(i).map(|f| f.name()) != Some(&lineage.name) {
            return Err(LakeError::Spec(format!(
                "column {} of the table is not {}: the lineage columns come first",
                i + 1,
                lineage.name
            )));
        }
    }
    let ts_type = schema
        .field_with_name(columns::TIMESTAMP)?
        .data_type()
        .clone();
    let tz = match &ts_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => {
            return Err(LakeError::Spec(format!(
                "column {} is {other}, not a timestamp",
                columns::TIMESTAMP
            )))
        }
    };
    let mut principal = StringBuilder::new();
    let mut schema_id = Int32Builder::new();
    for r in rows {
        principal.append_option(r.principal.as_deref());
        schema_id.append_option(r.schema_id);
    }
    Ok(vec![
        Arc::new(StringArray::from(vec![topic; rows.len()])),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.partition),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| r.timestamp_ms.saturating_mul(1000)),
            )
            .with_timezone_opt(tz),
        ),
        Arc::new(schema_id.finish()),
        Arc::new(principal.finish()),
    ])
}

/// The headers column: a list of (key, value) structs per row, built against the
/// schema's own field so its metadata (field ids) matches.
fn headers_array(field: &Field, rows: &[Row]) -> Result<ArrayRef> {
    let DataType::List(element) = field.data_type() else {
        return Err(LakeError::Spec(format!(
            "column {} is not a list",
            field.name()
        )));
    };
    let DataType::Struct(fields) = element.data_type() else {
        return Err(LakeError::Spec(format!(
            "column {} does not hold structs",
            field.name()
        )));
    };
    let mut keys = StringBuilder::new();
    let mut values = LargeBinaryBuilder::new();
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    offsets.push(0i32);
    for r in rows {
        for (k, v) in &r.headers {
            keys.append_value(k);
            values.append_option(v.as_deref());
        }
        offsets.push(offsets[offsets.len() - 1] + r.headers.len() as i32);
    }
    let entries = StructArray::try_new(
        Fields::clone(fields),
        vec![
            Arc::new(keys.finish()) as ArrayRef,
            Arc::new(values.finish()),
        ],
        None,
    )?;
    let list = ListArray::try_new(
        element.clone(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(entries),
        None,
    )?;
    Ok(Arc::new(list))
}
