//! Data files for one commit: rows are turned into batches (raw mode: `rows.rs`; schema
//! mode: `values.rs`, with the table's columns as they were when the writer opened),
//! split by the table's partition spec and written as Parquet files of about the target
//! size, under the table's data location, named with the writer's prefix so two brokers
//! never pick the same name. Closing returns the files, which only a commit makes part
//! of the table.

use std::sync::Arc;

use arrow_array::{new_null_array, RecordBatch};
use arrow_schema::Schema as ArrowSchema;
use iceberg::arrow::{schema_to_arrow_schema, RecordBatchPartitionSplitter};
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::Result;
use crate::rows::{raw_batch, Row};
use crate::values::{schema_batch, ValueFormat};

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

// One per window and writer: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Sink {
    Partitioned {
        splitter: RecordBatchPartitionSplitter,
        writer: FanoutWriter<Builder>,
    },
    Unpartitioned(
        DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>,
    ),
}

/// Writes one commit's rows of one topic into data files of `table`.
pub struct DataWriter {
    topic: String,
    arrow_schema: Arc<ArrowSchema>,
    sink: Sink,
    /// Schema mode: how values become columns (None: raw mode).
    values: Option<ValueFormat>,
    rows: u64,
    undecoded: u64,
}

impl DataWriter {
    /// `file_prefix` must be unique per writer and commit (e.g. node and a fresh id).
    pub async fn new(
        table: &Table,
        topic: &str,
        target_file_bytes: u64,
        file_prefix: String,
    ) -> Result<Self> {
        let metadata = table.metadata();
        let schema = metadata.current_schema().clone();
        let arrow_schema = Arc::new(schema_to_arrow_schema(&schema)?);
        // zstd: security logs compress 5-10x, and every engine reads it.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let builder = DataFileWriterBuilder::new(RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(props, schema.clone()),
            target_file_bytes as usize,
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata)?,
            DefaultFileNameGenerator::new(file_prefix, None, DataFileFormat::Parquet),
        ));
        let spec = metadata.default_partition_spec().clone();
        let sink = if spec.is_unpartitioned() {
            Sink::Unpartitioned(builder.build(None).await?)
        } else {
            Sink::Partitioned {
                splitter: RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec)?,
                writer: FanoutWriter::new(builder),
            }
        };
        Ok(DataWriter {
            topic: topic.to_string(),
            arrow_schema,
            sink,
            values: None,
            rows: 0,
            undecoded: 0,
        })
    }

    /// Schema mode: rows' values become the table's columns, read as `values` says.
    /// Open the writer after the table is evolved to the newest schema version
    /// (`table::evolve`): fields the table has no column for are left out.
    pub fn with_values(mut self, values: ValueFormat) -> Self {
        self.values = Some(values);
        self
    }

    pub async fn write(&mut self, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = match &self.values {
            None => raw_batch(&self.arrow_schema, &self.topic, rows)?,
            Some(values) => {
                let (batch, undecoded) =
                    schema_batch(&self.arrow_schema, &self.topic, rows, values)?;
                self.undecoded += undecoded as u64;
                batch
            }
        };
        self.write_batch(batch).await?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Writes rows read back from the table (compaction, a replay keeping the rows
    /// around a window), brought to the table's current columns by name: a column the
    /// batch lacks is null. (A scan reads a snapshot with that snapshot's columns, so
    /// the rows of a table evolved since its last commit come one column short.)
    pub async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let columns = self
            .arrow_schema
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) => c.clone(),
                None => new_null_array(f.data_type(), rows),
            })
            .collect();
        let batch = RecordBatch::try_new(self.arrow_schema.clone(), columns)?;
        match &mut self.sink {
            Sink::Unpartitioned(w) => w.write(batch).await?,
            Sink::Partitioned { splitter, writer } => {
                for (key, part) in splitter.split(&batch)? {
                    writer.write(key, part).await?;
                }
            }
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Schema mode: rows written so far whose value gave no columns (all null but the
    /// lineage; `values.rs`).
    pub fn undecoded(&self) -> u64 {
        self.undecoded
    }

    /// Closes every open file; the data files to commit.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        Ok(match self.sink {
            Sink::Unpartitioned(mut w) => w.close().await?,
            Sink::Partitioned { writer, .. } => writer.close().await?,
        })
    }
}
