//! Schema mode's columns and how they change (issue 18). A table's columns are the
//! lineage columns (`columns.rs`, ids 1-6) followed by the fields of the feed's
//! registered schema (`avro_columns.rs`, `json_columns.rs`). [`table_schema`] compares
//! a schema version with the table's current columns and says what to do:
//!
//! - no table yet: create it ([`Evolution::Create`]), ids assigned after the lineage
//!   ones in the order the catalog assigns them on creation;
//! - every field already a column of the same type: nothing ([`Evolution::Same`]);
//! - new fields, at the top or inside structs: add them as optional columns
//!   ([`Evolution::Add`], committed by `table::evolve` before rows of that version are
//!   written). Existing columns keep their ids (matched by name path); new ones get ids
//!   above the table's last column id, in the order iceberg-rust's add-column action
//!   gives them;
//! - a field the schema no longer has: its column stays and is null in new rows (so
//!   readers of old rows keep it). Allowed only when the column is optional;
//! - a changed type, or a required column the schema now lets be null: refused with
//!   [`LakeError::Incompatible`] naming the column and both types, before anything is
//!   written, so the table is never broken. iceberg-rust 0.10.1's schema update can
//!   only add and delete columns, so even Iceberg's legal widenings (int to long, float
//!   to double) and making a column optional are refused.
//!
//! Top-level columns from the schema are always optional, whatever the schema says: a
//! record whose value does not decode (the `observe` validation mode lets it in) is
//! still a row (every offset of a committed range is in the table, `lineage.rs`) with
//! null columns, and a field dropped later is null too. Nested fields keep the schema's
//! requiredness. A field that turns from optional to required keeps its optional
//! column: nothing written breaks it.
//!
//! Readers: every evolution made here is legal Iceberg, which Spark, Trino, DuckDB and
//! pyiceberg read per the spec. iceberg-rust 0.10.1's own scan does not yet read every
//! file written before an addition: it casts a struct that gained a field (failing),
//! and fills a missing top-level column with nulls only for primitive and struct types
//! other than binary and time (`tests/schema_mode.rs` reads around it).

use std::sync::Arc;

use iceberg::spec::{ListType, MapType, NestedField, NestedFieldRef, Schema, StructType, Type};
use sluice_schema::Format;

use crate::columns::lineage_fields;
use crate::error::{LakeError, Result};
use crate::{avro_columns, json_columns};

/// What a table needs to hold a schema version.
#[derive(Debug, Clone, PartialEq)]
pub enum Evolution {
    /// No table yet: create it with these columns.
    Create(Schema),
    /// The table already has a column for every field.
    Same,
    /// Add these columns; the table then has `schema`'s columns.
    Add {
        columns: Vec<NewColumn>,
        schema: Schema,
    },
}

/// A column to add, with the name path of the struct it goes in (None: the top).
#[derive(Debug, Clone, PartialEq)]
pub struct NewColumn {
    pub parent: Option<String>,
    pub field: NestedFieldRef,
}

/// What the table with columns `existing` (None: no table yet) needs to hold values of
/// the schema `schema_text` of `format` (an Avro schema for Avro, a JSON Schema for the
/// JSON formats). New ids start above `existing`'s highest id; `table::evolve` uses the
/// table's last column id instead, which is higher when columns were ever deleted.
pub fn table_schema(
    format: Format,
    schema_text: &str,
    existing: Option<&Schema>,
) -> Result<Evolution> {
    let last = existing.map(Schema::highest_field_id).unwrap_or(0);
    derive(format, schema_text, existing, last)
}

