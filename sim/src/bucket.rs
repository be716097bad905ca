//! The simulated bucket: one in-memory object store shared by every simulated host,
//! seen by each broker through its own [`HostStore`], which injects faults: errors,
//! 503 throttling, latency before and after the operation takes effect (so concurrent
//! requests complete out of order and slow PUTs happen), writes whose acknowledgement
//! is lost (a timeout that still succeeded), and network partitions that cut one host
//! off from the bucket. Every decision comes from the seeded random generator.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::Rng;

use crate::checker::Checker;
use crate::trace::{Kind, Trace};

/// Probabilities of each fault per request, and the latency range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// The request fails before it takes effect.
    pub error: f64,
    /// A write takes effect, then the caller gets an error.
    pub lost_ack: f64,
    /// "503 Slow Down" before the request takes effect.
    pub throttle: f64,
    /// A PUT that takes `slow_ms` longer than usual.
    pub slow_put: f64,
    pub slow_ms: u64,
    /// Latency before and after a request takes effect: uniform in 0..=max.
    pub max_latency_ms: u64,
}

impl FaultRates {
    pub const NONE: FaultRates = FaultRates {
        error: 0.0,
        lost_ack: 0.0,
        throttle: 0.0,
        slow_put: 0.0,
        slow_ms: 0,
        max_latency_ms: 2,
    };
}

/// How long a request to an unreachable bucket takes to fail.
const CUT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Links {
    /// Hosts cut off from the bucket.
    cut: std::collections::BTreeSet<i32>,
    /// Hosts whose heartbeats and metadata reads fail while everything else works:
    /// the fleet sees them dead, they keep writing (zombies).
    zombie: std::collections::BTreeSet<i32>,
    /// Hosts whose requests wait until then (simulated time): a paused process.
    stalled: BTreeMap<i32, Duration>,
}

/// The bucket every host shares.
pub struct Bucket {
    inner: Arc<InMemory>,
    rng: Arc<Mutex<StdRng>>,
    rates: Mutex<FaultRates>,
    links: Mutex<Links>,
    trace: Trace,
    checker: Arc<Checker>,
}

impl Bucket {
    pub fn new(
        rng: Arc<Mutex<StdRng>>,
        rates: FaultRates,
        trace: Trace,
        checker: Arc<Checker>,
    ) -> Self {
        Bucket {
            inner: Arc::new(InMemory::new()),
            rng,
            rates: Mutex::new(rates),
            links: Mutex::new(Links::default()),
            trace,
            checker,
        }
    }

    /// The store without faults (setup and final inspection by the simulator).
    pub fn raw(&self) -> Arc<InMemory> {
        self.inner.clone()
    }

    pub fn set_rates(&self, rates: FaultRates) {
        *self.rates.lock() = rates;
    }

    pub fn rates(&self) -> FaultRates {
        *self.rates.lock()
    }

    pub fn cut(&self, node: i32, cut: bool) {
        let mut l = self.links.lock();
        if cut {
            l.cut.insert(node);
        } else {
            l.cut.remove(&node);
        }
    }

    pub fn zombie(&self, node: i32, on: bool) {
        let mut l = self.links.lock();
        if on {
            l.zombie.insert(node);
        } else {
            l.zombie.remove(&node);
        }
    }

    /// Requests of `node` wait until simulated time `until`.
    pub fn stall(&self, node: i32, until: Duration) {
        let mut l = self.links.lock();
        let e = l.stalled.entry(node).or_default();
        *e = (*e).max(until);
    }

    pub fn heal_links(&self) {
        let mut l = self.links.lock();
        l.cut.clear();
        l.zombie.clear();
        l.stalled.clear();
    }

    fn is_cut(&self, node: i32, path: &str) -> bool {
        let l = self.links.lock();
        l.cut.contains(&node)
            || (l.zombie.contains(&node)
                && (path == format!("meta/nodes/{node}/heartbeat")
                    || path.starts_with("meta/cluster")))
    }

    /// Waits while `node` is stalled.
    async fn wait_stall(&self, node: i32) {
        loop {
            let until = self.links.lock().stalled.get(&node).copied();
            let now = crate::trace::now();
            match until {
                Some(t) if t > now => tokio::time::sleep(t - now).await,
                _ => return,
            }
        }
    }

    /// Draws the faults of one request.
    fn plan(&self, write: bool) -> Plan {
        let r = self.rates();
        let mut rng = self.rng.lock();
        let mut latency = || Duration::from_millis(rng.random_range(0..=r.max_latency_ms));
        let before = latency();
        let after = latency();
        let fail = if rng.random_bool(r.throttle) {
            Some("503 Slow Down")
        } else if rng.random_bool(r.error) {
            Some("request failed")
        } else {
            None
        };
        let slow = write && rng.random_bool(r.slow_put);
        let lost_ack = write && rng.random_bool(r.lost_ack);
        Plan {
            before: before
                + if slow {
                    Duration::from_millis(r.slow_ms)
                } else {
                    Duration::ZERO
                },
            after,
            fail,
            lost_ack,
        }
    }
}

