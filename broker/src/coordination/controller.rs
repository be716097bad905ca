//! The controller role and node membership. Every broker runs [`Controller::tick`] on
//! its heartbeat interval: one of them holds the lease recorded in cluster metadata and
//! detects dead brokers, fails their partitions over and starts drain moves; the others
//! watch the holder's heartbeat and take the lease over by compare-and-swap when it
//! stops. Time only decides *when* this happens; a deposed controller cannot change
//! anything because every write checks the lease inside the compare-and-swap.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

use super::liveness::{read_heartbeat, LivenessTracker};
use super::metadata::{ClusterMetadata, ControllerLease, Endpoint, MetadataStore, NodeInfo};
use super::placement::{self, Move};
use crate::storage::error::{Result, StorageError};
use crate::storage::{wal_gc, Store};

#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    pub session_timeout: Duration,
    /// Partition moves in flight at once while draining.
    pub max_moves: usize,
    /// How often dead WAL streams are collected.
    pub wal_gc_interval: Duration,
}

/// What one controller round changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub dead: Vec<i32>,
    pub failed_over: Vec<Move>,
    pub drains_started: Vec<Move>,
    pub targets_dropped: usize,
}

impl Changes {
    fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// One controller round on `meta`, as a pure function: declares `dead` nodes (at the
/// incarnation they were seen dead in) not alive, fails over orphaned partitions, drops
/// impossible moves and starts drain moves.
pub fn control(meta: &mut ClusterMetadata, dead: &[(i32, u64)], max_moves: usize) -> Changes {
    let mut changes = Changes::default();
    for (node, incarnation) in dead {
        if let Some(n) = meta.nodes.get_mut(node) {
            if n.alive && n.incarnation == *incarnation {
                n.alive = false;
                changes.dead.push(*node);
            }
        }
    }
    changes.failed_over = placement::fail_over(meta);
    changes.targets_dropped = placement::drop_stale_targets(meta);
    changes.drains_started = placement::drain(meta, max_moves);
    changes
}

pub struct Controller {
    store: Store,
    metadata: Arc<MetadataStore>,
    node: i32,
    incarnation: u64,
    config: ControllerConfig,
    tracker: Mutex<LivenessTracker>,
    last_gc: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
enum LeaseLost {
    #[error("the controller lease moved")]
    Moved,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Controller {
    pub fn new(
        store: Store,
        metadata: Arc<MetadataStore>,
        node: i32,
        incarnation: u64,
        config: ControllerConfig,
    ) -> Self {
        Controller {
            store,
            metadata,
            node,
            incarnation,
            config,
            tracker: Mutex::new(LivenessTracker::default()),
            last_gc: Mutex::new(None),
        }
    }

    fn lease(&self) -> Option<ControllerLease> {
        self.metadata.current().controller
    }

    pub fn is_controller(&self) -> bool {
        self.lease()
            .is_some_and(|c| c.node == self.node && c.incarnation == self.incarnation)
    }

    /// Registers this incarnation as a live node (keeping an operator's drain).
    /// `listeners` are the advertised endpoints by listener name; the first is the
    /// node's main address.
    pub async fn register(
        &self,
        listeners: &[(String, Endpoint)],
        http_port: Option<i32>,
    ) -> Result<()> {
        let (node, incarnation) = (self.node, self.incarnation);
        let Some((_, main)) = listeners.first() else {
            return Ok(());
        };
        let (host, port) = (main.host.as_str(), main.port);
        self.metadata
            .update(|m| {
                let draining = m.nodes.get(&node).is_some_and(|n| n.draining);
                m.nodes.insert(
                    node,
                    NodeInfo {
                        host: host.to_string(),
                        port,
                        incarnation,
                        alive: true,
                        draining,
                        http_port,
                        listeners: listeners.iter().cloned().collect(),
                    },
                );
                Ok::<_, StorageError>(())
            })
            .await?;
        info!(node, incarnation, host, port, "registered");
        Ok(())
    }

    /// Marks this incarnation gone (clean shutdown) and gives up the lease, so its
    /// partitions fail over without waiting for the session timeout.
    pub async fn deregister(&self) -> Result<()> {
        let (node, incarnation) = (self.node, self.incarnation);
        self.metadata
            .update_if(|m| {
                let mut changed = false;
                if let Some(n) = m.nodes.get_mut(&node) {
                    if n.incarnation == incarnation && n.alive {
                        n.alive = false;
                        changed = true;
                    }
                }
                if m.controller
                    .is_some_and(|c| c.node == node && c.incarnation == incarnation)
                {
                    m.controller = None;
                    changed = true;
                }
                Ok::<_, StorageError>(changed.then_some(()))
            })
            .await?;
        Ok(())
    }

    /// One round: takes the lease if its holder is gone; as the holder, acts on dead
    /// brokers, failovers and drains. Returns what changed (empty when not controller).
    pub async fn tick(&self) -> Result<Changes> {
        if !self.is_controller() {
            if self.holder_is_gone().await? && !self.try_acquire().await? {
                return Ok(Changes::default());
            }
            if !self.is_controller() {
                return Ok(Changes::default());
            }
        }
        self.collect_wal_garbage().await;
        let dead = self.find_dead().await?;
        let planned = {
            let mut m = (*self.metadata.current()).clone();
            !control(&mut m, &dead, self.config.max_moves).is_empty()
        };
        if !planned {
            return Ok(Changes::default());
        }
        let me = (self.node, self.incarnation);
        let result = self
            .metadata
            .update_if(|m| {
                if m.controller.is_none_or(|c| (c.node, c.incarnation) != me) {
                    return Err(LeaseLost::Moved);
                }
                let changes = control(m, &dead, self.config.max_moves);
                Ok((!changes.is_empty()).then_some(changes))
            })
            .await;
        match result {
            Ok(Some(changes)) => {
                for node in &changes.dead {
                    warn!(node, "broker missed its heartbeats; declared dead");
                    self.tracker.lock().forget(*node);
                }
                if !changes.failed_over.is_empty() {
                    info!(partitions = changes.failed_over.len(), moves = ?changes.failed_over, "failed partitions over");
                }
                if !changes.drains_started.is_empty() {
                    info!(moves = changes.drains_started.len(), "started drain moves");
                }
                Ok(changes)
            }
            Ok(None) => Ok(Changes::default()),
            Err(LeaseLost::Moved) => {
                info!("lost the controller lease");
                Ok(Changes::default())
            }
            Err(LeaseLost::Storage(e)) => Err(e),
        }
    }

    /// Every `wal_gc_interval` (the first time one interval after taking the lease):
    /// deletes the data objects of dead WAL streams no manifest needs.
    async fn collect_wal_garbage(&self) {
        {
            let mut last = self.last_gc.lock();
            match *last {
                Some(t) if t.elapsed() < self.config.wal_gc_interval => return,
                None => {
                    *last = Some(Instant::now());
                    return;
                }
                _ => *last = Some(Instant::now()),
            }
        }
        // Metadata first: a stream newer than what it shows counts as running.
        let meta = self.metadata.current();
        let running = |(node, inc): wal_gc::Stream| match meta.nodes.get(&node) {
            None => true,
            Some(n) => inc > n.incarnation || (inc == n.incarnation && n.alive),
        };
        let partitions: Vec<(uuid::Uuid, i32)> = meta
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len() as i32).map(move |p| (t.id, p)))
            .collect();
        if let Err(e) = wal_gc::collect(&self.store, running, &partitions).await {
            warn!(error = %e, "collecting dead WAL streams failed; next round retries");
        }
    }