/// [`table_schema`] with the table's last column id.
pub(crate) fn derive(
    format: Format,
    schema_text: &str,
    existing: Option<&Schema>,
    last_column_id: i32,
) -> Result<Evolution> {
    let Some(existing) = existing else {
        return Ok(Evolution::Create(new_table(format, schema_text)?));
    };
    let wanted = wanted(format, schema_text)?;
    for l in wanted.iter().take_while(|f| f.id != 0) {
        if existing.field_by_name(&l.name).is_none() {
            return Err(incompatible(format!("no lineage column {:?}", l.name)));
        }
    }
    let mut merge = Merge {
        next_id: last_column_id,
        added: Vec::new(),
    };
    let fields = merge.fields(existing.as_struct().fields(), &wanted, None)?;
    if merge.added.is_empty() {
        return Ok(Evolution::Same);
    }
    Ok(Evolution::Add {
        columns: merge.added,
        schema: Schema::builder()
            .with_schema_id(existing.schema_id() + 1)
            .with_identifier_field_ids(existing.identifier_field_ids())
            .with_fields(fields)
            .build()?,
    })
}

/// The columns of a new table for the schema.
pub(crate) fn new_table(format: Format, schema_text: &str) -> Result<Schema> {
    let mut next = 0;
    let fields = fresh_fields(&wanted(format, schema_text)?, &mut next, true);
    Ok(Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()?)
}

/// The columns the schema asks for: lineage (with their ids), then the schema's fields
/// (ids 0), optional at the top.
fn wanted(format: Format, schema_text: &str) -> Result<Vec<NestedFieldRef>> {
    let fields = match format {
        Format::Avro => avro_columns::columns(schema_text)?,
        Format::JsonSchema | Format::Json => json_columns::columns(schema_text)?,
    };
    let lineage = lineage_fields();
    for f in &fields {
        if lineage.iter().any(|l| l.name == f.name) {
            return Err(LakeError::Schema(format!(
                "field {:?} has the name of a lineage column",
                f.name
            )));
        }
        check_names(f, "")?;
    }
    Ok(lineage
        .into_iter()
        .chain(fields.into_iter().map(|mut f| {
            f.required = false;
            f
        }))
        .map(Arc::new)
        .collect())
}

/// `parent.name`, or `name` at the top: Iceberg's name paths.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// A `.` in a name would make its path ambiguous (Iceberg joins paths with dots, and
/// the add-column action refuses such names).
fn check_names(field: &NestedField, parent: &str) -> Result<()> {
    let path = join(parent, &field.name);
    if field.name.is_empty() || field.name.contains('.') {
        return Err(LakeError::Schema(format!(
            "field {path:?}: a column name cannot be empty or contain '.'"
        )));
    }
    if let Type::Struct(s) = field.field_type.as_ref() {
        for f in s.fields() {
            check_names(f, &path)?;
        }
    }
    Ok(())
}

fn incompatible(reason: String) -> LakeError {
    LakeError::Incompatible {
        table: String::new(),
        reason,
    }
}

/// Fresh ids for `fields` and everything inside them, from `*next + 1`. `level_first`:
/// a struct's own fields are numbered before what is inside them, as iceberg-rust
/// numbers a new table; otherwise each field is followed by its insides, as its
/// add-column action numbers new columns. A list's element, a map's key and value are
/// each followed by their insides in both.
fn fresh_fields(
    fields: &[NestedFieldRef],
    next: &mut i32,
    level_first: bool,
) -> Vec<NestedFieldRef> {
    if !level_first {
        return fields.iter().map(|f| fresh_field(f, next, false)).collect();
    }
    let ids: Vec<i32> = fields.iter().map(|_| bump(next)).collect();
    fields
        .iter()
        .zip(ids)
        .map(|(f, id)| with_fresh_insides(f, id, next, true))
        .collect()
}

fn bump(next: &mut i32) -> i32 {
    *next += 1;
    *next
}

fn fresh_field(f: &NestedField, next: &mut i32, level_first: bool) -> NestedFieldRef {
    let id = bump(next);
    with_fresh_insides(f, id, next, level_first)
}