struct Plan {
    before: Duration,
    after: Duration,
    fail: Option<&'static str>,
    lost_ack: bool,
}

#[derive(Debug)]
struct Injected(String);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulated fault: {}", self.0)
    }
}

impl std::error::Error for Injected {}

fn injected(what: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic {
        store: "sim",
        source: Box::new(Injected(what.into())),
    }
}

/// One host's view of the bucket.
#[derive(Clone)]
pub struct HostStore {
    node: i32,
    bucket: Arc<Bucket>,
}

impl fmt::Debug for HostStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostStore(node {})", self.node)
    }
}

impl fmt::Display for HostStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl HostStore {
    pub fn new(node: i32, bucket: Arc<Bucket>) -> Self {
        HostStore { node, bucket }
    }

    /// Runs `op` (which takes effect when awaited) under this host's faults.
    async fn faulty<T>(
        &self,
        what: &str,
        path: &str,
        write: bool,
        op: impl std::future::Future<Output = Result<T>>,
        describe: impl Fn(&Result<T>) -> String,
    ) -> Result<T> {
        let b = &self.bucket;
        let plan = b.plan(write);
        tokio::time::sleep(plan.before).await;
        b.wait_stall(self.node).await;
        let outcome = if b.is_cut(self.node, path) {
            tokio::time::sleep(CUT_TIMEOUT).await;
            Err(injected("bucket unreachable (partition)"))
        } else if let Some(f) = plan.fail {
            Err(injected(f))
        } else {
            let r = op.await;
            tokio::time::sleep(plan.after).await;
            b.wait_stall(self.node).await;
            match r {
                Ok(_) if b.is_cut(self.node, path) => {
                    Err(injected("done, but the answer was lost (partition)"))
                }
                Ok(_) if plan.lost_ack => Err(injected("done, but the answer was lost")),
                other => other,
            }
        };
        b.trace.record(
            Kind::Store,
            format!("n{} {what} {path} -> {}", self.node, describe(&outcome)),
        );
        outcome
    }
}

fn short<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(object_store::Error::AlreadyExists { .. }) => "exists".into(),
        Err(object_store::Error::NotFound { .. }) => "not found".into(),
        Err(object_store::Error::Precondition { .. }) => "precondition".into(),
        Err(e) => format!("error ({})", root(e)),
    }
}

fn root(e: &object_store::Error) -> String {
    match e {
        object_store::Error::Generic { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

#[async_trait]
impl ObjectStore for HostStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        let data: Bytes = payload.clone().into();
        let inner = self.bucket.inner.clone();
        let checker = self.bucket.checker.clone();
        let what = if create { "put_if_absent" } else { "put" };
        self.faulty(
            what,
            location.as_ref(),
            true,
            async move {
                let r = inner.put_opts(location, payload, opts).await;
                if r.is_ok() {
                    checker.on_written(location.as_ref(), &data, create);
                }
                r
            },
            short,
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotImplemented {
            operation: format!("multipart upload to {location}"),
            implementer: "the simulated bucket".into(),
        })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let inner = self.bucket.inner.clone();
        self.faulty(
            "get",
            location.as_ref(),
            false,
            inner.get_opts(location, options),
            short,
        )
        .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let inner = self.bucket.inner.clone();
        self.faulty(
            "get_ranges",
            location.as_ref(),
            false,
            inner.get_ranges(location, ranges),
            short,
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let me = self.clone();
        locations
            .then(move |r| {
                let me = me.clone();
                async move {
                    let path = r?;
                    let inner = me.bucket.inner.clone();
                    let p = path.clone();
                    me.faulty(
                        "delete",
                        path.as_ref(),
                        true,
                        async move {
                            let one = futures::stream::once(async move { Ok(p) }).boxed();
                            inner
                                .delete_stream(one)
                                .next()
                                .await
                                .unwrap_or_else(|| Err(injected("delete answered nothing")))
                        },
                        short,
                    )
                    .await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let me = self.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            let inner = me.bucket.inner.clone();
            let p = prefix.clone();
            me.faulty(
                "list",
                prefix.as_ref().map_or("", |p| p.as_ref()),
                false,
                async move { inner.list(p.as_ref()).try_collect::<Vec<_>>().await },
                |r| match r {
                    Ok(v) => format!("{} keys", v.len()),
                    Err(e) => format!("error ({})", root(e)),
                },
            )
            .await
        })
        .map_ok(|v| futures::stream::iter(v.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let offset = offset.clone();
        self.list(prefix)
            .try_filter(move |m| futures::future::ready(m.location > offset))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let inner = self.bucket.inner.clone();
        self.faulty(
            "list_with_delimiter",
            prefix.map_or("", |p| p.as_ref()),
            false,
            inner.list_with_delimiter(prefix),
            short,
        )
        .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let inner = self.bucket.inner.clone();
        self.faulty(
            "copy",
            to.as_ref(),
            true,
            inner.copy_opts(from, to, options),
            short,
        )
        .await
    }
}
