//! Hand-over of partitions between leaders: taking over (fence the previous leader's
//! WAL stream unless it released the partition, move its tail into segments, claim the
//! manifest's next version), graceful release, and closing or deleting a partition
//! (`docs/storage-protocol.md`, "Leadership: take-over and release").

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tracing::{info, warn};
use uuid::Uuid;

use super::{LogEngine, PartitionKey};
use crate::metrics::PartitionLabel;
use crate::storage::error::{Result, StorageError};
use crate::storage::fence::stale_claim;
use crate::storage::manifest::{manifest_prefix, Manifest};
use crate::storage::object::IO_CONCURRENCY;
use crate::storage::partition::{PartitionLog, TailBatch};
use crate::storage::segment::{self, segment_path};
use crate::storage::versioned::VersionedObject;
use crate::storage::wal_replay::{read_stream_tail, unreleased_tail};

/// A partition to lead, as the assignment gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub epoch: i32,
}

#[derive(Debug, thiserror::Error)]
enum TakeOverError {
    #[error("the manifest changed during take-over")]
    LostRace,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl LogEngine {
    /// Takes leadership of partitions (`docs/storage-protocol.md`, "Leadership:
    /// take-over and release"): for each, reads the manifest; unless the previous leader
    /// released it, fences that leader's WAL stream and moves the partition's records
    /// past the manifest into a segment; then claims the manifest's next version with
    /// this incarnation and `epoch`. Streams are read once for all claims that need them.
    pub async fn take_over(&self, claims: Vec<Claim>) -> Vec<(Claim, Result<Arc<PartitionLog>>)> {
        let mut done = Vec::with_capacity(claims.len());
        let mut pending: Vec<Claim> = Vec::new();
        for c in claims {
            match self.partition(c.topic_id, c.partition) {
                Some(p) if !p.is_closed() => done.push((c, Ok(p))),
                _ => pending.push(c),
            }
        }
        // A lost manifest race means someone wrote the manifest between our read and our
        // claim (a checkpoint of a zombie, or a competing claim): read again.
        for round in 0..5 {
            if pending.is_empty() {
                break;
            }
            let attempt = self.take_over_round(&pending).await;
            let mut retry = Vec::new();
            for (c, r) in pending.into_iter().zip(attempt) {
                match r {
                    Err(TakeOverError::LostRace) if round < 4 => retry.push(c),
                    Err(TakeOverError::LostRace) => {
                        let e = StorageError::Fenced(format!(
                            "{}-{}: manifest kept changing during take-over",
                            c.topic, c.partition
                        ));
                        done.push((c, Err(e)));
                    }
                    Err(TakeOverError::Storage(e)) => done.push((c, Err(e))),
                    Ok(p) => done.push((c, Ok(p))),
                }
            }
            pending = retry;
        }
        done
    }

    async fn take_over_round(
        &self,
        claims: &[Claim],
    ) -> Vec<Result<Arc<PartitionLog>, TakeOverError>> {
        let keys: Vec<PartitionKey> = claims.iter().map(|c| (c.topic_id, c.partition)).collect();
        let manifests: Vec<Result<(u64, Manifest)>> = futures::stream::iter(keys)
            .map(|(id, p)| self.read_manifest(id, p))
            .buffered(IO_CONCURRENCY)
            .collect()
            .await;
        // The tails to read, by the WAL stream that holds them.
        let mut streams: BTreeMap<(i32, u64), HashMap<PartitionKey, u64>> = BTreeMap::new();
        let me = (self.config.node_id, self.incarnation);
        for (c, m) in claims.iter().zip(&manifests) {
            if let Ok((_, m)) = m {
                if stale_claim(c.epoch, m, me).is_some() {
                    continue; // never fence a newer leader
                }
                if let Some((node, inc, from)) = unreleased_tail(m) {
                    streams
                        .entry((node, inc))
                        .or_default()
                        .insert((c.topic_id, c.partition), from);
                }
            }
        }
        let mut tails: BTreeMap<PartitionKey, Vec<TailBatch>> = BTreeMap::new();
        let mut stream_errors: BTreeMap<(i32, u64), String> = BTreeMap::new();
        for ((node, inc), wanted) in streams {
            match read_stream_tail(&self.store, me, (node, inc), &wanted).await {
                Ok(found) => tails.extend(found),
                Err(e) => {
                    warn!(node, incarnation = inc, error = %e, "could not recover a WAL stream");
                    stream_errors.insert((node, inc), e.to_string());
                }
            }
        }
        let mut out = Vec::with_capacity(claims.len());
        for (c, m) in claims.iter().zip(manifests) {
            let result = match m {
                Err(e) => Err(TakeOverError::Storage(e)),
                Ok((_, manifest)) if stale_claim(c.epoch, &manifest, me).is_some() => {
                    let why = stale_claim(c.epoch, &manifest, me).unwrap_or_default();
                    Err(TakeOverError::Storage(StorageError::Fenced(format!(
                        "{}-{}: {why}",
                        c.topic, c.partition
                    ))))
                }
                Ok((version, manifest)) => {
                    let failed = unreleased_tail(&manifest)
                        .and_then(|(n, i, _)| stream_errors.get(&(n, i)).cloned());
                    match failed {
                        Some(e) => Err(TakeOverError::Storage(StorageError::Fenced(format!(
                            "{}-{}: previous leader's WAL stream unreadable: {e}",
                            c.topic, c.partition
                        )))),
                        None => {
                            let tail = tails.remove(&(c.topic_id, c.partition)).unwrap_or_default();
                            self.claim(c, version, manifest, tail).await
                        }
                    }
                }
            };
            out.push(result);
        }
        out
    }

    async fn read_manifest(&self, topic_id: Uuid, partition: i32) -> Result<(u64, Manifest)> {
        crate::storage::manifest::read_latest(&self.store, topic_id, partition).await
    }

    /// Writes the recovered tail as segments and claims the manifest's next version.
    async fn claim(
        &self,
        c: &Claim,
        version: u64,
        manifest: Manifest,
        tail: Vec<TailBatch>,
    ) -> Result<Arc<PartitionLog>, TakeOverError> {
        let name = format!("{}-{}", c.topic, c.partition);
        let mut next_offset = manifest.next_offset;
        let mut live = Vec::with_capacity(tail.len());
        for b in tail {
            if b.header.next_offset() <= next_offset {
                continue; // already in a segment
            }
            if b.header.base_offset != next_offset {
                return Err(TakeOverError::Storage(StorageError::Gap {
                    partition: name,
                    expected: next_offset,
                    found: b.header.base_offset,
                }));
            }
            next_offset = b.header.next_offset();
            live.push(b);
        }
        let recovered = live.len();
        let log_start = manifest.log_start_offset;
        let mut next = self
            .manifest_after(c.topic_id, c.partition, &manifest, &live, log_start)
            .await?;
        next.leader_node = self.config.node_id;
        next.leader_incarnation = self.incarnation;
        next.leader_epoch = c.epoch;
        next.released = false;
        // Records of this partition only ever go to WAL objects from here on.
        next.wal_start = Some(self.wal.position(self.wal.open_seq()));
        next.record_epoch(c.epoch);
        if next.log_start_offset > next.next_offset {
            next.log_start_offset = next.next_offset;
        }
        let versions =
            VersionedObject::new(self.store.clone(), manifest_prefix(c.topic_id, c.partition));
        let data = Bytes::from(serde_json::to_vec(&next).expect("manifest serializes"));
        if !versions.try_write_current(version + 1, data).await? {
            return Err(TakeOverError::LostRace);
        }
        info!(
            partition = %name,
            epoch = c.epoch,
            recovered_batches = recovered,
            next_offset = next.next_offset,
            previous_leader = manifest.leader_node,
            released = manifest.released,
            "took over partition"
        );
        let part = PartitionLog::new(c.topic.clone(), next, version + 1, c.epoch);
        self.publish_high_watermark(&part);
        let mut map = self.partitions.write();
        if let Some(old) = map.insert((c.topic_id, c.partition), part.clone()) {
            old.close();
        }
        Ok(part)
    }

    /// Hands a partition over gracefully: no more appends, everything in flight made
    /// durable, the tail checkpointed and the manifest marked released, so the next
    /// leader needs no fence (`docs/storage-protocol.md` I4).
    pub async fn release_partition(&self, topic_id: Uuid, partition: i32) -> Result<()> {
        let Some(part) = self.partition(topic_id, partition) else {
            return Ok(());
        };
        let end = {
            let mut s = part.state.lock();
            s.closed = true;
            s.next_offset
        };
        self.wait_durable(&part, end, Duration::from_secs(30))
            .await?;
        self.persist_tail(&part, true).await?;
        self.forget(&part);
        info!(partition = %part.name(), next_offset = end, "released partition");
        Ok(())
    }

    /// Stops serving a partition that another broker leads now (`taken`), or whose
    /// topic was deleted.
    pub fn close_partition(&self, topic_id: Uuid, partition: i32, taken: bool) {
        if let Some(part) = self.partition(topic_id, partition) {
            part.close();
            if taken {
                self.keep_wal.store(true, Ordering::SeqCst);
            }
            self.forget(&part);
            info!(partition = %part.name(), taken, "closed partition");
        }
    }

    fn forget(&self, part: &Arc<PartitionLog>) {
        let mut map = self.partitions.write();
        if map
            .get(&(part.topic_id, part.partition))
            .is_some_and(|p| Arc::ptr_eq(p, part))
        {
            map.remove(&(part.topic_id, part.partition));
        }
        drop(map);
        let label = PartitionLabel {
            topic: part.topic.clone(),
            partition: part.partition,
        };
        self.metrics.high_watermark.remove(&label);
        self.metrics.partition_produce_bytes.remove(&label);
    }

    /// Stops serving a partition and deletes all its objects.
    pub async fn delete_partition(&self, topic_id: Uuid, partition: i32) -> Result<()> {
        let removed = self.partitions.write().remove(&(topic_id, partition));
        if let Some(p) = removed {
            p.close();
            let _w = p.writer.lock().await;
            let segments = p.state.lock().manifest.segments.clone();
            for seg in segments {
                self.cache.evict(
                    &segment_path(topic_id, partition, &seg.name),
                    seg.object_len(),
                );
            }
            self.metrics.high_watermark.remove(&PartitionLabel {
                topic: p.topic.clone(),
                partition,
            });
        }
        let keys = self
            .store
            .list(&segment::partition_prefix(topic_id, partition))
            .await?;
        self.delete_all(keys).await
    }
}
