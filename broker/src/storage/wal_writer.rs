//! The WAL writer: batches from every partition go into one open WAL object, which is
//! flushed on size or linger with a single put-if-absent. A produce is acknowledged only
//! when the object holding its batch is durable; the high watermark moves then.
//!
//! Producers reserve bytes from a fixed budget before appending, so a slow object store
//! throttles them instead of growing memory without bound (`docs/storage-protocol.md` I6).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{error, warn};
use uuid::Uuid;

use super::error::{Result, StorageError};
use super::object::{Created, Store};
use super::partition::PartitionLog;
use super::wal::{WalObjectBuilder, WalPosition};
use crate::metrics::Metrics;

const BUDGET_UNIT: usize = 1024;

/// Published after every flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushState {
    /// Highest sequence made durable, 0 before the first.
    pub durable_seq: u64,
    /// The stream was fenced or shut down: nothing more will become durable.
    pub stopped: bool,
}

struct OpenObject {
    seq: u64,
    builder: WalObjectBuilder,
    /// Partitions whose records below the given offset become durable with this object.
    acks: Vec<(Arc<PartitionLog>, i64)>,
    permits: Vec<OwnedSemaphorePermit>,
    /// Record batch bytes in the object (its size without framing).
    payload: usize,
    opened_at: Option<Instant>,
}

impl OpenObject {
    fn new(node: i32, incarnation: u64, seq: u64) -> Self {
        OpenObject {
            seq,
            builder: WalObjectBuilder::new(WalPosition {
                node,
                incarnation,
                seq,
            }),
            acks: Vec::new(),
            permits: Vec::new(),
            payload: 0,
            opened_at: None,
        }
    }
}

pub struct WalWriter {
    store: Store,
    node: i32,
    incarnation: u64,
    linger: Duration,
    max_bytes: usize,
    open: Mutex<OpenObject>,
    budget: Arc<Semaphore>,
    budget_units: usize,
    wake: Notify,
    state: watch::Sender<FlushState>,
    /// Sequences written by this incarnation and not yet garbage-collected.
    written: Mutex<VecDeque<u64>>,
    metrics: Arc<Metrics>,
}

