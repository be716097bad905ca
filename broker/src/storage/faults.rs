//! Fault injection for the object store, for tests and debug builds: errors before an
//! operation, writes that land but whose acknowledgement is lost, 503 throttling and
//! latency. The engine must retry through all of them and never acknowledge a produce
//! that is not durable. Faults can be limited to keys under a prefix and start after a
//! delay: `put_error=1,only=meta/nodes/2/heartbeat,after_ms=4000` cuts node 2's
//! heartbeats off from the fleet while its data still reaches the bucket.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Probabilities (0..=1) per operation, and a fixed latency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    pub put_error: f64,
    /// The put happens, then the caller gets an error (a timeout that still succeeded).
    pub put_lost_ack: f64,
    pub get_error: f64,
    pub list_error: f64,
    pub delete_error: f64,
    /// Any operation answered "503 Slow Down" before it runs.
    pub throttle: f64,
    pub latency: Duration,
    /// Only keys under this prefix are affected (all when `None`).
    pub only: Option<String>,
    /// Faults start this long after the store is opened.
    pub after: Duration,
}

impl FromStr for FaultConfig {
    type Err = String;

    /// `put_error=0.2,put_lost_ack=0.1,get_error=0.1,list_error=0.1,delete_error=0.1,throttle=0.05,latency_ms=5`
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
            match k {
                "put_error" => c.put_error = p()?,
                "put_lost_ack" => c.put_lost_ack = p()?,
                "get_error" => c.get_error = p()?,
                "list_error" => c.list_error = p()?,
                "delete_error" => c.delete_error = p()?,
                "throttle" => c.throttle = p()?,
                "latency_ms" => {
                    c.latency =
                        Duration::from_millis(v.parse().map_err(|_| format!("latency_ms: {v:?}"))?)
                }
                "after_ms" => {
                    c.after =
                        Duration::from_millis(v.parse().map_err(|_| format!("after_ms: {v:?}"))?)
                }
                "only" => c.only = Some(v.to_string()),
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(c)
    }
}

#[derive(Debug)]
struct Injected(&'static str);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {}", self.0)
    }
}

impl std::error::Error for Injected {}

fn injected(what: &'static str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faults",
        source: Box::new(Injected(what)),
    }
}

/// An object store that misbehaves on purpose, in front of a real one.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    opened: Instant,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        FaultyStore {
            inner,
            config,
            opened: Instant::now(),
        }
    }

    /// Whether faults apply now to `location` (`None`: an operation on no one key).
    fn applies(&self, location: Option<&Path>) -> bool {
        if self.opened.elapsed() < self.config.after {
            return false;
        }
        match (&self.config.only, location) {
            (None, _) => true,
            (Some(prefix), Some(l)) => l.as_ref().starts_with(prefix.as_str()),
            (Some(_), None) => false,
        }
    }

    /// `p` where faults apply to `location`, else 0.
    fn chance(&self, p: f64, location: Option<&Path>) -> f64 {
        if self.applies(location) {
            p
        } else {
            0.0
        }
    }

    /// Latency, then maybe throttling or an error, before an operation on `location`.
    async fn before(&self, error: f64, location: Option<&Path>) -> Result<()> {
        if !self.applies(location) {
            return Ok(());
        }
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        if rand::random_bool(self.config.throttle) {
            return Err(injected("503 Slow Down"));
        }
        if rand::random_bool(error) {
            return Err(injected("request failed"));
        }
        Ok(())
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before(self.config.put_error, Some(location)).await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if rand::random_bool(self.chance(self.config.put_lost_ack, Some(location))) {
            return Err(injected("put succeeded but its acknowledgement was lost"));
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before(self.config.put_error, Some(location)).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before(self.config.get_error, Some(location)).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.before(self.config.get_error, Some(location)).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let fail = self.chance(self.config.delete_error, None);
        self.inner
            .delete_stream(locations)
            .map(move |r| match r {
                Ok(_) if rand::random_bool(fail) => Err(injected("delete failed")),
                other => other,
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if rand::random_bool(self.chance(self.config.list_error, prefix)) {
            return futures::stream::once(async { Err(injected("list failed")) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        if rand::random_bool(self.chance(self.config.list_error, prefix)) {
            return futures::stream::once(async { Err(injected("list failed")) }).boxed();
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.before(self.config.list_error, prefix).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.before(self.config.put_error, Some(to)).await?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::storage::object::{Created, Store};

    #[test]
    fn parses_a_fault_spec_and_refuses_nonsense() {
        let c: FaultConfig = "put_error=0.2, put_lost_ack=0.1,latency_ms=5"
            .parse()
            .unwrap();
        assert_eq!(c.put_error, 0.2);
        assert_eq!(c.put_lost_ack, 0.1);
        assert_eq!(c.latency, Duration::from_millis(5));
        assert!("put_error=2".parse::<FaultConfig>().is_err());
        assert!("bogus=0.1".parse::<FaultConfig>().is_err());
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
            put_lost_ack: 0.5,
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
}
