//! Compare-and-swap on any object store: version N+1 of an object is a new key written
//! with put-if-absent, the highest version is current, old versions are deleted later.
//! Only put-if-absent is needed, so the local file system works like S3 (SlateDB's
//! manifest scheme).

use bytes::Bytes;
use object_store::path::Path;

use super::error::Result;
use super::object::{parse_seq, seq_key, Created, Store};

/// Versions kept behind the current one, for readers that listed just before a write.
const KEEP_OLD_VERSIONS: u64 = 2;

#[derive(Debug, Clone)]
pub struct VersionedObject {
    store: Store,
    prefix: Path,
}

impl VersionedObject {
    pub fn new(store: Store, prefix: Path) -> Self {
        VersionedObject { store, prefix }
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    fn key(&self, version: u64) -> Path {
        self.prefix.clone().join(seq_key(version))
    }

    /// Every version present, ascending.
    async fn versions(&self) -> Result<Vec<u64>> {
        let mut v: Vec<u64> = self
            .store
            .list(&self.prefix)
            .await?
            .iter()
            .filter_map(parse_seq)
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The current version and its content, `None` if never written.
    pub async fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        // A version can be cleaned up between the list and the get only if a newer one
        // exists, so walking down from the highest listed finds the current one.
        for version in self.versions().await?.into_iter().rev() {
            if let Some(data) = self.store.get(&self.key(version)).await? {
                return Ok(Some((version, data)));
            }
        }
        Ok(None)
    }

    /// Reads a specific version.
    pub async fn read(&self, version: u64) -> Result<Option<Bytes>> {
        self.store.get(&self.key(version)).await
    }

    /// Tries to create `version`; false means somebody else already did (the caller's
    /// view is stale and must be re-read).
    pub async fn try_write(&self, version: u64, data: Bytes) -> Result<bool> {
        let created = self.store.put_if_absent(&self.key(version), data).await?;
        Ok(created == Created::Yes)
    }

    /// Like [`VersionedObject::try_write`], for a writer whose idea of the current
    /// version may be old (a partition's leader keeps its manifest's version): old
    /// versions are deleted, so put-if-absent alone could create `version` again long
    /// after it was deleted, below the current one, where no reader looks. True only if
    /// `version` was created and nothing newer exists. (Found by the simulation, seed
    /// 1019: a deposed leader "checkpointed" that way, then trimmed its tail.)
    pub async fn try_write_current(&self, version: u64, data: Bytes) -> Result<bool> {
        if !self.try_write(version, data).await? {
            return Ok(false);
        }
        Ok(self.versions().await?.last().is_none_or(|v| *v <= version))
    }

    /// Deletes versions older than `current - KEEP_OLD_VERSIONS`.
    pub async fn cleanup(&self, current: u64) -> Result<()> {
        self.cleanup_keeping(current, KEEP_OLD_VERSIONS).await
    }

    /// Deletes versions more than `keep` behind `current`.
    pub async fn cleanup_keeping(&self, current: u64, keep: u64) -> Result<()> {
        for v in self.versions().await? {
            if v + keep < current {
                self.store.delete(&self.key(v)).await?;
            }
        }
        Ok(())
    }

    /// Deletes every version (the object is gone for good).
    pub async fn delete_all(&self) -> Result<()> {
        for v in self.versions().await? {
            self.store.delete(&self.key(v)).await?;
        }
        Ok(())
    }
}

/// Applies `change` to the current value and writes it as the next version, re-reading
/// and retrying when another writer got there first. `decode`/`encode` convert the
/// stored bytes. Returns the new version and what `change` returned.
pub async fn update<T, R, E>(
    object: &VersionedObject,
    decode: impl Fn(Option<Bytes>) -> Result<T, E>,
    encode: impl Fn(&T) -> Bytes,
    mut change: impl FnMut(&mut T) -> Result<R, E>,
) -> Result<(u64, T, R), E>
where
    E: From<super::error::StorageError>,
{
    let (version, value, out) = update_if(object, decode, encode, |v| change(v).map(Some)).await?;
    Ok((version, value, out.expect("change always writes")))
}

/// Like [`update`], but `change` may decline to write by returning `None` (nothing to
/// change in the current value); the current version is then returned unchanged.
pub async fn update_if<T, R, E>(
    object: &VersionedObject,
    decode: impl Fn(Option<Bytes>) -> Result<T, E>,
    encode: impl Fn(&T) -> Bytes,
    mut change: impl FnMut(&mut T) -> Result<Option<R>, E>,
) -> Result<(u64, T, Option<R>), E>
where
    E: From<super::error::StorageError>,
{
    loop {
        let (version, data) = match object.latest().await? {
            Some((v, d)) => (v, Some(d)),
            None => (0, None),
        };
        let mut value = decode(data)?;
        let Some(out) = change(&mut value)? else {
            return Ok((version, value, None));
        };
        if object.try_write(version + 1, encode(&value)).await? {
            return Ok((version + 1, value, Some(out)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;

    fn store() -> Store {
        Store::from_url("memory://", Arc::new(Metrics::new())).unwrap()
    }

    #[tokio::test]
    async fn versions_are_created_once() {
        let obj = VersionedObject::new(store(), Path::from("meta/x"));
        assert!(obj.latest().await.unwrap().is_none());
        assert!(obj.try_write(1, Bytes::from_static(b"a")).await.unwrap());
        assert!(!obj.try_write(1, Bytes::from_static(b"b")).await.unwrap());
        assert!(obj.try_write(2, Bytes::from_static(b"c")).await.unwrap());
        assert_eq!(
            obj.latest().await.unwrap(),
            Some((2, Bytes::from_static(b"c")))
        );
    }

    #[tokio::test]
    async fn a_stale_writer_cannot_bring_back_a_deleted_version() {
        let obj = VersionedObject::new(store(), Path::from("log/t/0/manifest"));
        for v in 1..=5 {
            assert!(obj.try_write(v, Bytes::from(v.to_string())).await.unwrap());
        }
        obj.cleanup(5).await.unwrap();
        assert_eq!(obj.versions().await.unwrap(), vec![3, 4, 5]);
        // A writer that still thinks version 1 is current: its version 2 is created
        // (it was deleted), but it is not the current version.
        assert!(!obj
            .try_write_current(2, Bytes::from_static(b"stale"))
            .await
            .unwrap());
        assert_eq!(obj.latest().await.unwrap().unwrap().0, 5);
        assert!(obj
            .try_write_current(6, Bytes::from_static(b"6"))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn concurrent_updates_all_land_exactly_once() {
        let obj = VersionedObject::new(store(), Path::from("meta/counter"));
        let decode = |d: Option<Bytes>| -> Result<u64, super::super::StorageError> {
            Ok(d.map(|b| String::from_utf8_lossy(&b).parse().unwrap())
                .unwrap_or(0))
        };
        let encode = |v: &u64| Bytes::from(v.to_string());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let obj = obj.clone();
                tokio::spawn(async move {
                    update(&obj, decode, encode, |v| {
                        *v += 1;
                        Ok(())
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let (v, data) = obj.latest().await.unwrap().unwrap();
        assert_eq!(v, 8);
        assert_eq!(data, Bytes::from_static(b"8"));
        obj.cleanup(v).await.unwrap();
        assert_eq!(obj.versions().await.unwrap(), vec![6, 7, 8]);
    }
}