impl WalWriter {
    pub fn new(
        store: Store,
        node: i32,
        incarnation: u64,
        linger: Duration,
        max_bytes: usize,
        max_pending_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let budget_units = (max_pending_bytes / BUDGET_UNIT).max(1);
        WalWriter {
            store,
            node,
            incarnation,
            linger,
            max_bytes,
            open: Mutex::new(OpenObject::new(node, incarnation, 1)),
            budget: Arc::new(Semaphore::new(budget_units)),
            budget_units,
            wake: Notify::new(),
            state: watch::channel(FlushState {
                durable_seq: 0,
                stopped: false,
            })
            .0,
            written: Mutex::new(VecDeque::new()),
            metrics,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<FlushState> {
        self.state.subscribe()
    }

    pub fn is_stopped(&self) -> bool {
        self.state.borrow().stopped
    }

    /// Waits for room for `bytes` of produce data; times out into a throttle error.
    pub async fn reserve(&self, bytes: usize, timeout: Duration) -> Result<OwnedSemaphorePermit> {
        let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, self.budget_units) as u32;
        match tokio::time::timeout(timeout, self.budget.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(StorageError::ShuttingDown),
            Err(_) => Err(StorageError::Timeout("produce buffer space")),
        }
    }

    /// Whether a producer would wait for buffer space right now.
    pub fn is_throttling(&self) -> bool {
        self.budget.available_permits() * 4 < self.budget_units
    }

    /// Adds a batch to the open WAL object. Call with the partition's state locked so
    /// the partition's batches enter the WAL in offset order.
    pub(crate) fn push(
        &self,
        part: &Arc<PartitionLog>,
        topic_id: Uuid,
        partition: i32,
        batch: &[u8],
        end_offset: i64,
        permit: OwnedSemaphorePermit,
    ) -> WalPosition {
        let mut open = self.open.lock();
        let first = open.builder.is_empty();
        open.builder.push(topic_id, partition, batch);
        open.acks.push((part.clone(), end_offset));
        open.permits.push(permit);
        open.payload += batch.len();
        if first {
            open.opened_at = Some(Instant::now());
        }
        let full = open.builder.len() >= self.max_bytes;
        let seq = open.seq;
        drop(open);
        self.metrics.wal_pending_bytes.inc_by(batch.len() as i64);
        if first || full {
            self.wake.notify_one();
        }
        WalPosition {
            node: self.node,
            incarnation: self.incarnation,
            seq,
        }
    }

    /// The sequence the next pushed batch goes into.
    pub fn open_seq(&self) -> u64 {
        self.open.lock().seq
    }

    /// Flushes until told to stop; then flushes what is left and returns.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let deadline = {
                let open = self.open.lock();
                match open.opened_at {
                    None => None,
                    Some(_) if open.builder.len() >= self.max_bytes => Some(Instant::now()),
                    Some(t) => Some(t + self.linger),
                }
            };
            // A dropped sender (the engine is gone) means stop too.
            let stop = *shutdown.borrow() || shutdown.has_changed().is_err();
            match deadline {
                _ if stop => {
                    let _ = self.flush().await;
                    return;
                }
                None => {
                    tokio::select! {
                        biased;
                        _ = self.wake.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Some(at) if at <= Instant::now() => {
                    if self.flush().await.is_err() {
                        return;
                    }
                }
                Some(at) => {
                    tokio::select! {
                        biased;
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.wake.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Writes the open object (if it holds anything) and advances high watermarks.
    /// Transient store errors are retried until the write lands or the stream is fenced.
    pub async fn flush(&self) -> Result<()> {
        if self.is_stopped() {
            // Past a fence nothing may be written: the next sequence is free and a write
            // there would make records durable (and visible) that nobody will recover.
            return Err(StorageError::Fenced(
                "this broker's WAL stream is stopped".into(),
            ));
        }
        let (seq, data, acks, permits, payload) = {
            let mut open = self.open.lock();
            if open.builder.is_empty() {
                return Ok(());
            }
            let next = OpenObject::new(self.node, self.incarnation, open.seq + 1);
            let full = std::mem::replace(&mut *open, next);
            (
                full.seq,
                full.builder.finish(),
                full.acks,
                full.permits,
                full.payload,
            )
        };
        let pos = WalPosition {
            node: self.node,
            incarnation: self.incarnation,
            seq,
        };
        let path = pos.path();
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut failed_before = false;
        loop {
            let attempt = if failed_before {
                self.store.put_if_absent_again(&path, data.clone()).await
            } else {
                self.store.put_if_absent(&path, data.clone()).await
            };
            match attempt {
                Ok(Created::Yes) => break,
                Ok(Created::AlreadyExists) => {
                    error!(%path, "WAL stream fenced by another broker; no further acknowledgements");
                    self.stop();
                    return Err(StorageError::Fenced(format!(
                        "WAL object {path} already exists"
                    )));
                }
                Err(e) => {
                    failed_before = true;
                    warn!(%path, error = %e, "WAL write failed; retrying, producers wait");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.metrics
            .wal_flush_latency
            .observe(started.elapsed().as_secs_f64());
        self.metrics.wal_flush_bytes.observe(data.len() as f64);
        for (part, end) in &acks {
            part.advance_high_watermark(*end);
        }
        self.written.lock().push_back(seq);
        drop(permits);
        self.metrics.wal_pending_bytes.dec_by(payload as i64);
        self.state.send_modify(|s| s.durable_seq = seq);
        Ok(())
    }

    /// Marks the stream stopped and wakes every waiter.
    pub fn stop(&self) {
        self.state.send_modify(|s| s.stopped = true);
        self.budget.close();
    }

    /// Removes and returns this incarnation's WAL sequences below `seq`, always keeping
    /// the newest one: it marks where the stream ends, so a later incarnation fences the
    /// right sequence even when everything before it was checkpointed.
    pub fn take_written_below(&self, seq: u64) -> Vec<u64> {
        let mut w = self.written.lock();
        let mut out = Vec::new();
        while w.len() > 1 && w.front().is_some_and(|s| *s < seq) {
            out.extend(w.pop_front());
        }
        out
    }

    pub fn position(&self, seq: u64) -> WalPosition {
        WalPosition {
            node: self.node,
            incarnation: self.incarnation,
            seq,
        }
    }
}
