//! Copying the rows of some data files into new ones: all of them (compaction) or all
//! but those of some offset ranges (a replay replacing a window). Files are read with
//! iceberg-rust's Arrow reader, which brings older files to the table's current columns,
//! in the order given, and written by a [`DataWriter`] (the table's partition spec and
//! target size).

use std::collections::{BTreeMap, HashMap};

use arrow_array::{Array, BooleanArray, Int32Array, Int64Array, RecordBatch};
use arrow_select::filter::filter_record_batch;
use futures::TryStreamExt;
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::FileScanTask;
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};
use iceberg::table::Table;
use iceberg::Runtime;

use crate::columns::{OFFSET, OFFSET_FIELD_ID, PARTITION, PARTITION_FIELD_ID};
use crate::error::{LakeError, Result};
use crate::table::TOPIC_PROPERTY;
use crate::writer::DataWriter;

/// Per partition, offsets `[first, last]`.
pub type Ranges = BTreeMap<i32, (i64, i64)>;

/// What a copy wrote.
#[derive(Debug)]
pub struct Copied {
    pub files: Vec<DataFile>,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// The scan tasks of the table's current snapshot, by data file path.
pub async fn scan_tasks(table: &Table) -> Result<BTreeMap<String, FileScanTask>> {
    Ok(table
        .scan()
        .select_all()
        .build()?
        .plan_files()
        .await?
        .map_ok(|t| (t.data_file_path.clone(), t))
        .try_collect()
        .await?)
}

/// Copies the rows of `files` (tasks taken from `tasks`) into new files named with
/// `prefix`, leaving out the rows in `drop`.
pub async fn copy_rows(
    table: &Table,
    files: &[DataFile],
    tasks: &mut BTreeMap<String, FileScanTask>,
    target_file_bytes: u64,
    prefix: &str,
    drop: &Ranges,
) -> Result<Copied> {
    let topic = table
        .metadata()
        .properties()
        .get(TOPIC_PROPERTY)
        .cloned()
        .unwrap_or_default();
    let mut writer = DataWriter::new(table, &topic, target_file_bytes, prefix.to_string()).await?;
    let (mut rows_read, mut rows_written) = (0, 0);
    for file in files {
        let task = tasks.remove(file.file_path()).ok_or_else(|| {
            LakeError::Spec(format!(
                "{} is not in the table's current snapshot",
                file.file_path()
            ))
        })?;
        let reader = ArrowReaderBuilder::new(table.file_io().clone(), Runtime::current()).build();
        let mut batches = reader
            .read(Box::pin(futures::stream::iter([Ok(task)])))?
            .stream();
        while let Some(batch) = batches.try_next().await? {
            rows_read += batch.num_rows() as u64;
            let batch = if drop.is_empty() {
                batch
            } else {
                filter_record_batch(&batch, &keep_mask(&batch, drop)?)?
            };
            rows_written += batch.num_rows() as u64;
            writer.write_batch(batch).await?;
        }
    }
    Ok(Copied {
        files: writer.finish().await?,
        rows_read,
        rows_written,
    })
}

/// True for the rows outside every range of `drop`.
fn keep_mask(batch: &RecordBatch, drop: &Ranges) -> Result<BooleanArray> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| LakeError::Spec(format!("a data file has no column {name}")))
    };
    let partitions = column(PARTITION)?;
    let offsets = column(OFFSET)?;
    let (Some(partitions), Some(offsets)) = (
        partitions.as_any().downcast_ref::<Int32Array>(),
        offsets.as_any().downcast_ref::<Int64Array>(),
    ) else {
        return Err(LakeError::Spec(format!(
            "{PARTITION} or {OFFSET} has another type than the table's"
        )));
    };
    Ok((0..batch.num_rows())
        .map(|i| {
            let dropped = !partitions.is_null(i)
                && drop
                    .get(&partitions.value(i))
                    .is_some_and(|(a, b)| (*a..=*b).contains(&offsets.value(i)));
            Some(!dropped)
        })
        .collect())
}

/// Whether `file` may hold a row in `ranges`, by its column bounds (true when unknown).
pub fn may_hold(file: &DataFile, ranges: &Ranges) -> bool {
    let (lo, hi) = (file.lower_bounds(), file.upper_bounds());
    let (Some(p_lo), Some(p_hi), Some(o_lo), Some(o_hi)) = (
        bound(lo, PARTITION_FIELD_ID),
        bound(hi, PARTITION_FIELD_ID),
        bound(lo, OFFSET_FIELD_ID),
        bound(hi, OFFSET_FIELD_ID),
    ) else {
        return true;
    };
    ranges
        .iter()
        .any(|(p, (a, b))| (p_lo..=p_hi).contains(&(*p as i64)) && o_lo <= *b && *a <= o_hi)
}

/// An integer column bound of a data file (lower or upper, by field id).
pub fn bound(bounds: &HashMap<i32, Datum>, field_id: i32) -> Option<i64> {
    match bounds.get(&field_id).map(Datum::literal) {
        Some(PrimitiveLiteral::Int(v)) => Some(*v as i64),
        Some(PrimitiveLiteral::Long(v)) => Some(*v),
        _ => None,
    }
}
