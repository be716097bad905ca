//! The object store as the engine sees it: a URL-selected backend, retries with backoff
//! for transient failures, put-if-absent that survives an ambiguous retry, and metrics.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::warn;

use super::error::{Result, StorageError};
use crate::metrics::{Metrics, OpLabel};

/// Requests issued at once when many objects are read or deleted (recovery, cleanup).
pub const IO_CONCURRENCY: usize = 16;

/// Attempts for one logical operation before the error reaches the caller.
const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Result of a put-if-absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Yes,
    AlreadyExists,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
    description: String,
    /// Randomness for retry jitter; seedable so that a simulation replays exactly.
    jitter: Arc<Mutex<StdRng>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Store {
    /// Opens `file://dir`, `memory://` or `s3://bucket/prefix` (credentials, region and
    /// endpoint from the usual `AWS_*` variables; `AWS_ENDPOINT_URL` selects an
    /// S3-compatible server and `AWS_ALLOW_HTTP=true` allows plain HTTP to it).
    pub fn from_url(url: &str, metrics: Arc<Metrics>) -> Result<Self> {
        let bad = |reason: String| StorageError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://".into()))?;
        let inner: Arc<dyn ObjectStore> = match scheme {
            "memory" => Arc::new(InMemory::new()),
            "file" => {
                let dir = std::path::Path::new(rest);
                std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
                let dir = dir.canonicalize().map_err(|e| bad(e.to_string()))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| bad(e.to_string()))?
                        .with_automatic_cleanup(true),
                )
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("missing bucket name".into()));
                }
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                    builder = builder.with_endpoint(endpoint);
                }
                let s3 = builder.build().map_err(|e| bad(e.to_string()))?;
                let prefix = prefix.trim_matches('/');
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                }
            }
            other => return Err(bad(format!("unsupported scheme {other:?}"))),
        };
        Ok(Self::new(inner, url.to_string(), metrics))
    }

    /// The same store behind a fault-injecting layer (tests and debug builds).
    pub fn with_faults(self, faults: super::faults::FaultConfig) -> Self {
        Store {
            description: format!("{} with injected faults {faults:?}", self.description),
            inner: Arc::new(super::faults::FaultyStore::new(self.inner, faults)),
            metrics: self.metrics,
            jitter: self.jitter,
        }
    }

    /// Seeds the retry jitter (deterministic simulation).
    pub fn with_jitter_seed(self, seed: u64) -> Self {
        Store {
            jitter: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            ..self
        }
    }

    pub fn new(inner: Arc<dyn ObjectStore>, description: String, metrics: Arc<Metrics>) -> Self {
        Store {
            inner,
            metrics,
            description,
            jitter: Arc::new(Mutex::new(StdRng::from_os_rng())),
        }
    }

    fn record(&self, op: &'static str, bytes: usize, started: Instant) {
        let label = OpLabel { op };
        self.metrics.object_requests.get_or_create(&label).inc();
        self.metrics
            .object_bytes
            .get_or_create(&label)
            .inc_by(bytes as u64);
        self.metrics
            .object_latency
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Runs `attempt` until it succeeds, fails permanently, or attempts run out.
    async fn retry<T, F, Fut>(&self, op: &'static str, path: &Path, mut attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut backoff = FIRST_BACKOFF;
        for n in 1..=MAX_ATTEMPTS {
            match attempt(n).await {
                Ok(v) => return Ok(v),
                Err(e) if n < MAX_ATTEMPTS && is_transient(&e) => {
                    self.metrics
                        .object_errors
                        .get_or_create(&OpLabel { op })
                        .inc();
                    warn!(op, %path, attempt = n, error = %e, "object store request failed; retrying");
                    let jitter = self
                        .jitter
                        .lock()
                        .random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    self.metrics
                        .object_errors
                        .get_or_create(&OpLabel { op })
                        .inc();
                    return Err(StorageError::object(op, path, e));
                }
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// Writes `data` at `path` only if nothing is there. If an earlier attempt of the same
    /// call may have succeeded (a timeout, then a retry that finds the object), the
    /// object's content decides whether it was ours.
    pub async fn put_if_absent(&self, path: &Path, data: Bytes) -> Result<Created> {
        self.create(path, data, false).await
    }

    /// Like [`Store::put_if_absent`], for a write whose earlier call failed: that call
    /// may have landed, so an existing object with the same content counts as ours.
    pub async fn put_if_absent_again(&self, path: &Path, data: Bytes) -> Result<Created> {
        self.create(path, data, true).await
    }

    async fn create(&self, path: &Path, data: Bytes, maybe_ours: bool) -> Result<Created> {
        let started = Instant::now();
        let retried = std::sync::atomic::AtomicBool::new(maybe_ours);
        let outcome = self
            .retry("put", path, |n| {
                if n > 1 {
                    retried.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let payload = PutPayload::from_bytes(data.clone());
                let opts = PutOptions::from(PutMode::Create);
                async move {
                    match self.inner.put_opts(path, payload, opts).await {
                        Ok(_) => Ok(Created::Yes),
                        Err(object_store::Error::AlreadyExists { .. })
                        | Err(object_store::Error::Precondition { .. }) => {
                            Ok(Created::AlreadyExists)
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        self.record("put", data.len(), started);
        if outcome == Created::AlreadyExists && retried.into_inner() {
            if let Some(existing) = self.get(path).await? {
                if existing == data {
                    return Ok(Created::Yes);
                }
            }
        }
        Ok(outcome)
    }

    /// Writes `data` at `path`, replacing anything there. Used only for objects whose key
    /// belongs to this writer alone (segments carry the writer's incarnation).
    pub async fn put(&self, path: &Path, data: Bytes) -> Result<()> {
        let started = Instant::now();
        self.retry("put", path, |_| {
            self.inner.put(path, PutPayload::from_bytes(data.clone()))
        })
        .await?;
        self.record("put", data.len(), started);
        Ok(())
    }

    /// Reads a whole object, `None` when it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        let started = Instant::now();
        let got = self
            .retry("get", path, |_| async move {
                match self.inner.get(path).await {
                    Ok(r) => r.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        self.record("get", got.as_ref().map_or(0, |b| b.len()), started);
        Ok(got)
    }

    /// Reads `range` of an object.
    pub async fn get_range(&self, path: &Path, range: Range<u64>) -> Result<Bytes> {
        let started = Instant::now();
        let got = self
            .retry("get", path, |_| self.inner.get_range(path, range.clone()))
            .await?;
        self.record("get", got.len(), started);
        Ok(got)
    }

    /// Lists every object under `prefix`, sorted by key.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<Path>> {
        let started = Instant::now();
        let mut keys: Vec<Path> = self
            .retry("list", prefix, |_| {
                self.inner
                    .list(Some(prefix))
                    .map_ok(|m| m.location)
                    .try_collect()
            })
            .await?;
        self.record("list", 0, started);
        keys.sort();
        Ok(keys)
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        let started = Instant::now();
        self.retry("delete", path, |_| async move {
            match self.inner.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await?;
        self.record("delete", 0, started);
        Ok(())
    }
}

/// Errors worth retrying: anything that is not a definite answer about the object.
fn is_transient(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}

/// Zero-padded so that lexical order is numeric order.
pub fn seq_key(n: u64) -> String {
    format!("{n:020}")
}

/// Parses the last path segment written by [`seq_key`].
pub fn parse_seq(path: &Path) -> Option<u64> {
    path.filename()?.parse().ok()
}
