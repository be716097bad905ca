//! Dropping the start of a log: retention by time and size, and Kafka's DeleteRecords.
//! Both move the log start offset up in a new manifest version first and delete the
//! segments wholly below it only after that version is committed.

use tracing::{info, warn};

use super::LogEngine;
use crate::storage::error::{Result, StorageError};
use crate::storage::manifest::Manifest;
use crate::storage::partition::PartitionLog;
use crate::storage::segment::{segment_path, SegmentInfo};

impl LogEngine {
    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (-1: the high
    /// watermark) and drops segments wholly below it. Returns the new log start offset.
    pub async fn delete_records(&self, part: &PartitionLog, offset: i64) -> Result<i64> {
        self.ensure_not_fenced()?;
        let _w = part.writer.lock().await;
        let (manifest, version, hw, lso) = {
            let s = part.state.lock();
            (
                s.manifest.clone(),
                s.manifest_version,
                s.high_watermark,
                s.log_start_offset,
            )
        };
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(StorageError::OffsetOutOfRange {
                partition: part.name(),
                offset,
                start: lso,
                end: hw,
            });
        }
        if target <= lso {
            return Ok(lso);
        }
        let mut next = (*manifest).clone();
        next.log_start_offset = target;
        let dropped = drain_segments_below(&mut next, target);
        self.commit_manifest(part, version, next).await?;
        self.delete_segments(part, dropped).await;
        Ok(target)
    }

    /// Drops the oldest segments past `retention_ms` (by their newest record) or while
    /// the log exceeds `retention_bytes`; -1 disables either. Returns segments dropped.
    pub async fn enforce_retention(
        &self,
        part: &PartitionLog,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<usize> {
        self.ensure_not_fenced()?;
        let _w = part.writer.lock().await;
        let (manifest, version, tail_bytes) = {
            let s = part.state.lock();
            (s.manifest.clone(), s.manifest_version, s.tail_bytes)
        };
        let count =
            segments_past_retention(&manifest, tail_bytes, retention_ms, retention_bytes, now_ms);
        if count == 0 {
            return Ok(0);
        }
        let mut next = (*manifest).clone();
        let new_start = next.segments[count - 1].end_offset;
        next.log_start_offset = next.log_start_offset.max(new_start);
        let dropped = drain_segments_below(&mut next, new_start);
        self.commit_manifest(part, version, next).await?;
        info!(partition = %part.name(), segments = count, log_start_offset = new_start, "retention dropped segments");
        self.delete_segments(part, dropped).await;
        Ok(count)
    }

    async fn delete_segments(&self, part: &PartitionLog, dropped: Vec<SegmentInfo>) {
        for seg in dropped {
            let path = segment_path(part.topic_id, part.partition, &seg.name);
            self.cache.evict(&path, seg.object_len());
            if let Err(e) = self.store.delete(&path).await {
                warn!(%path, error = %e, "could not delete segment; it is unreferenced and harmless");
            }
        }
    }
}

/// How many of the oldest segments retention drops: each whose newest record is older
/// than `retention_ms`, or without which the log (segments and `tail_bytes`) still holds
/// at least `retention_bytes`, until the first that is neither. -1 disables either.
fn segments_past_retention(
    manifest: &Manifest,
    tail_bytes: usize,
    retention_ms: i64,
    retention_bytes: i64,
    now_ms: i64,
) -> usize {
    let mut total = manifest.segment_bytes() + tail_bytes as u64;
    let mut count = 0;
    for seg in &manifest.segments {
        let expired = retention_ms >= 0 && seg.max_timestamp < now_ms.saturating_sub(retention_ms);
        let oversized =
            retention_bytes >= 0 && total.saturating_sub(seg.data_len) >= retention_bytes as u64;
        if !(expired || oversized) {
            break;
        }
        total -= seg.data_len;
        count += 1;
    }
    count
}

/// Removes the segments that end at or below `offset` from `manifest` and returns them.
fn drain_segments_below(manifest: &mut Manifest, offset: i64) -> Vec<SegmentInfo> {
    let keep = manifest
        .segments
        .partition_point(|s| s.end_offset <= offset);
    manifest.segments.drain(..keep).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// A manifest with segments [0, 10), [10, 20), [20, 30) of 100 bytes each, whose
    /// newest records are at times 1000, 2000, 3000.
    fn three_segments() -> Manifest {
        let mut m = Manifest::empty(Uuid::nil(), 0);
        for i in 0..3i64 {
            m.segments.push(SegmentInfo {
                name: format!("{i}"),
                base_offset: i * 10,
                end_offset: i * 10 + 10,
                data_len: 100,
                index_len: 24,
                max_timestamp: (i + 1) * 1000,
                max_timestamp_batch: i * 10,
            });
        }
        m.next_offset = 30;
        m
    }

    fn bases(segments: &[SegmentInfo]) -> Vec<i64> {
        segments.iter().map(|s| s.base_offset).collect()
    }

    #[test]
    fn draining_takes_only_segments_wholly_below_the_offset() {
        let mut m = three_segments();
        assert!(
            drain_segments_below(&mut m, 9).is_empty(),
            "[0, 10) holds 9"
        );
        let dropped = drain_segments_below(&mut m, 25);
        assert_eq!(bases(&dropped), vec![0, 10]);
        assert_eq!(bases(&m.segments), vec![20]);
        assert_eq!(bases(&drain_segments_below(&mut m, 30)), vec![20]);
        assert!(m.segments.is_empty());
    }

    #[test]
    fn time_retention_drops_the_oldest_segments_by_their_newest_record() {
        let m = three_segments();
        assert_eq!(segments_past_retention(&m, 0, 1000, -1, 2500), 1);
        assert_eq!(segments_past_retention(&m, 0, 1000, -1, 3500), 2);
        assert_eq!(segments_past_retention(&m, 0, 0, -1, 10_000), 3);
        assert_eq!(
            segments_past_retention(&m, 0, -1, -1, 10_000),
            0,
            "disabled"
        );
    }

    #[test]
    fn size_retention_drops_while_the_rest_still_holds_the_limit() {
        let m = three_segments();
        // 300 bytes of segments and 50 in the tail.
        assert_eq!(segments_past_retention(&m, 50, -1, 250, 0), 1);
        assert_eq!(segments_past_retention(&m, 50, -1, 150, 0), 2);
        assert_eq!(segments_past_retention(&m, 50, -1, 0, 0), 3);
        assert_eq!(segments_past_retention(&m, 50, -1, 351, 0), 0);
    }

    #[test]
    fn retention_stops_at_the_first_segment_it_keeps() {
        let mut m = three_segments();
        // The middle segment is newer than the last: time keeps it, and so the last.
        m.segments[1].max_timestamp = 9_000;
        assert_eq!(segments_past_retention(&m, 0, 1000, -1, 5_000), 1);
    }
}
