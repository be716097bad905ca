//! The simulated bucket: one in-memory object store shared by every simulated host,
//! seen by each broker through its own view: the broker's fault-injecting store
//! (`sluice_broker::storage::faults`) drawing from the run's seeded generator — errors,
//! 503 throttling, latency before and after a request takes effect (so concurrent
//! requests complete out of order and slow PUTs happen), writes whose acknowledgement
//! is lost (a timeout that still succeeded) — with [`HostLinks`] for what only the
//! simulation has: network partitions that cut one host off from the bucket, zombies,
//! stalls, the trace and the checker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, Result};
use parking_lot::Mutex;
use rand::RngCore;
use sluice_broker::storage::faults::{injected, FaultConfig, Faults, FaultyStore, Hooks, Outcome};

use crate::checker::Checker;
use crate::trace::{Kind, Trace};

/// Probabilities of each fault per request, and the latency range: what the schedule
/// draws ([`FaultConfig`] in the simulation's terms).
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

impl From<FaultRates> for FaultConfig {
    fn from(r: FaultRates) -> Self {
        FaultConfig {
            put_error: r.error,
            lost_ack: r.lost_ack,
            get_error: r.error,
            list_error: r.error,
            delete_error: r.error,
            throttle: r.throttle,
            slow_put: r.slow_put,
            slow: Duration::from_millis(r.slow_ms),
            jitter: Duration::from_millis(r.max_latency_ms),
            ..FaultConfig::default()
        }
    }
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
    /// The rates and the seeded generator every host's requests draw from.
    faults: Arc<Faults>,
    links: Mutex<Links>,
    trace: Trace,
    checker: Arc<Checker>,
}

impl Bucket {
    pub fn new(
        random: Box<dyn RngCore + Send>,
        rates: FaultRates,
        trace: Trace,
        checker: Arc<Checker>,
    ) -> Self {
        Bucket {
            inner: Arc::new(InMemory::new()),
            faults: Faults::new(rates.into(), random),
            links: Mutex::new(Links::default()),
            trace,
            checker,
        }
    }

    /// How broker `node` sees the bucket.
    pub fn view(self: &Arc<Self>, node: i32) -> Arc<dyn ObjectStore> {
        let links = HostLinks {
            node,
            bucket: self.clone(),
        };
        Arc::new(FaultyStore::with_faults(
            self.inner.clone(),
            self.faults.clone(),
            Arc::new(links),
        ))
    }

    /// The store without faults (setup and final inspection by the simulator).
    pub fn raw(&self) -> Arc<InMemory> {
        self.inner.clone()
    }

    pub fn set_rates(&self, rates: FaultRates) {
        self.faults.set_config(rates.into());
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
}

/// What one host's requests meet besides the drawn faults: its links to the bucket
/// (cut off, zombie, stalled), and the trace and checker that watch them.
struct HostLinks {
    node: i32,
    bucket: Arc<Bucket>,
}

#[async_trait]
impl Hooks for HostLinks {
    async fn reach(&self, path: &str) -> Result<()> {
        self.bucket.wait_stall(self.node).await;
        if self.bucket.is_cut(self.node, path) {
            tokio::time::sleep(CUT_TIMEOUT).await;
            return Err(injected("bucket unreachable (partition)"));
        }
        Ok(())
    }

    async fn answer(&self, path: &str) -> Result<()> {
        self.bucket.wait_stall(self.node).await;
        if self.bucket.is_cut(self.node, path) {
            return Err(injected("done, but the answer was lost (partition)"));
        }
        Ok(())
    }

    fn written(&self, path: &Path, data: &PutPayload, create: bool) {
        let data: Bytes = data.clone().into();
        self.bucket.checker.on_written(path.as_ref(), &data, create);
    }

    fn done(&self, what: &str, path: &str, outcome: Outcome<'_>) {
        self.bucket.trace.record(
            Kind::Store,
            format!("n{} {what} {path} -> {}", self.node, short(&outcome)),
        );
    }
}

fn short(outcome: &Outcome<'_>) -> String {
    match outcome {
        Outcome::Done => "ok".into(),
        Outcome::Listed(n) => format!("{n} keys"),
        Outcome::Failed(object_store::Error::AlreadyExists { .. }) => "exists".into(),
        Outcome::Failed(object_store::Error::NotFound { .. }) => "not found".into(),
        Outcome::Failed(object_store::Error::Precondition { .. }) => "precondition".into(),
        Outcome::Failed(object_store::Error::Generic { source, .. }) => {
            format!("error ({source})")
        }
        Outcome::Failed(e) => format!("error ({e})"),
    }
}
