//! The read path of the engine: Fetch from the in-memory tail or from a segment (its
//! sparse index, then windows read through the block cache), and ListOffsets by
//! timestamp and for the largest timestamp.

use std::ops::ControlFlow;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use object_store::path::Path;

use super::LogEngine;
use crate::storage::error::{Result, StorageError};
use crate::storage::partition::{PartitionLog, ReadLimit, ReadPlan};
use crate::storage::segment::{self, decode_index, segment_path, IndexEntry, SegmentInfo};
use sluice_protocol::record_batch::{self, BatchHeader, HEADER_LEN};

/// Smallest window read from a segment at a time.
const MIN_READ_WINDOW: u64 = 64 * 1024;

impl LogEngine {
    /// Reads whole batches from `offset`, as many as `limit` allows.
    pub async fn read(&self, part: &PartitionLog, offset: i64, limit: ReadLimit) -> Result<Bytes> {
        match part.plan_read(offset, limit)? {
            ReadPlan::Empty => Ok(Bytes::new()),
            ReadPlan::Memory(b) => Ok(b),
            ReadPlan::Segment(seg) => {
                let path = segment_path(part.topic_id, part.partition, &seg.name);
                let index = self.load_index(&path, &seg).await?;
                let mut out = BytesMut::new();
                let start = segment::position_for_offset(&index, offset);
                let window = limit.max_bytes.max(1) as u64;
                self.scan_segment(&path, &seg, start, window, |h, b| {
                    if h.next_offset() <= offset {
                        return ControlFlow::Continue(());
                    }
                    if !limit.fits(out.len(), b.len()) {
                        return ControlFlow::Break(());
                    }
                    out.extend_from_slice(b);
                    if out.len() >= limit.max_bytes {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .await?;
                Ok(out.freeze())
            }
        }
    }

    async fn load_index(&self, path: &Path, seg: &SegmentInfo) -> Result<Vec<IndexEntry>> {
        let raw = self
            .cache
            .read(path, seg.object_len(), seg.data_len..seg.object_len())
            .await?;
        Ok(decode_index(&raw))
    }

    /// Visits the batches of a segment from byte `start`, reading windows through the
    /// cache, until `visit` breaks or the segment ends.
    async fn scan_segment(
        &self,
        path: &Path,
        seg: &SegmentInfo,
        start: u64,
        window_hint: u64,
        mut visit: impl FnMut(&BatchHeader, &Bytes) -> ControlFlow<()>,
    ) -> Result<()> {
        let window = window_hint.max(MIN_READ_WINDOW);
        let mut pos = start;
        while pos < seg.data_len {
            let chunk = self
                .cache
                .read(
                    path,
                    seg.object_len(),
                    pos..(pos + window).min(seg.data_len),
                )
                .await?;
            let mut consumed = 0u64;
            for (h, b) in record_batch::split_bytes(&chunk) {
                consumed += b.len() as u64;
                if visit(&h, &b).is_break() {
                    return Ok(());
                }
            }
            if consumed == 0 {
                // A batch larger than the window: read exactly that batch.
                let h = BatchHeader::parse(&chunk).map_err(|e| StorageError::corrupt(path, e))?;
                let len = h.total_len() as u64;
                if chunk.len() < HEADER_LEN || pos + len > seg.data_len {
                    return Err(StorageError::corrupt(path, "batch runs past segment data"));
                }
                let b = self
                    .cache
                    .read(path, seg.object_len(), pos..pos + len)
                    .await?;
                if visit(&h, &b).is_break() {
                    return Ok(());
                }
                consumed = len;
            }
            pos += consumed;
        }
        Ok(())
    }

    /// The first record at or after `timestamp` (offset, timestamp), Kafka's ListOffsets
    /// by time.
    pub async fn offset_for_timestamp(
        &self,
        part: &PartitionLog,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>> {
        let (segments, tail, log_start) = part.search_view();
        let wanted = |h: &BatchHeader| h.max_timestamp >= timestamp && h.next_offset() > log_start;
        for seg in segments.iter().filter(|s| s.max_timestamp >= timestamp) {
            let path = segment_path(part.topic_id, part.partition, &seg.name);
            let index = self.load_index(&path, seg).await?;
            let Some(start) = segment::position_for_timestamp(&index, timestamp) else {
                continue;
            };
            let mut found = None;
            self.scan_segment(&path, seg, start, 0, |h, b| {
                if wanted(h) {
                    found = Some(b.clone());
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await?;
            if let Some(batch) = found {
                if let Some(hit) = first_record_at(&batch, |ts| ts >= timestamp, log_start)? {
                    return Ok(Some(hit));
                }
            }
        }
        for b in tail.iter().filter(|b| wanted(&b.header)) {
            if let Some(hit) = first_record_at(&b.bytes, |ts| ts >= timestamp, log_start)? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (offset, timestamp), ListOffsets `-3`.
    pub async fn max_timestamp(&self, part: &PartitionLog) -> Result<Option<(i64, i64)>> {
        let (segments, tail, log_start) = part.search_view();
        let seg_best = segments
            .iter()
            .max_by_key(|s| (s.max_timestamp, std::cmp::Reverse(s.base_offset)));
        let tail_best = tail.iter().max_by_key(|b| {
            (
                b.header.max_timestamp,
                std::cmp::Reverse(b.header.base_offset),
            )
        });
        let use_segment = match (seg_best, tail_best) {
            (Some(s), Some(t)) => s.max_timestamp >= t.header.max_timestamp,
            (Some(_), None) => true,
            _ => false,
        };
        let batch = match (seg_best, tail_best) {
            (Some(s), _) if use_segment => {
                let path = segment_path(part.topic_id, part.partition, &s.name);
                let index = self.load_index(&path, s).await?;
                let start = segment::position_for_offset(&index, s.max_timestamp_batch);
                let mut found = None;
                self.scan_segment(&path, s, start, 0, |h, b| {
                    if h.base_offset == s.max_timestamp_batch {
                        found = Some(b.clone());
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .await?;
                found
            }
            (_, Some(t)) => Some(t.bytes.clone()),
            _ => None,
        };
        let Some(batch) = batch else { return Ok(None) };
        let max = BatchHeader::parse(&batch)
            .map_err(|e| StorageError::corrupt(part.name(), e))?
            .max_timestamp;
        first_record_at(&batch, |ts| ts == max, log_start)
    }
}

/// Decodes a batch and returns the first record (at or past `log_start`) whose timestamp
/// satisfies `matches`.
fn first_record_at(
    batch: &Bytes,
    matches: impl Fn(i64) -> bool,
    log_start: i64,
) -> Result<Option<(i64, i64)>> {
    let set = RecordBatchDecoder::decode(&mut batch.clone())
        .map_err(|e| StorageError::corrupt("record batch", format!("{e:#}")))?;
    Ok(set
        .records
        .iter()
        .find(|r| r.offset >= log_start && matches(r.timestamp))
        .map(|r| (r.offset, r.timestamp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;
    use sluice_protocol::record_batch::{assign, encode_batch, NewRecord};

    /// Records at offsets 10.. with these timestamps.
    fn batch_at_10(timestamps: &[i64]) -> Bytes {
        let records = timestamps.iter().map(|&timestamp| NewRecord {
            value: Some(Bytes::from_static(b"v")),
            timestamp,
            ..Default::default()
        });
        assign(&encode_batch(records, None, Compression::None), 10, 0)
    }

    #[test]
    fn first_record_at_finds_the_first_matching_timestamp() {
        let b = batch_at_10(&[100, 300, 200, 300]);
        assert_eq!(
            first_record_at(&b, |ts| ts >= 150, 0).unwrap(),
            Some((11, 300))
        );
        assert_eq!(
            first_record_at(&b, |ts| ts == 300, 0).unwrap(),
            Some((11, 300)),
            "the first of equal timestamps"
        );
        assert_eq!(first_record_at(&b, |ts| ts >= 400, 0).unwrap(), None);
    }

    #[test]
    fn first_record_at_skips_records_below_the_log_start() {
        let b = batch_at_10(&[100, 300, 200, 300]);
        assert_eq!(
            first_record_at(&b, |ts| ts == 300, 12).unwrap(),
            Some((13, 300))
        );
        assert_eq!(first_record_at(&b, |_| true, 14).unwrap(), None);
    }

    #[test]
    fn first_record_at_refuses_a_corrupt_batch() {
        let b = batch_at_10(&[100]);
        let truncated = b.slice(..b.len() - 3);
        assert!(matches!(
            first_record_at(&truncated, |_| true, 0),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