fn with_fresh_insides(
    f: &NestedField,
    id: i32,
    next: &mut i32,
    level_first: bool,
) -> NestedFieldRef {
    let mut out = f.clone();
    out.id = id;
    out.field_type = Box::new(match f.field_type.as_ref() {
        Type::Primitive(p) => Type::Primitive(p.clone()),
        Type::Struct(s) => {
            Type::Struct(StructType::new(fresh_fields(s.fields(), next, level_first)))
        }
        Type::List(l) => Type::List(ListType::new(fresh_field(
            &l.element_field,
            next,
            level_first,
        ))),
        Type::Map(m) => {
            let key = fresh_field(&m.key_field, next, level_first);
            Type::Map(MapType::new(
                key,
                fresh_field(&m.value_field, next, level_first),
            ))
        }
    });
    Arc::new(out)
}

/// The table's columns merged with the wanted ones: the table's in its order (ids
/// kept), then the new ones, collected in `added`.
struct Merge {
    next_id: i32,
    added: Vec<NewColumn>,
}

impl Merge {
    fn fields(
        &mut self,
        have: &[NestedFieldRef],
        want: &[NestedFieldRef],
        parent: Option<&str>,
    ) -> Result<Vec<NestedFieldRef>> {
        let at = parent.unwrap_or("");
        let mut out = Vec::with_capacity(have.len());
        for h in have {
            let path = join(at, &h.name);
            match want.iter().find(|w| w.name == h.name) {
                Some(w) => out.push(self.field(h, w, &path)?),
                None if h.required => {
                    return Err(incompatible(format!(
                        "column {path:?} is required and the schema no longer has the field: new rows could not fill it"
                    )))
                }
                None => out.push(h.clone()),
            }
        }
        for w in want
            .iter()
            .filter(|w| !have.iter().any(|h| h.name == w.name))
        {
            let mut optional = w.as_ref().clone();
            optional.required = false;
            let field = fresh_field(&optional, &mut self.next_id, false);
            self.added.push(NewColumn {
                parent: parent.map(str::to_string),
                field: field.clone(),
            });
            out.push(field);
        }
        Ok(out)
    }

    /// A column the table has and the schema wants: same type, and not turned nullable.
    /// Lineage columns (the wanted ones with ids) must also have their id.
    fn field(&mut self, h: &NestedFieldRef, w: &NestedField, path: &str) -> Result<NestedFieldRef> {
        if w.id != 0 && w.id != h.id {
            return Err(incompatible(format!(
                "column {path:?} has id {}, the writer needs {}",
                h.id, w.id
            )));
        }
        if h.required && !w.required {
            return Err(incompatible(format!(
                "column {path:?} is required, the schema lets it be null (iceberg-rust 0.10.1 cannot make a column optional)"
            )));
        }
        let field_type = match (h.field_type.as_ref(), w.field_type.as_ref()) {
            (Type::Primitive(a), Type::Primitive(b)) if a == b => return Ok(h.clone()),
            (Type::Struct(hs), Type::Struct(ws)) => {
                Type::Struct(StructType::new(self.fields(hs.fields(), ws.fields(), Some(path))?))
            }
            (Type::List(hl), Type::List(wl)) => Type::List(ListType::new(self.field(
                &hl.element_field,
                &wl.element_field,
                &join(path, "element"),
            )?)),
            (Type::Map(hm), Type::Map(wm)) => Type::Map(MapType::new(
                self.field(&hm.key_field, &wm.key_field, &join(path, "key"))?,
                self.field(&hm.value_field, &wm.value_field, &join(path, "value"))?,
            )),
            (a, b) => {
                return Err(incompatible(format!(
                    "column {path:?} is {a}, the schema makes it {b} (iceberg-rust 0.10.1 cannot change a column's type)"
                )))
            }
        };
        let mut out = h.as_ref().clone();
        out.field_type = Box::new(field_type);
        Ok(Arc::new(out))
    }
}

#[cfg(test)]
mod tests;
