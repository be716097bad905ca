//! The write path of the engine: a validated batch gets its offsets and goes into the
//! WAL under the partition lock; the produce is acknowledged only once the WAL object
//! holding it is durable and the high watermark has passed it
//! (`docs/storage-protocol.md` I1).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::LogEngine;
use crate::metrics::PartitionLabel;
use crate::storage::error::{Result, StorageError};
use crate::storage::partition::{PartitionLog, TailBatch};
use crate::storage::producer::SequenceCheck;
use crate::storage::wal_writer::FlushState;
use sluice_protocol::record_batch::{self, BatchHeader};

/// The outcome of an append: where the batch landed and the offset the high watermark
/// must reach before it may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub durable_at: i64,
    pub log_start_offset: i64,
    pub duplicate: bool,
}

impl LogEngine {
    /// Assigns offsets to a validated batch and adds it to the WAL. The caller waits with
    /// [`LogEngine::wait_durable`] before acknowledging.
    pub async fn append(
        &self,
        part: &Arc<PartitionLog>,
        batch: &[u8],
        header: BatchHeader,
        timeout: Duration,
    ) -> Result<Appended> {
        self.append_rewritten(part, batch, header, header.base_sequence, timeout)
            .await
    }

    /// [`LogEngine::append`] of a batch rewritten from a client's batch that started at
    /// sequence `client_base` (see `ProducerTable::check_from`).
    pub async fn append_rewritten(
        &self,
        part: &Arc<PartitionLog>,
        batch: &[u8],
        header: BatchHeader,
        client_base: i32,
        timeout: Duration,
    ) -> Result<Appended> {
        let permit = self.wal.reserve(batch.len(), timeout).await?;
        if self.wal.is_stopped() {
            return Err(StorageError::Fenced(
                "this broker's WAL stream is stopped".into(),
            ));
        }
        let mut s = part.state.lock();
        if s.closed {
            return Err(StorageError::NotLeader(part.name()));
        }
        if let SequenceCheck::Duplicate(orig) = s.producers.check_from(&header, client_base)? {
            return Ok(Appended {
                base_offset: orig.base_offset,
                durable_at: orig.next_offset,
                log_start_offset: s.log_start_offset,
                duplicate: true,
            });
        }
        let base = s.next_offset;
        let bytes = record_batch::assign(batch, base, s.leader_epoch);
        let h = BatchHeader {
            base_offset: base,
            partition_leader_epoch: s.leader_epoch,
            ..header
        };
        let pos = self.wal.push(
            part,
            part.topic_id,
            part.partition,
            &bytes,
            h.next_offset(),
            permit,
        );
        s.next_offset = h.next_offset();
        s.producers.record(&h);
        s.tail_bytes += bytes.len();
        s.tail.push_back(TailBatch {
            header: h,
            bytes,
            wal: pos,
        });
        Ok(Appended {
            base_offset: base,
            durable_at: h.next_offset(),
            log_start_offset: s.log_start_offset,
            duplicate: false,
        })
    }

    /// Waits until records below `offset` are durable.
    pub async fn wait_durable(
        &self,
        part: &PartitionLog,
        offset: i64,
        timeout: Duration,
    ) -> Result<()> {
        let mut rx = self.wal.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if part.high_watermark() >= offset {
                self.publish_high_watermark(part);
                return Ok(());
            }
            if rx.borrow_and_update().stopped {
                return Err(StorageError::Fenced(
                    "WAL stream stopped before the write was durable".into(),
                ));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StorageError::ShuttingDown),
                Err(_) => return Err(StorageError::Timeout("WAL durability")),
            }
        }
    }

    /// A receiver that changes whenever a WAL object becomes durable (fetch long-polls).
    pub fn durability_events(&self) -> watch::Receiver<FlushState> {
        self.wal.subscribe()
    }

    /// Sets the partition's high-watermark gauge.
    pub(super) fn publish_high_watermark(&self, part: &PartitionLog) {
        self.metrics
            .high_watermark
            .get_or_create(&PartitionLabel {
                topic: part.topic.clone(),
                partition: part.partition,
            })
            .set(part.high_watermark());
    }
}
