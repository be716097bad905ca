//! The log engine of one broker: one incarnation of a node, the partitions it leads and
//! its background work (WAL flushing, periodic checkpoints). The engine's work is split
//! by concern: [`append`] (appends, durability, the high watermark), [`read`] (the read
//! path), [`checkpoint`] (segments and manifests), [`retention`] (retention and
//! DeleteRecords) and [`take_over`] (claiming, releasing and closing partitions).
//! Fencing, WAL replay and WAL collection live beside it in `storage/`.

mod append;
mod checkpoint;
mod read;
mod retention;
mod take_over;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

use super::cache::BlockCache;
use super::error::{Result, StorageError};
use super::object::{Store, IO_CONCURRENCY};
use super::partition::PartitionLog;
use super::versioned::VersionedObject;
use super::wal_writer::WalWriter;
use crate::clock::now_ms;
use crate::metrics::Metrics;

pub use append::Appended;
pub use take_over::Claim;

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

type PartitionKey = (Uuid, i32);

pub struct LogEngine {
    store: Store,
    config: EngineConfig,
    incarnation: u64,
    /// Also read by the collection of this incarnation's WAL objects (`wal_gc`).
    pub(super) wal: Arc<WalWriter>,
    cache: BlockCache,
    partitions: RwLock<BTreeMap<PartitionKey, Arc<PartitionLog>>>,
    /// Set once a partition was taken from this broker without a release: its tail is
    /// still only in this stream's WAL objects, which its new leader is about to read,
    /// so none may be deleted any more.
    pub(super) keep_wal: AtomicBool,
    /// Numbers this incarnation's segment objects, so each key is written exactly once:
    /// a deposed leader retrying a checkpoint from the same base offset must never
    /// overwrite a segment that a committed manifest already references (found by the
    /// simulation, seed 3146).
    segment_seq: AtomicU64,
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
            keep_wal: AtomicBool::new(false),
            segment_seq: AtomicU64::new(0),
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

    /// A fenced incarnation changes nothing in the bucket any more.
    fn ensure_not_fenced(&self) -> Result<()> {
        if self.wal.is_stopped() {
            return Err(StorageError::Fenced(
                "this broker's WAL stream is fenced; it no longer writes manifests".into(),
            ));
        }
        Ok(())
    }

    pub fn partition(&self, topic_id: Uuid, partition: i32) -> Option<Arc<PartitionLog>> {
        self.partitions.read().get(&(topic_id, partition)).cloned()
    }

    pub fn partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Deletes `keys`, [`IO_CONCURRENCY`] at a time.
    pub(super) async fn delete_all(&self, keys: Vec<Path>) -> Result<()> {
        for chunk in keys.chunks(IO_CONCURRENCY) {
            for r in futures::future::join_all(chunk.iter().map(|k| self.store.delete(k))).await {
                r?;
            }
        }
        Ok(())
    }
}

/// Claims the next incarnation number of `node` (a versioned object in `meta/nodes`).
/// Every process of a node is a new incarnation with its own WAL stream, so a new
/// leader can fence exactly the stream of the one before (`docs/storage-protocol.md` I3).
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
