//! Checkpoints: a partition's durable tail becomes segments and a new manifest version
//! (put-if-absent of N+1, so a deposed leader's write fails: `docs/storage-protocol.md`
//! I2), each segment under a key written once (I11); then the tail is trimmed and this
//! incarnation's WAL objects nothing needs any more are deleted (`wal_gc`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};
use uuid::Uuid;

use super::LogEngine;
use crate::clock::now_ms;
use crate::storage::error::{Result, StorageError};
use crate::storage::manifest::{manifest_prefix, Manifest};
use crate::storage::object::IO_CONCURRENCY;
use crate::storage::partition::{PartitionLog, TailBatch};
use crate::storage::producer::ProducerTable;
use crate::storage::segment::{self, segment_path};
use crate::storage::versioned::VersionedObject;

impl LogEngine {
    /// Writes `manifest` as the next version; a lost race means another broker owns the
    /// partition now, so it is closed here.
    pub(super) async fn commit_manifest(
        &self,
        part: &PartitionLog,
        version: u64,
        manifest: Manifest,
    ) -> Result<()> {
        let versions = VersionedObject::new(
            self.store.clone(),
            manifest_prefix(part.topic_id, part.partition),
        );
        let data = Bytes::from(serde_json::to_vec(&manifest).expect("manifest serializes"));
        if !versions.try_write_current(version + 1, data).await? {
            part.close();
            return Err(StorageError::Fenced(format!(
                "manifest version {} of {} was written by another broker",
                version + 1,
                part.name()
            )));
        }
        {
            let mut s = part.state.lock();
            s.log_start_offset = s.log_start_offset.max(manifest.log_start_offset);
            s.manifest = Arc::new(manifest);
            s.manifest_version = version + 1;
        }
        if (version + 1).is_multiple_of(8) {
            if let Err(e) = versions.cleanup(version + 1).await {
                debug!(error = %e, "manifest cleanup failed; next one retries");
            }
        }
        Ok(())
    }

    /// Moves the durable tail of a partition into segments and a new manifest.
    /// Returns whether anything was written.
    pub async fn checkpoint_partition(&self, part: &PartitionLog) -> Result<bool> {
        self.persist_tail(part, false).await
    }

    /// Checkpoints the durable tail; with `release` the manifest is also marked released
    /// (and written even when the tail is empty).
    pub(super) async fn persist_tail(&self, part: &PartitionLog, release: bool) -> Result<bool> {
        self.ensure_not_fenced()?;
        let _w = part.writer.lock().await;
        let (manifest, version, durable, wal_start, epoch, log_start) = {
            let s = part.state.lock();
            if s.closed && !release {
                return Ok(false);
            }
            let durable: Vec<TailBatch> = s
                .tail
                .iter()
                .take_while(|b| b.header.next_offset() <= s.high_watermark)
                .cloned()
                .collect();
            // Read under the partition lock: later appends land at or after this position.
            let wal_start = s
                .tail
                .get(durable.len())
                .map(|b| b.wal)
                .unwrap_or_else(|| self.wal.position(self.wal.open_seq()));
            (
                s.manifest.clone(),
                s.manifest_version,
                durable,
                wal_start,
                s.leader_epoch,
                s.log_start_offset,
            )
        };
        if durable.is_empty() && !release {
            return Ok(false);
        }
        let end = durable
            .last()
            .map_or(manifest.next_offset, |b| b.header.next_offset());
        let mut next = self
            .manifest_after(
                part.topic_id,
                part.partition,
                &manifest,
                &durable,
                log_start,
            )
            .await?;
        next.wal_start = Some(wal_start);
        next.leader_node = self.config.node_id;
        next.leader_incarnation = self.incarnation;
        next.leader_epoch = epoch;
        next.released = release;
        self.commit_manifest(part, version, next).await?;
        let mut s = part.state.lock();
        while s
            .tail
            .front()
            .is_some_and(|b| b.header.next_offset() <= end)
        {
            let b = s.tail.pop_front().expect("front exists");
            s.tail_bytes -= b.bytes.len();
        }
        s.producers.expire(now_ms());
        self.metrics.checkpoints.inc();
        Ok(true)
    }

