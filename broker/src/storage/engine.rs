//! The log engine of one broker: appends through the WAL, reads from the tail or from
//! segments, checkpoints, retention, record deletion, and the hand-over of partitions
//! between leaders: graceful release, and take-over that fences the previous leader's
//! WAL stream and moves its tail into a segment.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use kafka_protocol::records::RecordBatchDecoder;
use object_store::path::Path;
use parking_lot::{Mutex, RwLock};
use sluice_protocol::record_batch::{self, BatchHeader, HEADER_LEN};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::cache::BlockCache;
use super::error::{Result, StorageError};
use super::manifest::{manifest_prefix, Manifest};
use super::object::{parse_seq, Created, Store};
use super::partition::{PartitionLog, ReadPlan, TailBatch};
use super::producer::{ProducerTable, SequenceCheck};
use super::segment::{self, decode_index, segment_path, IndexEntry, SegmentInfo};
use super::versioned::VersionedObject;
use super::wal::{self, WalObject, WalPosition};
use super::wal_writer::WalWriter;
use crate::metrics::{Metrics, PartitionLabel};

/// Objects fetched at once during recovery and cleanup.
const IO_CONCURRENCY: usize = 16;
/// Smallest window read from a segment at a time.
const MIN_READ_WINDOW: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub node_id: i32,
    pub wal_linger: Duration,
    pub wal_max_bytes: usize,
    pub max_pending_bytes: usize,
    pub checkpoint_interval: Duration,
    pub checkpoint_bytes: usize,
    pub segment_max_bytes: usize,
    pub cache_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node_id: 0,
            wal_linger: Duration::from_millis(10),
            wal_max_bytes: 8 * 1024 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(30),
            checkpoint_bytes: 128 * 1024 * 1024,
            segment_max_bytes: 64 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The outcome of an append: where the batch landed and the offset the high watermark
/// must reach before it may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub durable_at: i64,
    pub log_start_offset: i64,
    pub duplicate: bool,
}

type PartitionKey = (Uuid, i32);

