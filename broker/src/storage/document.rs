//! A JSON document kept as a [`VersionedObject`]: every broker holds the current version
//! in memory, follows newer ones by polling, and changes it by compare-and-swap. Cluster
//! metadata and the schema registry are both such documents.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::error::{Result, StorageError};
use super::versioned::{self, VersionedObject};
use super::Store;

/// Versions kept behind the current one: watchers poll for the next version and must
/// not find a gap while they are at most this far behind.
const KEEP_VERSIONS: u64 = 32;

pub struct Document<T> {
    object: VersionedObject,
    /// What an absent document starts as (the first writer creates version 1 from it).
    initial: fn() -> T,
    current: RwLock<(u64, Arc<T>)>,
    changes: watch::Sender<u64>,
}

impl<T: Serialize + DeserializeOwned + Send + Sync> Document<T> {
    /// Loads the current version, writing the first one from `initial` if there is none
    /// (so every broker agrees on what the first version held, e.g. the cluster id).
    pub async fn open(store: Store, key: &str, initial: fn() -> T) -> Result<Self> {
        let object = VersionedObject::new(store, Path::from(key));
        let doc = Document {
            object,
            initial,
            current: RwLock::new((0, Arc::new(initial()))),
            changes: watch::channel(0).0,
        };
        match doc.object.latest().await? {
            Some((v, data)) => doc.install(v, doc.decode(Some(data))?),
            None => {
                let (v, value, ()) = versioned::update(
                    &doc.object,
                    |d| doc.decode(d),
                    encode,
                    |_| Ok::<_, StorageError>(()),
                )
                .await?;
                doc.install(v, value);
            }
        }
        Ok(doc)
    }

    fn decode(&self, data: Option<Bytes>) -> Result<T> {
        match data {
            None => Ok((self.initial)()),
            Some(d) => serde_json::from_slice(&d)
                .map_err(|e| StorageError::corrupt(self.object.prefix().as_ref(), e)),
        }
    }

    pub fn current(&self) -> Arc<T> {
        self.current.read().1.clone()
    }

    pub fn version(&self) -> u64 {
        self.current.read().0
    }

    /// A receiver that changes whenever a newer version is seen.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn install(&self, version: u64, value: T) {
        {
            let mut cur = self.current.write();
            if version <= cur.0 {
                return;
            }
            *cur = (version, Arc::new(value));
        }
        self.changes.send_replace(version);
    }

    /// Follows newer versions: reads the next ones directly (one GET each, cheap), or
    /// lists them all when `full` (a backstop against having fallen far behind).
    pub async fn refresh(&self, full: bool) -> Result<bool> {
        if full {
            if let Some((v, data)) = self.object.latest().await? {
                if v > self.version() {
                    self.install(v, self.decode(Some(data))?);
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let mut changed = false;
        loop {
            let next = self.version() + 1;
            match self.object.read(next).await? {
                Some(data) => {
                    self.install(next, self.decode(Some(data))?);
                    changed = true;
                }
                None => return Ok(changed),
            }
        }
    }

    /// Applies `change` by compare-and-swap, retrying on a newer version.
    pub async fn update<R, E>(&self, mut change: impl FnMut(&mut T) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StorageError>,
    {
        let out = self.update_if(|m| change(m).map(Some)).await?;
        Ok(out.expect("change always writes"))
    }

    /// Like [`Document::update`], but `change` returns `None` when the current version
    /// needs no change, and nothing is written.
    pub async fn update_if<R, E>(
        &self,
        change: impl FnMut(&mut T) -> Result<Option<R>, E>,
    ) -> Result<Option<R>, E>
    where
        E: From<StorageError>,
    {
        let (version, value, out) = versioned::update_if(
            &self.object,
            |d| self.decode(d).map_err(E::from),
            encode,
            change,
        )
        .await?;
        let wrote = out.is_some();
        self.install(version, value);
        if wrote && version % 16 == 0 {
            let _ = self.object.cleanup_keeping(version, KEEP_VERSIONS).await;
        }
        Ok(out)
    }
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("a document serializes"))
}
