//! Validating one produce batch: decode its records (decompressing them) and check each
//! value with the topic's validator. Nothing is rewritten here; `rewrite` does that only
//! when a record failed.

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use sluice_schema::validate::{Invalid, Validator};

/// A decoded batch and the records in it that failed validation.
pub struct CheckedBatch {
    pub compression: Compression,
    pub records: Vec<Record>,
    /// `(index in the batch, why)`, ascending by index.
    pub invalid: Vec<(usize, Invalid)>,
}

impl CheckedBatch {
    pub fn is_valid(&self) -> bool {
        self.invalid.is_empty()
    }

    pub fn is_invalid(&self, index: usize) -> bool {
        self.invalid
            .binary_search_by_key(&index, |(i, _)| *i)
            .is_ok()
    }
}

/// Decodes `batch` (one v2 batch a producer sent, already checked for framing and CRC)
/// and validates every record's value. The error says why the batch did not decode.
pub fn check_batch(batch: &Bytes, validator: &Validator) -> Result<CheckedBatch, String> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| format!("the batch's records do not decode: {e:#}"))?;
    let invalid = set
        .records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| validator.validate(r.value.as_deref()).err().map(|e| (i, e)))
        .collect();
    Ok(CheckedBatch {
        compression: set.compression,
        records: set.records,
        invalid,
    })
}
