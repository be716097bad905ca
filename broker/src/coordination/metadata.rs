//! Cluster metadata: one versioned document holding every topic, its configs and its
//! partition assignment with leader epochs. Every change is a compare-and-swap, so a
//! broker with a stale view cannot overwrite a newer one.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::storage::error::{Result, StorageError};
use crate::storage::versioned::{self, VersionedObject};
use crate::storage::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub leader: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub id: Uuid,
    pub partitions: Vec<PartitionAssignment>,
    /// Only explicitly set configs; defaults come from `topic_config`.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    pub fn topic_by_id(&self, id: Uuid) -> Option<(&String, &TopicMetadata)> {
        self.topics.iter().find(|(_, t)| t.id == id)
    }
}

pub struct MetadataStore {
    object: VersionedObject,
    current: RwLock<Arc<ClusterMetadata>>,
}

fn decode(data: Option<Bytes>) -> Result<ClusterMetadata> {
    match data {
        None => Ok(ClusterMetadata {
            cluster_id: new_cluster_id(),
            topics: BTreeMap::new(),
        }),
        Some(d) => serde_json::from_slice(&d).map_err(|e| StorageError::corrupt("meta/cluster", e)),
    }
}

fn encode(m: &ClusterMetadata) -> Bytes {
    Bytes::from(serde_json::to_vec(m).expect("metadata serializes"))
}

/// A Kafka-style cluster id: 22 characters of URL-safe base64 of a random UUID.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((v >> (i * 6)) & 63) as usize] as char)
        .collect()
}

impl MetadataStore {
    /// Loads the current metadata, creating the cluster's first version if there is none.
    pub async fn open(store: Store) -> Result<Self> {
        let object = VersionedObject::new(store, Path::from("meta/cluster"));
        let current = match object.latest().await? {
            Some((_, data)) => decode(Some(data))?,
            None => {
                versioned::update(&object, decode, encode, |_| Ok::<_, StorageError>(()))
                    .await?
                    .1
            }
        };
        Ok(MetadataStore {
            object,
            current: RwLock::new(Arc::new(current)),
        })
    }

    pub fn current(&self) -> Arc<ClusterMetadata> {
        self.current.read().clone()
    }

    /// Applies `change` by compare-and-swap, retrying on a newer version.
    pub async fn update<R, E>(
        &self,
        change: impl FnMut(&mut ClusterMetadata) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<StorageError>,
    {
        let (_, value, out) =
            versioned::update(&self.object, |d| decode(d).map_err(E::from), encode, change).await?;
        *self.current.write() = Arc::new(value);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn metadata_survives_reopen_and_keeps_the_cluster_id() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let m = MetadataStore::open(store.clone()).await.unwrap();
        let id = m.current().cluster_id.clone();
        assert_eq!(id.len(), 22);
        m.update(|c| {
            c.topics.insert(
                "t".into(),
                TopicMetadata {
                    id: Uuid::new_v4(),
                    partitions: vec![PartitionAssignment {
                        leader: 0,
                        leader_epoch: 0,
                    }],
                    configs: BTreeMap::new(),
                },
            );
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
        let again = MetadataStore::open(store).await.unwrap();
        assert_eq!(again.current().cluster_id, id);
        assert!(again.current().topics.contains_key("t"));
    }
}
