//! The fault-injecting object store, in front of a real one: errors before a request
//! takes effect, writes (and deletes) that land but whose answer is lost, 503
//! throttling, latency before and after a request takes effect, slow writes. Debug
//! builds use it (`--inject-faults`, random source seeded by the OS), and so does the
//! deterministic simulation (`sim/`): one [`FaultyStore`] per simulated broker over the
//! shared bucket, all drawing from one seeded random source ([`Faults`]), with
//! [`Hooks`] for the simulated network (partitions, stalls) and its trace. Faults can be
//! limited to keys under a prefix and start after a delay:
//! `put_error=1,only=meta/nodes/2/heartbeat,after_ms=4000` cuts node 2's heartbeats off
//! from the fleet while its data still reaches the bucket.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use parking_lot::Mutex;
use rand::{Rng, RngCore};

/// Probabilities (0..=1) per request, latencies, and where faults apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// A put or copy fails before it takes effect.
    pub put_error: f64,
    /// A write (put, copy, delete) takes effect, then the caller gets an error (a
    /// timeout that still succeeded).
    pub lost_ack: f64,
    pub get_error: f64,
    pub list_error: f64,
    /// A delete fails before it takes effect.
    pub delete_error: f64,
    /// Any request answered "503 Slow Down" before it takes effect.
    pub throttle: f64,
    /// A write that takes `slow` longer before it takes effect.
    pub slow_put: f64,
    pub slow: Duration,
    /// Fixed latency before each request takes effect.
    pub latency: Duration,
    /// Plus latency uniform in 0..=`jitter` before, and again after, each request takes
    /// effect, so concurrent requests complete out of order.
    pub jitter: Duration,
    /// Only keys under this prefix are affected (all when `None`).
    pub only: Option<String>,
    /// Faults start this long after the store is opened.
    pub after: Duration,
}

impl FromStr for FaultConfig {
    type Err = String;

    /// `put_error=0.2,put_lost_ack=0.1,get_error=0.1,list_error=0.1,delete_error=0.1,throttle=0.05,latency_ms=5`
    /// (also `slow_put`, `slow_ms`, `jitter_ms`, `only`, `after_ms`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut c = FaultConfig::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            let p = || -> Result<f64, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("{k}: {v:?} is not a probability in [0, 1]"))
            };
            let ms = || -> Result<Duration, String> {
                v.parse()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{k}: {v:?} is not a number of milliseconds"))
            };
            match k {
                "put_error" => c.put_error = p()?,
                "put_lost_ack" | "lost_ack" => c.lost_ack = p()?,
                "get_error" => c.get_error = p()?,
                "list_error" => c.list_error = p()?,
                "delete_error" => c.delete_error = p()?,
                "throttle" => c.throttle = p()?,
                "slow_put" => c.slow_put = p()?,
                "slow_ms" => c.slow = ms()?,
                "latency_ms" => c.latency = ms()?,
                "jitter_ms" => c.jitter = ms()?,
                "after_ms" => c.after = ms()?,
                "only" => c.only = Some(v.to_string()),
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(c)
    }
}

/// The kinds of request, as faults tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Put,
    Copy,
    Get,
    List,
    Delete,
}

impl Request {
    fn error(self, c: &FaultConfig) -> f64 {
        match self {
            Request::Put | Request::Copy => c.put_error,
            Request::Get => c.get_error,
            Request::List => c.list_error,
            Request::Delete => c.delete_error,
        }
    }

    fn writes(self) -> bool {
        matches!(self, Request::Put | Request::Copy | Request::Delete)
    }
}

/// What happens to one request, drawn before it starts.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Waits before and after the request takes effect (`None`: no wait at all).
    before: Option<Duration>,
    after: Option<Duration>,
    fail: Option<&'static str>,
    lost_ack: bool,
}

/// The fault configuration and the random source every request draws from. One
/// `Faults` may serve many stores: the simulation's brokers share one, so a seed fixes
/// every decision in the order the requests are made.
pub struct Faults {
    config: Mutex<FaultConfig>,
    random: Mutex<Box<dyn RngCore + Send>>,
    opened: Instant,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faults({:?})", self.config.lock())
    }
}

impl Faults {
    /// Faults as `config` says, decided by `random` (any generator: seeded for a
    /// simulation that must replay, from the OS otherwise).
    pub fn new(config: FaultConfig, random: Box<dyn RngCore + Send>) -> Arc<Self> {
        Arc::new(Faults {
            config: Mutex::new(config),
            random: Mutex::new(random),
            opened: Instant::now(),
        })
    }