pub struct LogEngine {
    store: Store,
    config: EngineConfig,
    incarnation: u64,
    wal: Arc<WalWriter>,
    cache: BlockCache,
    partitions: RwLock<BTreeMap<PartitionKey, Arc<PartitionLog>>>,
    /// Set once a partition was taken from this broker without a release: its tail is
    /// still only in this stream's WAL objects, which its new leader is about to read,
    /// so none may be deleted any more.
    keep_wal: std::sync::atomic::AtomicBool,
    /// Numbers this incarnation's segment objects, so each key is written exactly once:
    /// a deposed leader retrying a checkpoint from the same base offset must never
    /// overwrite a segment that a committed manifest already references (found by the
    /// simulation, seed 3146).
    segment_seq: std::sync::atomic::AtomicU64,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl LogEngine {
    /// Starts a new incarnation of this node. It leads nothing until partitions are
    /// taken over ([`LogEngine::take_over`]), which is also how the records of this
    /// node's earlier incarnations are recovered.
    pub async fn open(
        store: Store,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>> {
        let node = config.node_id;
        let incarnation = allocate_incarnation(&store, node).await?;
        info!(node, incarnation, "new incarnation");
        let wal = Arc::new(WalWriter::new(
            store.clone(),
            node,
            incarnation,
            config.wal_linger,
            config.wal_max_bytes,
            config.max_pending_bytes,
            metrics.clone(),
        ));
        let engine = Arc::new(LogEngine {
            cache: BlockCache::new(store.clone(), config.cache_bytes, metrics.clone()),
            store,
            config,
            incarnation,
            wal,
            partitions: RwLock::new(BTreeMap::new()),
            keep_wal: std::sync::atomic::AtomicBool::new(false),
            segment_seq: std::sync::atomic::AtomicU64::new(0),
            metrics,
            shutdown: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        });
        engine.start_background();
        Ok(engine)
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn start_background(self: &Arc<Self>) {
        let wal = self.wal.clone();
        let stop = self.shutdown.subscribe();
        let flusher = tokio::spawn(async move { wal.run(stop).await });
        let engine = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        let interval = self.config.checkpoint_interval;
        let threshold = self.config.checkpoint_bytes;
        let checkpointer = tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => return,
                }
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                let tail = engine.tail_bytes();
                engine.metrics.tail_bytes.set(tail as i64);
                if tail >= threshold || (tail > 0 && last.elapsed() >= interval) {
                    if let Err(e) = engine.checkpoint_all().await {
                        warn!(error = %e, "checkpoint failed; will retry");
                    }
                    last = Instant::now();
                }
            }
        });
        self.tasks.lock().extend([flusher, checkpointer]);
    }

    /// Flushes the WAL, checkpoints every partition and stops background work.
    pub async fn shutdown(&self) -> Result<()> {
        self.shutdown.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
        self.wal.flush().await?;
        self.checkpoint_all().await?;
        self.wal.stop();
        Ok(())
    }

    /// Durable bytes held in memory past the last checkpoint, over all partitions.
    pub fn tail_bytes(&self) -> usize {
        self.partitions
            .read()
            .values()
            .map(|p| p.state.lock().tail_bytes)
            .sum()
    }

    /// Bytes held by the segment block cache.
    pub fn cache_bytes(&self) -> u64 {
        self.cache.weight()
    }

    pub fn is_throttling(&self) -> bool {
        self.wal.is_throttling()
    }

    /// Whether another broker fenced this incarnation's WAL stream: it can never
    /// acknowledge again and must restart as a new incarnation.
    pub fn is_fenced(&self) -> bool {
        self.wal.is_stopped()
    }

    pub fn partition(&self, topic_id: Uuid, partition: i32) -> Option<Arc<PartitionLog>> {
        self.partitions.read().get(&(topic_id, partition)).cloned()
    }

    pub fn partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Takes leadership of partitions (DESIGN "Leadership, moves and fencing"): for each,
    /// reads the manifest; unless the previous leader released it, fences that leader's
    /// WAL stream and moves the partition's records past the manifest into a segment;
    /// then claims the manifest's next version with this incarnation and `epoch`.
    /// Streams are read once for all claims that need them.
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
                if stale_claim(c, m, me).is_some() {
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
            match self.read_stream_tail(node, inc, &wanted).await {
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
                Ok((_, manifest)) if stale_claim(c, &manifest, me).is_some() => {
                    let why = stale_claim(c, &manifest, me).unwrap_or_default();
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
        super::manifest::read_latest(&self.store, topic_id, partition).await
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

    /// Fences another incarnation's WAL stream (unless it is this one) and returns the
    /// batches of the wanted partitions at or past their starting sequence, in stream
    /// order.
    async fn read_stream_tail(
        &self,
        node: i32,
        inc: u64,
        wanted: &HashMap<PartitionKey, u64>,
    ) -> Result<BTreeMap<PartitionKey, Vec<TailBatch>>> {
        let started = Instant::now();
        let from = wanted.values().copied().min().unwrap_or(1);
        let listed = list_stream(&self.store, node, inc).await?;
        let seqs = if node == self.config.node_id && inc == self.incarnation {
            // Our own live stream: nothing to fence, every object is readable.
            listed
        } else {
            fence_stream(&self.store, node, inc, listed).await?.0
        };
        let seqs: Vec<u64> = seqs.into_iter().filter(|s| *s >= from).collect();
        let objects = seqs.len();
        let mut out: BTreeMap<PartitionKey, Vec<TailBatch>> = BTreeMap::new();
        let mut fetched = futures::stream::iter(seqs)
            .map(|seq| async move {
                let pos = WalPosition {
                    node,
                    incarnation: inc,
                    seq,
                };
                let data = self.store.get(&pos.path()).await?.ok_or_else(|| {
                    StorageError::corrupt(pos.path(), "listed WAL object vanished")
                })?;
                Ok::<_, StorageError>((pos, data))
            })
            .buffered(IO_CONCURRENCY);
        while let Some(r) = fetched.next().await {
            let (pos, data) = r?;
            let WalObject::Data(entries) = wal::decode(&pos.path(), &data)? else {
                continue;
            };
            for e in entries {
                let key = (e.topic_id, e.partition);
                if wanted.get(&key).is_some_and(|from| pos.seq >= *from) {
                    let header = BatchHeader::parse(&e.batch)
                        .map_err(|err| StorageError::corrupt(pos.path(), err))?;
                    out.entry(key).or_default().push(TailBatch {
                        header,
                        bytes: e.batch,
                        wal: pos,
                    });
                }
            }
        }
        info!(
            node,
            incarnation = inc,
            wal_objects = objects,
            partitions = wanted.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read back a WAL stream"
        );
        Ok(out)
    }

    /// Hands a partition over gracefully: no more appends, everything in flight made
    /// durable, the tail checkpointed and the manifest marked released, so the next
    /// leader needs no fence (DESIGN invariant 4).
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
                self.keep_wal
                    .store(true, std::sync::atomic::Ordering::SeqCst);
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

    async fn delete_all(&self, keys: Vec<Path>) -> Result<()> {
        for chunk in keys.chunks(IO_CONCURRENCY) {
            for r in futures::future::join_all(chunk.iter().map(|k| self.store.delete(k))).await {
                r?;
            }
        }
        Ok(())
    }

    /// Assigns offsets to a validated batch and adds it to the WAL. The caller waits with
    /// [`LogEngine::wait_durable`] before acknowledging.
    pub async fn append(
        &self,
        part: &Arc<PartitionLog>,
        batch: &[u8],
        header: BatchHeader,
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
        if let SequenceCheck::Duplicate(orig) = s.producers.check(&header)? {
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
    pub fn durability_events(&self) -> watch::Receiver<super::wal_writer::FlushState> {
        self.wal.subscribe()
    }

    fn publish_high_watermark(&self, part: &PartitionLog) {
        self.metrics
            .high_watermark
            .get_or_create(&PartitionLabel {
                topic: part.topic.clone(),
                partition: part.partition,
            })
            .set(part.high_watermark());
    }

    /// Reads whole batches from `offset`: at least one batch if any is available, then
    /// more while under `max_bytes`.
    pub async fn read(&self, part: &PartitionLog, offset: i64, max_bytes: usize) -> Result<Bytes> {
        match part.plan_read(offset, max_bytes)? {
            ReadPlan::Empty => Ok(Bytes::new()),
            ReadPlan::Memory(b) => Ok(b),
            ReadPlan::Segment(seg) => {
                let path = segment_path(part.topic_id, part.partition, &seg.name);
                let index = self.load_index(&path, &seg).await?;
                let mut out = BytesMut::new();
                let start = segment::position_for_offset(&index, offset);
                self.scan_segment(&path, &seg, start, max_bytes as u64, |h, b| {
                    if h.next_offset() <= offset {
                        return ControlFlow::Continue(());
                    }
                    if !out.is_empty() && out.len() + b.len() > max_bytes {
                        return ControlFlow::Break(());
                    }
                    out.extend_from_slice(b);
                    if out.len() >= max_bytes {
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

    /// A fenced incarnation changes nothing in the bucket any more.
    fn ensure_not_fenced(&self) -> Result<()> {
        if self.wal.is_stopped() {
            return Err(StorageError::Fenced(
                "this broker's WAL stream is fenced; it no longer writes manifests".into(),
            ));
        }
        Ok(())
    }

    /// Writes `manifest` as the next version; a lost race means another broker owns the
    /// partition now, so it is closed here.
    async fn commit_manifest(
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
        if (version + 1) % 8 == 0 {
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
    async fn persist_tail(&self, part: &PartitionLog, release: bool) -> Result<bool> {
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
    async fn manifest_after(
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
            let seq = self
                .segment_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    /// Deletes this incarnation's WAL objects below the oldest one an open partition's
    /// tail still needs. (Streams of earlier incarnations are collected by the
    /// controller, which knows when no manifest needs them.)
    async fn collect_wal_garbage(&self) -> Result<()> {
        if self.keep_wal.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let mut needed = self.wal.open_seq();
        for p in self.partitions() {
            let s = p.state.lock();
            if let Some(b) = s.tail.front() {
                needed = needed.min(b.wal.seq);
            }
        }
        let keys: Vec<Path> = self
            .wal
            .take_written_below(needed)
            .into_iter()
            .map(|seq| self.wal.position(seq).path())
            .collect();
        self.delete_all(keys).await
    }

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
        let mut total = manifest.segment_bytes() + tail_bytes as u64;
        let mut count = 0;
        for seg in &manifest.segments {
            let expired =
                retention_ms >= 0 && seg.max_timestamp < now_ms.saturating_sub(retention_ms);
            let oversized = retention_bytes >= 0
                && total.saturating_sub(seg.data_len) >= retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            total -= seg.data_len;
            count += 1;
        }
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

fn drain_segments_below(manifest: &mut Manifest, offset: i64) -> Vec<SegmentInfo> {
    let keep = manifest
        .segments
        .partition_point(|s| s.end_offset <= offset);
    manifest.segments.drain(..keep).collect()
}

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

/// Claims the next incarnation number of `node` (a versioned object in `meta/nodes`).
async fn allocate_incarnation(store: &Store, node: i32) -> Result<u64> {
    let versions = VersionedObject::new(
        store.clone(),
        Path::from(format!("meta/nodes/{node}/incarnation")),
    );
    loop {
        let current = versions.latest().await?.map_or(0, |(v, _)| v);
        let stamp = serde_json::json!({ "started_ms": now_ms() }).to_string();
        if versions.try_write(current + 1, Bytes::from(stamp)).await? {
            let _ = versions.cleanup(current + 1).await;
            return Ok(current + 1);
        }
    }
}

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

/// Why `c` must not claim the partition whose manifest is `m`: it was claimed at a
/// newer epoch, or at this epoch by another incarnation, so the assignment this broker
/// acts on is stale (its metadata is behind). Claiming would fence the newer leader
/// and move the epoch back.
pub fn stale_claim(c: &Claim, m: &Manifest, me: (i32, u64)) -> Option<String> {
    let claimed = m.leader_node >= 0 && m.leader_incarnation != 0;
    let other = (m.leader_node, m.leader_incarnation) != me;
    if m.leader_epoch > c.epoch || (claimed && other && m.leader_epoch == c.epoch) {
        return Some(format!(
            "assignment at epoch {} is stale: node {} incarnation {} claimed epoch {}",
            c.epoch, m.leader_node, m.leader_incarnation, m.leader_epoch
        ));
    }
    None
}

/// The WAL stream (node, incarnation) and first sequence holding a manifest's
/// un-checkpointed records, unless its leader released it. A manifest written before
/// claims recorded `wal_start` may have its tail anywhere in the stream.
pub fn unreleased_tail(m: &Manifest) -> Option<(i32, u64, u64)> {
    if m.released || m.leader_node < 0 || m.leader_incarnation == 0 {
        return None;
    }
    let from = m.wal_start.map_or(1, |w| w.seq);
    Some((m.leader_node, m.leader_incarnation, from))
}

/// The sequences present in a WAL stream, ascending.
async fn list_stream(store: &Store, node: i32, incarnation: u64) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = store
        .list(&wal::stream_prefix(node, incarnation))
        .await?
        .iter()
        .filter_map(parse_seq)
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Seals a stream: writes a fence object just past its highest object, re-listing if a
/// zombie writer got there first, unless the highest object already is a fence (an
/// earlier recovery sealed it). Returns the data sequences below the fence and the
/// fence's path, which must outlive the zombie and so is never deleted.
async fn fence_stream(
    store: &Store,
    node: i32,
    incarnation: u64,
    listed: Vec<u64>,
) -> Result<(Vec<u64>, Path)> {
    let mut seqs = listed;
    loop {
        let at = |seq| WalPosition {
            node,
            incarnation,
            seq,
        };
        if let Some(&last) = seqs.last() {
            let path = at(last).path();
            if let Some(data) = store.get(&path).await? {
                if wal::decode(&path, &data)? == WalObject::Fence {
                    seqs.pop();
                    return Ok((seqs, path));
                }
            }
        }
        let fence = at(seqs.last().map_or(1, |s| s + 1));
        if store
            .put_if_absent(&fence.path(), wal::fence_object(fence))
            .await?
            == Created::Yes
        {
            return Ok((seqs, fence.path()));
        }
        warn!(stream = %wal::stream_prefix(node, incarnation), "fence lost a race with a writer; re-listing");
        seqs = list_stream(store, node, incarnation).await?;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
