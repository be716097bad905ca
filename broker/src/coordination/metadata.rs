//! Cluster metadata: one versioned document holding every topic, its configs, its
//! partition assignment with leader epochs, the registered nodes and the controller.
//! Every change is a compare-and-swap, so a broker with a stale view cannot overwrite a
//! newer one; brokers follow changes by polling for the next version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::storage::document::Document;
use crate::storage::error::Result;
use crate::storage::Store;

/// Who leads a partition. In a stateless fleet the bucket holds the only replica, so a
/// partition's "replica set" is its leader; a reassignment names the next leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub leader: i32,
    pub leader_epoch: i32,
    /// The leader's incarnation when it was assigned: a restarted node does not inherit
    /// partitions silently, they fail over (possibly back to it) with a new epoch.
    #[serde(default)]
    pub leader_incarnation: u64,
    /// A pending move: the leader releases the partition, then hands it to this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i32>,
}

impl PartitionAssignment {
    pub fn led_by(node: &NodeInfo, node_id: i32, epoch: i32) -> Self {
        PartitionAssignment {
            leader: node_id,
            leader_epoch: epoch,
            leader_incarnation: node.incarnation,
            target: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub id: Uuid,
    pub partitions: Vec<PartitionAssignment>,
    /// Only explicitly set configs; defaults come from `topic_config`.
    pub configs: BTreeMap<String, String>,
}

/// A broker as registered in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub host: String,
    pub port: i32,
    pub incarnation: u64,
    /// False once the node shut down or the controller declared it dead; it registers
    /// again (with a new incarnation) when it starts.
    pub alive: bool,
    /// Asked to hand over every partition and take no new ones (scale-in).
    #[serde(default)]
    pub draining: bool,
    /// The port of the node's HTTP API (same host), where peers ask for the parts of
    /// an evidence report it holds. None from brokers of older versions.
    #[serde(default)]
    pub http_port: Option<i32>,
    /// Where clients reach the node, by listener name (`--advertised-listeners`). Clients
    /// are sent to the endpoints of the listener they connected through, as with Kafka.
    /// Empty from brokers of older versions: `host` and `port` then serve every listener.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listeners: BTreeMap<String, Endpoint>,
}

/// A host and port clients connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

impl NodeInfo {
    /// The node's endpoint on `listener`, or None when it has no such listener.
    pub fn endpoint(&self, listener: &str) -> Option<Endpoint> {
        if self.listeners.is_empty() {
            return Some(Endpoint {
                host: self.host.clone(),
                port: self.port,
            });
        }
        self.listeners.get(listener).cloned()
    }

    /// Can lead partitions: alive and not being drained.
    pub fn is_eligible(&self) -> bool {
        self.alive && !self.draining
    }
}

/// The controller role: held by one node incarnation until it stops heartbeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerLease {
    pub node: i32,
    pub incarnation: u64,
    /// Bumped at every change of holder (Kafka's controller epoch).
    pub epoch: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMetadata>,
    #[serde(default)]
    pub nodes: BTreeMap<i32, NodeInfo>,
    #[serde(default)]
    pub controller: Option<ControllerLease>,
}

impl ClusterMetadata {
    pub fn topic_by_id(&self, id: Uuid) -> Option<(&String, &TopicMetadata)> {
        self.topics.iter().find(|(_, t)| t.id == id)
    }

    /// The live node ids, ascending.
    pub fn live_nodes(&self) -> impl Iterator<Item = (i32, &NodeInfo)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.alive)
            .map(|(i, n)| (*i, n))
    }

    /// Live nodes that clients of `listener` can reach, with their endpoint on it.
    pub fn live_endpoints<'a>(
        &'a self,
        listener: &'a str,
    ) -> impl Iterator<Item = (i32, Endpoint)> + 'a {
        self.live_nodes()
            .filter_map(move |(id, n)| n.endpoint(listener).map(|e| (id, e)))
    }

    /// Whether `p` is led by a live incarnation of its leader.
    pub fn leader_is_live(&self, p: &PartitionAssignment) -> bool {
        self.nodes
            .get(&p.leader)
            .is_some_and(|n| n.alive && n.incarnation == p.leader_incarnation)
    }

    /// The leader of `p` and its address, if it is a live incarnation.
    pub fn live_leader(&self, p: &PartitionAssignment) -> Option<(i32, &NodeInfo)> {
        self.leader_is_live(p)
            .then(|| (p.leader, &self.nodes[&p.leader]))
    }

    /// The controller's node id, -1 when the lease is free.
    pub fn controller_id(&self) -> i32 {
        self.controller.map_or(-1, |c| c.node)
    }

    /// Partitions led by `node`, over all topics.
    pub fn partitions_led_by(&self, node: i32) -> usize {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == node)
            .count()
    }
}

/// The cluster metadata document, `meta/cluster`: every broker follows it.
pub type MetadataStore = Document<ClusterMetadata>;

/// A Kafka-style cluster id: 22 characters of URL-safe base64 of a random UUID.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((v >> (i * 6)) & 63) as usize] as char)
        .collect()
}

/// Opens the cluster metadata, creating the cluster (and its id) if there is none.
pub async fn open(store: Store) -> Result<MetadataStore> {
    Document::open(store, "meta/cluster", || ClusterMetadata {
        cluster_id: new_cluster_id(),
        ..Default::default()
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::storage::StorageError;

    #[tokio::test]
    async fn metadata_survives_reopen_and_keeps_the_cluster_id() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let m = open(store.clone()).await.unwrap();
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
                        leader_incarnation: 1,
                        target: None,
                    }],
                    configs: BTreeMap::new(),
                },
            );
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
        let again = open(store).await.unwrap();
        assert_eq!(again.current().cluster_id, id);
        assert!(again.current().topics.contains_key("t"));
    }

    #[tokio::test]
    async fn a_watcher_follows_changes_made_elsewhere() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let writer = open(store.clone()).await.unwrap();
        let watcher = open(store).await.unwrap();
        let rx = watcher.subscribe();
        for i in 0..3 {
            writer
                .update(|c| {
                    c.nodes.insert(
                        i,
                        NodeInfo {
                            host: "h".into(),
                            port: 1,
                            incarnation: 1,
                            alive: true,
                            draining: false,
                            ..NodeInfo::default()
                        },
                    );
                    Ok::<_, StorageError>(())
                })
                .await
                .unwrap();
        }
        assert!(watcher.refresh(false).await.unwrap());
        assert!(rx.has_changed().unwrap());
        assert_eq!(watcher.version(), writer.version());
        assert_eq!(watcher.current().nodes.len(), 3);
        assert!(!watcher.refresh(true).await.unwrap());
    }
}