    /// Changes the configuration for the requests that start from now on.
    pub fn set_config(&self, config: FaultConfig) {
        *self.config.lock() = config;
    }

    pub fn config(&self) -> FaultConfig {
        self.config.lock().clone()
    }

    /// Whether faults apply now to `location` (`None`: a request on no one key).
    fn applies(&self, c: &FaultConfig, location: Option<&Path>) -> bool {
        if self.opened.elapsed() < c.after {
            return false;
        }
        match (&c.only, location) {
            (None, _) => true,
            (Some(prefix), Some(l)) => l.as_ref().starts_with(prefix.as_str()),
            (Some(_), None) => false,
        }
    }

    /// Draws the faults of one request. The order of the draws is part of what a
    /// simulation seed replays: change it and every recorded seed means another run.
    fn plan(&self, request: Request, location: Option<&Path>) -> Plan {
        let c = self.config();
        if !self.applies(&c, location) {
            return Plan::default();
        }
        let mut rng = self.random.lock();
        let jitter = c.jitter.as_millis() as u64;
        let mut latency = || Duration::from_millis(rng.random_range(0..=jitter));
        let before = c.latency + latency();
        let after = latency();
        let fail = if rng.random_bool(c.throttle) {
            Some("503 Slow Down")
        } else if rng.random_bool(request.error(&c)) {
            Some("request failed")
        } else {
            None
        };
        let slow = request.writes() && rng.random_bool(c.slow_put);
        let lost_ack = request.writes() && rng.random_bool(c.lost_ack);
        let before = before + if slow { c.slow } else { Duration::ZERO };
        // With jitter every request waits (even 0 ms: a timer tick); without, only for
        // a latency that is there.
        let wait = |d: Duration| (jitter > 0 || !d.is_zero()).then_some(d);
        Plan {
            before: wait(before),
            after: wait(after),
            fail,
            lost_ack,
        }
    }
}

#[derive(Debug)]
struct Injected(String);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {}", self.0)
    }
}

impl std::error::Error for Injected {}

/// The error of an injected fault.
pub fn injected(what: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic {
        store: "faults",
        source: Box::new(Injected(what.into())),
    }
}

/// How a request ended, for [`Hooks::done`].
#[derive(Debug)]
pub enum Outcome<'a> {
    Done,
    /// A listing with this many keys.
    Listed(usize),
    Failed(&'a object_store::Error),
}

/// What a simulation adds around each request of one store: a network that may hold
/// a request back or cut its caller off from the bucket, and observers of what the
/// bucket stored and answered. Debug builds use none ([`NoHooks`]).
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// Before a request on `path` takes effect (after its drawn latency): may wait, or
    /// fail it (the caller cannot reach the bucket).
    async fn reach(&self, _path: &str) -> Result<()> {
        Ok(())
    }

    /// After a request on `path` took effect and its latency passed: may lose the answer.
    async fn answer(&self, _path: &str) -> Result<()> {
        Ok(())
    }

    /// `path` now holds `data` (`create`: written by put-if-absent).
    fn written(&self, _path: &Path, _data: &PutPayload, _create: bool) {}

    /// Request `what` on `path` ended with `outcome`.
    fn done(&self, _what: &str, _path: &str, _outcome: Outcome<'_>) {}
}

/// No network and no observers.
#[derive(Debug)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// An object store that misbehaves on purpose, in front of a real one.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
    hooks: Arc<dyn Hooks>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({}, {:?})", self.inner, self.faults)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    /// `inner` with `config`'s faults, decided by a generator seeded by the OS.
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        let random = Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_os_rng());
        Self::with_faults(inner, Faults::new(config, random), Arc::new(NoHooks))
    }

    /// `inner` with shared `faults` and `hooks` around every request.
    pub fn with_faults(
        inner: Arc<dyn ObjectStore>,
        faults: Arc<Faults>,
        hooks: Arc<dyn Hooks>,
    ) -> Self {
        FaultyStore {
            inner,
            faults,
            hooks,
        }
    }

    /// Runs `op` (which takes effect when awaited) under the faults of one request.
    /// `listed` counts the keys of a listing's result.
    async fn run<T>(
        &self,
        what: &str,
        request: Request,
        location: Option<&Path>,
        op: impl std::future::Future<Output = Result<T>>,
        listed: impl Fn(&T) -> Option<usize>,
    ) -> Result<T> {
        let plan = self.faults.plan(request, location);
        let path = location.map_or("", |l| l.as_ref());
        if let Some(d) = plan.before {
            tokio::time::sleep(d).await;
        }
        let outcome = match self.hooks.reach(path).await {
            Err(e) => Err(e),
            Ok(()) => match plan.fail {
                Some(f) => Err(injected(f)),
                None => {
                    let r = op.await;
                    if let Some(d) = plan.after {
                        tokio::time::sleep(d).await;
                    }
                    let answered = self.hooks.answer(path).await;
                    match (r, answered) {
                        (Ok(_), Err(e)) => Err(e),
                        (Ok(_), Ok(())) if plan.lost_ack => {
                            Err(injected("done, but the answer was lost"))
                        }
                        (r, _) => r,
                    }
                }
            },
        };
        let summary = match &outcome {
            Ok(v) => listed(v).map_or(Outcome::Done, Outcome::Listed),
            Err(e) => Outcome::Failed(e),
        };
        self.hooks.done(what, path, summary);
        outcome
    }
}