    /// Whether the lease holder is gone: none, not a live registered incarnation, or
    /// its heartbeat stalled for the session timeout.
    async fn holder_is_gone(&self) -> Result<bool> {
        let meta = self.metadata.current();
        let Some(c) = meta.controller else {
            return Ok(true);
        };
        let registered = meta
            .nodes
            .get(&c.node)
            .is_some_and(|n| n.alive && n.incarnation == c.incarnation);
        if !registered {
            return Ok(true);
        }
        let hb = read_heartbeat(&self.store, c.node).await?;
        let now = Instant::now();
        let mut t = self.tracker.lock();
        t.observe(c.node, hb, now);
        Ok(t.is_dead(c.node, c.incarnation, self.config.session_timeout, now))
    }

    async fn try_acquire(&self) -> Result<bool> {
        let seen = self.lease();
        let (node, incarnation) = (self.node, self.incarnation);
        let acquired = self
            .metadata
            .update_if(|m| {
                let registered = m
                    .nodes
                    .get(&node)
                    .is_some_and(|n| n.alive && n.incarnation == incarnation);
                if m.controller != seen || !registered {
                    return Ok::<_, StorageError>(None);
                }
                let epoch = seen.map_or(1, |c| c.epoch + 1);
                m.controller = Some(ControllerLease {
                    node,
                    incarnation,
                    epoch,
                });
                Ok(Some(epoch))
            })
            .await?;
        if let Some(epoch) = acquired {
            info!(node, incarnation, epoch, previous = ?seen, "took the controller lease");
        }
        Ok(acquired.is_some())
    }

