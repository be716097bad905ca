//! Fencing: how a new leader stops the previous one for good. A fence object at the
//! next sequence of the previous leader's WAL stream makes its next WAL write fail, so
//! it never acknowledges again (`docs/storage-protocol.md` I3, I8); a claim acting on a
//! stale assignment is refused before it fences anything (I9).

use object_store::path::Path;
use tracing::warn;

use super::error::Result;
use super::manifest::Manifest;
use super::object::{Created, Store};
use super::wal::{self, WalObject, WalPosition};

/// Why a claim at `epoch` by `me` (node, incarnation) must not take the partition whose
/// manifest is `m`: it was claimed at a newer epoch, or at this epoch by another
/// incarnation, so the assignment this broker acts on is stale (its metadata is
/// behind). Claiming would fence the newer leader and move the epoch back (found by
/// the simulation, seed 10).
pub fn stale_claim(epoch: i32, m: &Manifest, me: (i32, u64)) -> Option<String> {
    let claimed = m.leader_node >= 0 && m.leader_incarnation != 0;
    let other = (m.leader_node, m.leader_incarnation) != me;
    if m.leader_epoch > epoch || (claimed && other && m.leader_epoch == epoch) {
        return Some(format!(
            "assignment at epoch {} is stale: node {} incarnation {} claimed epoch {}",
            epoch, m.leader_node, m.leader_incarnation, m.leader_epoch
        ));
    }
    None
}

/// Seals a stream: writes a fence object just past its highest object, re-listing if a
/// zombie writer got there first, unless the highest object already is a fence (an
/// earlier recovery sealed it). `listed` is the stream's listing, ascending. Returns
/// the data sequences below the fence and the fence's path, which must outlive the
/// zombie and so is never deleted.
pub async fn fence_stream(
    store: &Store,
    node: i32,
    incarnation: u64,
    listed: Vec<u64>,
) -> Result<(Vec<u64>, Path)> {
    let mut seqs = listed;
    loop {
        let at = |seq| WalPosition {
            node,
            incarnation,
            seq,
        };
        if let Some(&last) = seqs.last() {
            let path = at(last).path();
            if let Some(data) = store.get(&path).await? {
                if wal::decode(&path, &data)? == WalObject::Fence {
                    seqs.pop();
                    return Ok((seqs, path));
                }
            }
        }
        let fence = at(seqs.last().map_or(1, |s| s + 1));
        if store
            .put_if_absent(&fence.path(), wal::fence_object(fence))
            .await?
            == Created::Yes
        {
            return Ok((seqs, fence.path()));
        }
        warn!(stream = %wal::stream_prefix(node, incarnation), "fence lost a race with a writer; re-listing");
        seqs = wal::list_stream(store, node, incarnation).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;
    use uuid::Uuid;

    /// A manifest claimed by `node`/`incarnation` at `epoch`.
    fn claimed(node: i32, incarnation: u64, epoch: i32) -> Manifest {
        let mut m = Manifest::empty(Uuid::nil(), 0);
        m.leader_node = node;
        m.leader_incarnation = incarnation;
        m.leader_epoch = epoch;
        m
    }

    #[test]
    fn a_claim_at_an_older_epoch_is_stale() {
        let m = claimed(2, 5, 7);
        let why = stale_claim(6, &m, (1, 1)).expect("stale");
        assert!(why.contains("epoch 6 is stale"), "{why}");
        assert!(
            why.contains("node 2 incarnation 5 claimed epoch 7"),
            "{why}"
        );
        assert!(
            stale_claim(6, &m, (2, 5)).is_some(),
            "even by the same incarnation"
        );
    }

    #[test]
    fn the_same_epoch_is_stale_only_for_another_incarnation() {
        let m = claimed(2, 5, 7);
        assert!(
            stale_claim(7, &m, (2, 5)).is_none(),
            "a retried claim of mine"
        );
        assert!(stale_claim(7, &m, (2, 6)).is_some(), "a newer incarnation");
        assert!(stale_claim(7, &m, (1, 5)).is_some(), "another node");
    }

    #[test]
    fn newer_epochs_and_unclaimed_manifests_may_be_claimed() {
        assert!(stale_claim(8, &claimed(2, 5, 7), (1, 1)).is_none());
        let fresh = Manifest::empty(Uuid::nil(), 0);
        assert!(stale_claim(0, &fresh, (1, 1)).is_none());
        assert!(stale_claim(1, &fresh, (1, 1)).is_none());
    }

    fn store() -> Store {
        Store::from_url("memory://", Arc::new(Metrics::new())).unwrap()
    }

    fn pos(seq: u64) -> WalPosition {
        WalPosition {
            node: 3,
            incarnation: 2,
            seq,
        }
    }

    #[tokio::test]
    async fn a_fence_goes_past_the_highest_object_and_stays() {
        let store = store();
        for seq in [1, 2] {
            let object = wal::WalObjectBuilder::new(pos(seq)).finish();
            store.put(&pos(seq).path(), object).await.unwrap();
        }
        let (data, fence) = fence_stream(&store, 3, 2, vec![1, 2]).await.unwrap();
        assert_eq!(data, vec![1, 2]);
        assert_eq!(fence, pos(3).path());
        let object = store.get(&fence).await.unwrap().unwrap();
        assert_eq!(wal::decode(&fence, &object).unwrap(), WalObject::Fence);
        // A second recovery finds the fence and writes no other.
        let listed = wal::list_stream(&store, 3, 2).await.unwrap();
        let (data, again) = fence_stream(&store, 3, 2, listed).await.unwrap();
        assert_eq!((data, again), (vec![1, 2], fence));
        assert_eq!(wal::list_stream(&store, 3, 2).await.unwrap(), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_fence_that_loses_to_a_writer_relists_and_goes_past_it() {
        let store = store();
        // Listed as empty, but the zombie wrote sequences 1 and 2 meanwhile.
        for seq in [1, 2] {
            let object = wal::WalObjectBuilder::new(pos(seq)).finish();
            store.put(&pos(seq).path(), object).await.unwrap();
        }
        let (data, fence) = fence_stream(&store, 3, 2, Vec::new()).await.unwrap();
        assert_eq!(data, vec![1, 2]);
        assert_eq!(fence, pos(3).path());
    }

    #[tokio::test]
    async fn an_empty_stream_is_fenced_at_sequence_1() {
        let store = store();
        let (data, fence) = fence_stream(&store, 3, 2, Vec::new()).await.unwrap();
        assert!(data.is_empty());
        assert_eq!(fence, pos(1).path());
    }
}