fn no_keys<T>(_: &T) -> Option<usize> {
    None
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        let what = if create { "put_if_absent" } else { "put" };
        let written = payload.clone();
        let op = async {
            let r = self.inner.put_opts(location, payload, opts).await;
            if r.is_ok() {
                self.hooks.written(location, &written, create);
            }
            r
        };
        self.run(what, Request::Put, Some(location), op, no_keys)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let op = self.inner.put_multipart_opts(location, opts);
        self.run("put_multipart", Request::Put, Some(location), op, no_keys)
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = self.inner.get_opts(location, options);
        self.run("get", Request::Get, Some(location), op, no_keys)
            .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let op = self.inner.get_ranges(location, ranges);
        self.run("get_ranges", Request::Get, Some(location), op, no_keys)
            .await
    }

    /// Each path is a request of its own.
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
                    let one = futures::stream::once(futures::future::ready(Ok(path.clone())));
                    let op = async {
                        me.inner
                            .delete_stream(one.boxed())
                            .next()
                            .await
                            .unwrap_or_else(|| Err(injected("delete answered nothing")))
                    };
                    me.run("delete", Request::Delete, Some(&path), op, no_keys)
                        .await
                }
            })
            .boxed()
    }

    /// One request for the whole listing.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let me = self.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            // Listed when the request takes effect, not when it is made.
            let op = async { me.inner.list(prefix.as_ref()).try_collect::<Vec<_>>().await };
            me.run("list", Request::List, prefix.as_ref(), op, |v| Some(v.len()))
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
        let op = self.inner.list_with_delimiter(prefix);
        self.run("list_with_delimiter", Request::List, prefix, op, no_keys)
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let op = self.inner.copy_opts(from, to, options);
        self.run("copy", Request::Copy, Some(to), op, no_keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::storage::object::{Created, Store};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn parses_a_fault_spec_and_refuses_nonsense() {
        let c: FaultConfig = "put_error=0.2, put_lost_ack=0.1,latency_ms=5,jitter_ms=3"
            .parse()
            .unwrap();
        assert_eq!(c.put_error, 0.2);
        assert_eq!(c.lost_ack, 0.1);
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.jitter, Duration::from_millis(3));
        assert!("put_error=2".parse::<FaultConfig>().is_err());
        assert!("bogus=0.1".parse::<FaultConfig>().is_err());
        assert!("latency_ms=soon".parse::<FaultConfig>().is_err());
    }

    fn seeded(config: FaultConfig, seed: u64) -> Arc<Faults> {
        Faults::new(config, Box::new(StdRng::seed_from_u64(seed)))
    }

    #[test]
    fn a_seed_decides_every_plan() {
        let config = FaultConfig {
            put_error: 0.3,
            lost_ack: 0.3,
            throttle: 0.1,
            slow_put: 0.2,
            slow: Duration::from_millis(500),
            jitter: Duration::from_millis(20),
            ..Default::default()
        };
        let plans = |seed| {
            let f = seeded(config.clone(), seed);
            (0..200)
                .map(|i| {
                    let r = [Request::Put, Request::Get, Request::Delete][i % 3];
                    format!("{:?}", f.plan(r, None))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(plans(7), plans(7));
        assert_ne!(plans(7), plans(8));
    }

    #[test]
    fn reads_are_never_slow_and_never_lose_answers() {
        let f = seeded(
            FaultConfig {
                lost_ack: 1.0,
                slow_put: 1.0,
                slow: Duration::from_secs(3),
                ..Default::default()
            },
            1,
        );
        let read = f.plan(Request::Get, None);
        assert!(!read.lost_ack);
        assert_eq!(read.before, None, "no latency configured: no wait");
        let write = f.plan(Request::Delete, None);
        assert!(write.lost_ack);
        assert_eq!(write.before, Some(Duration::from_secs(3)));
        assert_eq!(write.after, None);
    }

    #[test]
    fn errors_follow_the_kind_of_request() {
        let f = seeded(
            FaultConfig {
                get_error: 1.0,
                ..Default::default()
            },
            1,
        );
        assert_eq!(f.plan(Request::Get, None).fail, Some("request failed"));
        assert_eq!(f.plan(Request::List, None).fail, None);
        assert_eq!(f.plan(Request::Put, None).fail, None);
    }

    #[tokio::test]
    async fn faults_can_be_limited_to_a_prefix_and_start_late() {
        use object_store::ObjectStoreExt;
        let faults: FaultConfig = "put_error=1,only=meta/nodes/2/,after_ms=100"
            .parse()
            .unwrap();
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let store = FaultyStore::new(inner, faults);
        let hb = Path::from("meta/nodes/2/heartbeat");
        let wal = Path::from("wal/2/1/1");
        assert!(
            store
                .put(&hb, Bytes::from_static(b"x").into())
                .await
                .is_ok(),
            "not yet"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(store
            .put(&hb, Bytes::from_static(b"x").into())
            .await
            .is_err());
        assert!(
            store
                .put(&wal, Bytes::from_static(b"x").into())
                .await
                .is_ok(),
            "other keys work"
        );
    }

    #[tokio::test]
    async fn put_if_absent_survives_lost_acknowledgements() {
        let faults = FaultConfig {
            put_error: 0.3,
            lost_ack: 0.5,
            get_error: 0.3,
            ..Default::default()
        };
        let store = Store::from_url("memory://", Arc::new(Metrics::new()))
            .unwrap()
            .with_faults(faults);
        for i in 0..50 {
            let path = Path::from(format!("wal/0/1/{i}"));
            let data = Bytes::from(format!("object {i}"));
            // A lost acknowledgement makes the retry find the object: still ours.
            assert_eq!(
                store.put_if_absent(&path, data.clone()).await.unwrap(),
                Created::Yes
            );
            // Somebody else's content at an existing key is a real conflict.
            assert_eq!(
                store
                    .put_if_absent(&path, Bytes::from_static(b"other"))
                    .await
                    .unwrap(),
                Created::AlreadyExists
            );
            assert_eq!(store.get(&path).await.unwrap(), Some(data));
        }
    }

    /// Records what the hooks see, and cuts the caller off for keys under `cut/`.
    #[derive(Default)]
    struct Recorder {
        lines: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Hooks for Recorder {
        async fn reach(&self, path: &str) -> Result<()> {
            if path.starts_with("cut/") {
                return Err(injected("unreachable"));
            }
            Ok(())
        }

        fn written(&self, path: &Path, data: &PutPayload, create: bool) {
            let len = data.content_length();
            self.lines
                .lock()
                .push(format!("wrote {path} {len} {create}"));
        }

        fn done(&self, what: &str, path: &str, outcome: Outcome<'_>) {
            let o = match outcome {
                Outcome::Done => "ok".to_string(),
                Outcome::Listed(n) => format!("{n} keys"),
                Outcome::Failed(e) => format!("error {e}"),
            };
            self.lines.lock().push(format!("{what} {path} {o}"));
        }
    }

    #[tokio::test]
    async fn hooks_see_every_request_and_can_cut_it_off() {
        use object_store::ObjectStoreExt;
        let recorder = Arc::new(Recorder::default());
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let store = FaultyStore::with_faults(
            inner.clone(),
            seeded(FaultConfig::default(), 1),
            recorder.clone(),
        );
        store
            .put(&Path::from("a/1"), Bytes::from_static(b"abc").into())
            .await
            .unwrap();
        let cut = store
            .put(&Path::from("cut/1"), Bytes::from_static(b"x").into())
            .await;
        assert!(cut.is_err());
        assert!(inner.head(&Path::from("cut/1")).await.is_err(), "never written");
        let keys: Vec<_> = store
            .list(Some(&Path::from("a")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys.len(), 1);
        store.delete(&Path::from("a/1")).await.unwrap();
        let lines = recorder.lines.lock().clone();
        assert_eq!(lines[0], "wrote a/1 3 false");
        assert_eq!(lines[1], "put a/1 ok");
        assert!(lines[2].starts_with("put cut/1 error"), "{}", lines[2]);
        assert_eq!(lines[3..], ["list a 1 keys", "delete a/1 ok"]);
    }
}
