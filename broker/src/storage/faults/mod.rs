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

mod plan;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use plan::Request;
pub use plan::{FaultConfig, Faults};

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
            me.run("list", Request::List, prefix.as_ref(), op, |v| {
                Some(v.len())
            })
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
    use parking_lot::Mutex;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::time::Duration;

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
        // Seeded: at these rates an attempt fails about 40 % of the time, so one of the
        // 100 writes ran out of its eight attempts in about one run in seven (a failure
        // the caller is meant to see, not what this test is about).
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let faulty = FaultyStore::with_faults(
            inner,
            Faults::new(faults, Box::new(StdRng::seed_from_u64(6))),
            Arc::new(NoHooks),
        );
        let store = Store::new(
            Arc::new(faulty),
            "seeded faults".into(),
            Arc::new(Metrics::new()),
        )
        .with_jitter_seed(17);
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
            Faults::new(FaultConfig::default(), Box::new(StdRng::seed_from_u64(1))),
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
        assert!(
            inner.head(&Path::from("cut/1")).await.is_err(),
            "never written"
        );
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
