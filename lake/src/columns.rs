//! The table's columns: lineage first (where each row came from), then the record.
//! Field ids are fixed here, so every table Sluice creates in raw mode has the same
//! schema and a reader can rely on the names (`docs/lake.md`, "Columns"). Schema mode
//! (`evolution.rs`) starts with the same lineage columns and ids.

use std::sync::Arc;

use iceberg::spec::{
    ListType, NestedField, PrimitiveType, Schema, StructType, Transform, Type, UnboundPartitionSpec,
};

use crate::error::{LakeError, Result};
use crate::spec::Partitioning;

pub const TOPIC: &str = "sluice_topic";
pub const PARTITION: &str = "sluice_partition";
pub const OFFSET: &str = "sluice_offset";
pub const TIMESTAMP: &str = "sluice_timestamp";
pub const SCHEMA_ID: &str = "sluice_schema_id";
pub const PRINCIPAL: &str = "sluice_principal";
pub const KEY: &str = "key";
pub const VALUE: &str = "value";
pub const HEADERS: &str = "headers";

/// Field ids of the lineage columns a reader (compaction, evidence) looks up by id.
pub const PARTITION_FIELD_ID: i32 = 2;
pub const OFFSET_FIELD_ID: i32 = 3;

fn primitive(p: PrimitiveType) -> Type {
    Type::Primitive(p)
}

/// The type of instants, `sluice_timestamp` and a schema's timestamps alike:
/// `timestamp` (UTC), not `timestamptz`, since Glue and Athena handle only the former
/// (iceberg-rust's Glue catalog refuses timestamptz columns).
pub const INSTANT: PrimitiveType = PrimitiveType::Timestamp;

/// The lineage columns every table starts with, in both modes: ids 1 to 6, in this
/// order (a schema-mode table's own columns come after them).
pub fn lineage_fields() -> Vec<NestedField> {
    vec![
        NestedField::required(1, TOPIC, primitive(PrimitiveType::String)),
        NestedField::required(PARTITION_FIELD_ID, PARTITION, primitive(PrimitiveType::Int)),
        NestedField::required(OFFSET_FIELD_ID, OFFSET, primitive(PrimitiveType::Long)),
        NestedField::required(4, TIMESTAMP, primitive(INSTANT)),
        NestedField::optional(5, SCHEMA_ID, primitive(PrimitiveType::Int)),
        NestedField::optional(6, PRINCIPAL, primitive(PrimitiveType::String)),
    ]
}

/// Raw mode: lineage, then key, value and headers (a list, since Kafka allows a header
/// name more than once) as Kafka holds them.
pub fn raw_schema() -> Result<Schema> {
    let header = StructType::new(vec![
        Arc::new(NestedField::required(
            11,
            "key",
            primitive(PrimitiveType::String),
        )),
        Arc::new(NestedField::optional(
            12,
            "value",
            primitive(PrimitiveType::Binary),
        )),
    ]);
    let mut fields = lineage_fields();
    fields.extend([
        NestedField::optional(7, KEY, primitive(PrimitiveType::Binary)),
        NestedField::optional(8, VALUE, primitive(PrimitiveType::Binary)),
        NestedField::required(
            9,
            HEADERS,
            Type::List(ListType::new(Arc::new(NestedField::list_element(
                10,
                Type::Struct(header),
                true,
            )))),
        ),
    ]);
    Ok(Schema::builder()
        .with_schema_id(0)
        .with_identifier_field_ids([])
        .with_fields(fields.into_iter().map(Arc::new))
        .build()?)
}

/// The partition spec of a new table: by the record timestamp's hour or day, by a
/// column's value, or none.
pub fn partition_spec(
    schema: &Schema,
    partitioning: &Partitioning,
) -> Result<UnboundPartitionSpec> {
    // Java's REST catalog (1.10) refuses a create request whose spec has no id.
    let builder = UnboundPartitionSpec::builder().with_spec_id(0);
    let (column, transform, suffix) = match partitioning {
        Partitioning::None => return Ok(builder.build()),
        Partitioning::Hour => (TIMESTAMP, Transform::Hour, "hour"),
        Partitioning::Day => (TIMESTAMP, Transform::Day, "day"),
        Partitioning::Identity(c) => (c.as_str(), Transform::Identity, ""),
    };
    let field = schema.field_by_name(column).ok_or_else(|| {
        LakeError::Spec(format!(
            "partitioning by {column:?}: the table has no such column"
        ))
    })?;
    if !matches!(field.field_type.as_ref(), Type::Primitive(_)) {
        return Err(LakeError::Spec(format!(
            "partitioning by {column:?}: only a primitive column can be a partition"
        )));
    }
    let name = if suffix.is_empty() {
        column.to_string()
    } else {
        format!("{column}_{suffix}")
    };
    Ok(builder
        .add_partition_field(field.id, name, transform)?
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_by_hour_day_identity_or_nothing() {
        let schema = raw_schema().unwrap();
        let hour = partition_spec(&schema, &Partitioning::Hour).unwrap();
        assert_eq!(hour.fields()[0].transform, Transform::Hour);
        assert_eq!(hour.fields()[0].source_id, 4);
        let id = partition_spec(&schema, &Partitioning::Identity(PARTITION.into())).unwrap();
        assert_eq!(id.fields()[0].name, PARTITION);
        assert!(partition_spec(&schema, &Partitioning::None)
            .unwrap()
            .fields()
            .is_empty());
        let err = partition_spec(&schema, &Partitioning::Identity("nope".into())).unwrap_err();
        assert!(err.to_string().contains("no such column"), "{err}");
        assert!(partition_spec(&schema, &Partitioning::Identity(HEADERS.into())).is_err());
    }
}