    /// Live registered nodes (other than this one) whose heartbeat stalled.
    async fn find_dead(&self) -> Result<Vec<(i32, u64)>> {
        let meta = self.metadata.current();
        let others: Vec<(i32, u64)> = meta
            .live_nodes()
            .filter(|(id, _)| *id != self.node)
            .map(|(id, n)| (id, n.incarnation))
            .collect();
        let reads = futures::future::join_all(
            others
                .iter()
                .map(|(id, _)| read_heartbeat(&self.store, *id)),
        )
        .await;
        let now = Instant::now();
        let mut t = self.tracker.lock();
        let mut dead = Vec::new();
        for ((id, inc), hb) in others.into_iter().zip(reads) {
            t.observe(id, hb?, now);
            if t.is_dead(id, inc, self.config.session_timeout, now) {
                dead.push((id, inc));
            }
        }
        Ok(dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::liveness::{write_heartbeat, Heartbeat};
    use crate::metrics::Metrics;

    fn config() -> ControllerConfig {
        ControllerConfig {
            session_timeout: Duration::from_millis(300),
            max_moves: 100,
            wal_gc_interval: Duration::from_secs(60),
        }
    }

    async fn node(store: &Store, id: i32, incarnation: u64) -> Controller {
        let meta = Arc::new(
            crate::coordination::metadata::open(store.clone())
                .await
                .unwrap(),
        );
        let c = Controller::new(store.clone(), meta, id, incarnation, config());
        let main = Endpoint {
            host: "127.0.0.1".into(),
            port: 9000 + id,
        };
        c.register(&[("PLAINTEXT".into(), main)], None)
            .await
            .unwrap();
        c
    }

    async fn beat(store: &Store, id: i32, incarnation: u64, counter: u64) {
        write_heartbeat(
            store,
            id,
            Heartbeat {
                incarnation,
                counter,
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn one_node_takes_the_lease_and_another_takes_it_over_when_it_stops() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let a = node(&store, 1, 1).await;
        let b = node(&store, 2, 1).await;
        a.metadata.refresh(true).await.unwrap();
        beat(&store, 1, 1, 1).await;
        a.tick().await.unwrap();
        assert!(a.is_controller());
        b.metadata.refresh(true).await.unwrap();
        b.tick().await.unwrap();
        assert!(!b.is_controller(), "the holder is alive");
        // a stops heartbeating; b waits a full session timeout on its own clock, then
        // takes the lease and declares a dead in the same round.
        tokio::time::sleep(Duration::from_millis(350)).await;
        beat(&store, 2, 1, 1).await;
        let changes = b.tick().await.unwrap();
        assert!(b.is_controller());
        assert_eq!(changes.dead, vec![1]);
        // The deposed controller changes nothing.
        a.metadata.refresh(true).await.unwrap();
        assert!(!a.is_controller());
        assert_eq!(a.tick().await.unwrap(), Changes::default());
    }

    #[tokio::test]
    async fn a_clean_shutdown_frees_the_lease_at_once() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let a = node(&store, 1, 1).await;
        a.tick().await.unwrap();
        assert!(a.is_controller());
        a.deregister().await.unwrap();
        let b = node(&store, 2, 1).await;
        b.tick().await.unwrap();
        assert!(b.is_controller());
        assert!(!b.metadata.current().nodes[&1].alive);
    }
}