    /// `manifest` advanced past `batches` (contiguous, starting at its next offset):
    /// the live ones written as new segments, producer state updated.
    pub(super) async fn manifest_after(
        &self,
        topic_id: Uuid,
        partition: i32,
        manifest: &Manifest,
        batches: &[TailBatch],
        log_start: i64,
    ) -> Result<Manifest> {
        let mut next = manifest.clone();
        let Some(last) = batches.last() else {
            return Ok(next);
        };
        let mut producers = ProducerTable::from_snapshot(&manifest.producers);
        for b in batches {
            producers.record(&b.header);
        }
        let live: Vec<&TailBatch> = batches
            .iter()
            .filter(|b| b.header.next_offset() > log_start)
            .collect();
        for chunk in chunk_by_size(&live, self.config.segment_max_bytes) {
            let (data, mut info) = segment::encode(chunk.iter().map(|b| (&b.header, &b.bytes)));
            let seq = self.segment_seq.fetch_add(1, Ordering::Relaxed);
            info.name =
                segment::segment_name(info.base_offset, self.config.node_id, self.incarnation, seq);
            self.store
                .put(&segment_path(topic_id, partition, &info.name), data)
                .await?;
            next.segments.push(info);
        }
        next.next_offset = last.header.next_offset();
        next.log_start_offset = next.log_start_offset.max(log_start);
        producers.expire(now_ms());
        next.producers = producers.snapshot();
        Ok(next)
    }

    /// Checkpoints every partition, then deletes WAL objects nothing needs any more.
    pub async fn checkpoint_all(&self) -> Result<()> {
        let parts = self.partitions();
        let mut results: Vec<Result<bool>> = Vec::with_capacity(parts.len());
        for chunk in parts.chunks(IO_CONCURRENCY) {
            results.extend(
                futures::future::join_all(chunk.iter().map(|p| self.checkpoint_partition(p))).await,
            );
        }
        let mut first_err = None;
        for r in results {
            if let Err(e) = r {
                warn!(error = %e, "partition checkpoint failed");
                first_err.get_or_insert(e);
            }
        }
        self.collect_wal_garbage().await?;
        first_err.map_or(Ok(()), Err)
    }
}

/// Splits consecutive batches into runs of at most `max` bytes each, one segment per
/// run; a batch larger than `max` is a run of its own.
fn chunk_by_size<'a>(batches: &'a [&'a TailBatch], max: usize) -> Vec<&'a [&'a TailBatch]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, b) in batches.iter().enumerate() {
        if i > start && size + b.bytes.len() > max {
            out.push(&batches[start..i]);
            start = i;
            size = 0;
        }
        size += b.bytes.len();
    }
    if start < batches.len() {
        out.push(&batches[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::wal::WalPosition;
    use kafka_protocol::records::Compression;
    use sluice_protocol::record_batch::{encode_batch, BatchHeader, NewRecord};

    /// A tail batch of `len` bytes (only the length matters for chunking).
    fn batch(len: usize) -> TailBatch {
        let real = encode_batch([NewRecord::default()], None, Compression::None);
        TailBatch {
            header: BatchHeader::parse(&real).unwrap(),
            bytes: Bytes::from(vec![0u8; len]),
            wal: WalPosition {
                node: 1,
                incarnation: 1,
                seq: 1,
            },
        }
    }

    fn lens(chunks: &[&[&TailBatch]]) -> Vec<Vec<usize>> {
        chunks
            .iter()
            .map(|c| c.iter().map(|b| b.bytes.len()).collect())
            .collect()
    }

    #[test]
    fn chunks_fill_up_to_the_limit_and_keep_order() {
        let all = [batch(40), batch(60), batch(30), batch(70), batch(10)];
        let refs: Vec<&TailBatch> = all.iter().collect();
        assert_eq!(
            lens(&chunk_by_size(&refs, 100)),
            vec![vec![40, 60], vec![30, 70], vec![10]]
        );
    }

    #[test]
    fn a_batch_larger_than_the_limit_is_a_chunk_of_its_own() {
        let all = [batch(10), batch(500), batch(10)];
        let refs: Vec<&TailBatch> = all.iter().collect();
        assert_eq!(
            lens(&chunk_by_size(&refs, 100)),
            vec![vec![10], vec![500], vec![10]]
        );
    }

    #[test]
    fn no_batches_no_chunks() {
        assert!(chunk_by_size(&[], 100).is_empty());
    }
}
