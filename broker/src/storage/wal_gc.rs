//! Collection of WAL objects nothing needs any more. A running incarnation deletes its
//! own once every partition checkpointed past them ([`LogEngine::collect_wal_garbage`]).
//! The controller collects dead streams: the data objects of incarnations that no longer
//! run and whose records no manifest needs any more (every partition they led was
//! released or taken over, which moved the tail into a segment). Fences are never
//! deleted — a zombie of that incarnation may wake up — and neither is a stream's
//! highest object, which marks where the stream ends (`docs/storage-protocol.md` I3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use futures::StreamExt;
use object_store::path::Path;
use tracing::info;
use uuid::Uuid;

use super::engine::LogEngine;
use super::error::Result;
use super::object::IO_CONCURRENCY;
use super::wal_replay::unreleased_tail;
use super::{manifest, wal, Store};

impl LogEngine {
    /// Deletes this incarnation's WAL objects below the oldest one an open partition's
    /// tail still needs. (Streams of earlier incarnations are collected by the
    /// controller, which knows when no manifest needs them: [`collect`].)
    pub(super) async fn collect_wal_garbage(&self) -> Result<()> {
        if self.keep_wal.load(Ordering::SeqCst) {
            return Ok(());
        }
        let fronts: Vec<u64> = self
            .partitions()
            .iter()
            .filter_map(|p| p.state.lock().tail.front().map(|b| b.wal.seq))
            .collect();
        let needed = oldest_needed(self.wal.open_seq(), fronts);
        let keys: Vec<Path> = self
            .wal
            .take_written_below(needed)
            .into_iter()
            .map(|seq| self.wal.position(seq).path())
            .collect();
        self.delete_all(keys).await
    }
}

/// The oldest sequence of a running stream still needed: the open object's, or the
/// WAL object of the oldest batch any partition has not checkpointed yet.
pub fn oldest_needed(open_seq: u64, tail_fronts: impl IntoIterator<Item = u64>) -> u64 {
    tail_fronts.into_iter().fold(open_seq, u64::min)
}

/// A WAL stream: (node, incarnation).
pub type Stream = (i32, u64);

/// The sequences of each stream that is not `running`, from a listing of `wal/`.
pub fn dead_streams(
    listed: impl IntoIterator<Item = wal::WalPosition>,
    running: impl Fn(Stream) -> bool,
) -> BTreeMap<Stream, Vec<u64>> {
    let mut out: BTreeMap<Stream, Vec<u64>> = BTreeMap::new();
    for pos in listed {
        let stream = (pos.node, pos.incarnation);
        if !running(stream) {
            out.entry(stream).or_default().push(pos.seq);
        }
    }
    for seqs in out.values_mut() {
        seqs.sort_unstable();
    }
    out
}

/// What may be deleted of a dead stream nobody needs: everything below its highest
/// object (the fence, or the last object of a stream that was never fenced).
pub fn deletable(seqs: &[u64]) -> &[u64] {
    &seqs[..seqs.len().saturating_sub(1)]
}

/// Deletes the data objects of dead streams that no partition's manifest needs.
/// `running` tells the live incarnations; `partitions` lists every partition. Returns
/// how many objects were deleted.
pub async fn collect(
    store: &Store,
    running: impl Fn(Stream) -> bool,
    partitions: &[(Uuid, i32)],
) -> Result<usize> {
    let listed = store.list(&Path::from("wal")).await?;
    let dead = dead_streams(listed.iter().filter_map(wal::parse_path), running);
    if dead.values().all(|s| deletable(s).is_empty()) {
        return Ok(0);
    }
    // Streams some manifest still reads its tail from.
    let manifests: Vec<Result<(u64, manifest::Manifest)>> =
        futures::stream::iter(partitions.iter().copied())
            .map(|(id, p)| manifest::read_latest(store, id, p))
            .buffered(IO_CONCURRENCY)
            .collect()
            .await;
    let mut needed: BTreeSet<Stream> = BTreeSet::new();
    for m in manifests {
        let (_, m) = m?;
        if let Some((node, inc, _)) = unreleased_tail(&m) {
            needed.insert((node, inc));
        }
    }
    let mut deleted = 0;
    for (stream, seqs) in &dead {
        if needed.contains(stream) {
            continue;
        }
        let doomed = deletable(seqs);
        if doomed.is_empty() {
            continue;
        }
        for seq in doomed {
            let pos = wal::WalPosition {
                node: stream.0,
                incarnation: stream.1,
                seq: *seq,
            };
            store.delete(&pos.path()).await?;
        }
        deleted += doomed.len();
        info!(
            node = stream.0,
            incarnation = stream.1,
            objects = doomed.len(),
            "collected a dead WAL stream"
        );
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::storage::manifest::{manifest_prefix, Manifest};
    use crate::storage::versioned::VersionedObject;
    use bytes::Bytes;
    use std::sync::Arc;

    fn pos(node: i32, incarnation: u64, seq: u64) -> wal::WalPosition {
        wal::WalPosition {
            node,
            incarnation,
            seq,
        }
    }

    #[test]
    fn a_running_stream_needs_its_oldest_uncheckpointed_object() {
        assert_eq!(
            oldest_needed(9, []),
            9,
            "nothing in any tail: the open object"
        );
        assert_eq!(oldest_needed(9, [7, 4, 8]), 4);
        assert_eq!(oldest_needed(9, [9]), 9);
    }

    #[test]
    fn only_streams_that_do_not_run_are_dead_and_their_last_object_stays() {
        let listed = [pos(1, 1, 3), pos(1, 1, 1), pos(1, 2, 1), pos(2, 1, 7)];
        let dead = dead_streams(listed, |s| s == (1, 2));
        assert_eq!(
            dead,
            BTreeMap::from([((1, 1), vec![1, 3]), ((2, 1), vec![7])])
        );
        assert_eq!(deletable(&dead[&(1, 1)]), &[1]);
        assert!(deletable(&dead[&(2, 1)]).is_empty());
    }

    #[tokio::test]
    async fn a_stream_an_unreleased_manifest_reads_from_is_kept() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        for (inc, seq) in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)] {
            store
                .put(&pos(1, inc, seq).path(), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        // Incarnation 2 left a tail a manifest still needs; incarnation 1 none.
        let topic = Uuid::new_v4();
        let mut m = Manifest::empty(topic, 0);
        m.leader_node = 1;
        m.leader_incarnation = 2;
        m.wal_start = Some(pos(1, 2, 1));
        VersionedObject::new(store.clone(), manifest_prefix(topic, 0))
            .try_write(1, Bytes::from(serde_json::to_vec(&m).unwrap()))
            .await
            .unwrap();
        let deleted = collect(&store, |_| false, &[(topic, 0)]).await.unwrap();
        assert_eq!(deleted, 2, "incarnation 1's objects below its last");
        let left = store
            .list(&object_store::path::Path::from("wal"))
            .await
            .unwrap();
        assert_eq!(left.len(), 3);
        assert!(store.get(&pos(1, 1, 3).path()).await.unwrap().is_some());
        assert!(store.get(&pos(1, 2, 1).path()).await.unwrap().is_some());
    }
}
