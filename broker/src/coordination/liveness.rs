//! Broker liveness through the bucket. Each broker overwrites its heartbeat object
//! (`meta/nodes/<id>/heartbeat`) at a fixed interval with a growing counter; observers
//! judge liveness by whether the counter moved within the session timeout on *their
//! own* clock, so no two clocks are ever compared. Liveness only drives failover and
//! the controller lease; safety rests on fencing and compare-and-swap.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::storage::error::{Result, StorageError};
use crate::storage::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub incarnation: u64,
    pub counter: u64,
}

pub fn heartbeat_path(node: i32) -> Path {
    Path::from(format!("meta/nodes/{node}/heartbeat"))
}

pub async fn write_heartbeat(store: &Store, node: i32, hb: Heartbeat) -> Result<()> {
    let data = Bytes::from(serde_json::to_vec(&hb).expect("heartbeat serializes"));
    store.put(&heartbeat_path(node), data).await
}

pub async fn read_heartbeat(store: &Store, node: i32) -> Result<Option<Heartbeat>> {
    let path = heartbeat_path(node);
    match store.get(&path).await? {
        None => Ok(None),
        Some(d) => serde_json::from_slice(&d)
            .map(Some)
            .map_err(|e| StorageError::corrupt(path, e)),
    }
}

/// What one observer has seen of each node's heartbeat.
#[derive(Debug, Default)]
pub struct LivenessTracker {
    seen: HashMap<i32, (Option<Heartbeat>, Instant)>,
}

impl LivenessTracker {
    /// Records a read of `node`'s heartbeat; the clock restarts when it changed.
    pub fn observe(&mut self, node: i32, hb: Option<Heartbeat>, now: Instant) {
        match self.seen.get_mut(&node) {
            Some((last, since)) if *last != hb => {
                *last = hb;
                *since = now;
            }
            Some(_) => {}
            None => {
                self.seen.insert(node, (hb, now));
            }
        }
    }

    /// Whether `incarnation` of `node` has shown no progress for `timeout`. A node first
    /// seen just now gets a full timeout; a heartbeat from a newer incarnation means
    /// this one is gone.
    pub fn is_dead(&self, node: i32, incarnation: u64, timeout: Duration, now: Instant) -> bool {
        match self.seen.get(&node) {
            None => false,
            Some((Some(hb), _)) if hb.incarnation > incarnation => true,
            Some((_, since)) => now.duration_since(*since) >= timeout,
        }
    }

    pub fn forget(&mut self, node: i32) {
        self.seen.remove(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(6);

    fn hb(incarnation: u64, counter: u64) -> Option<Heartbeat> {
        Some(Heartbeat {
            incarnation,
            counter,
        })
    }

    #[test]
    fn a_moving_counter_keeps_a_node_alive() {
        let t0 = Instant::now();
        let mut l = LivenessTracker::default();
        l.observe(1, hb(1, 1), t0);
        l.observe(1, hb(1, 2), t0 + Duration::from_secs(5));
        assert!(!l.is_dead(1, 1, TIMEOUT, t0 + Duration::from_secs(10)));
        assert!(l.is_dead(1, 1, TIMEOUT, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn a_node_first_seen_gets_a_full_timeout_even_without_a_heartbeat() {
        let t0 = Instant::now();
        let mut l = LivenessTracker::default();
        assert!(!l.is_dead(1, 1, TIMEOUT, t0));
        l.observe(1, None, t0);
        assert!(!l.is_dead(1, 1, TIMEOUT, t0 + Duration::from_secs(5)));
        assert!(l.is_dead(1, 1, TIMEOUT, t0 + TIMEOUT));
    }

    #[test]
    fn a_newer_incarnation_ends_the_older_at_once() {
        let t0 = Instant::now();
        let mut l = LivenessTracker::default();
        l.observe(1, hb(2, 1), t0);
        assert!(l.is_dead(1, 1, TIMEOUT, t0));
        assert!(!l.is_dead(1, 2, TIMEOUT, t0));
    }
}
