//! Collection of dead WAL streams: the data objects of incarnations that no longer run
//! and whose records no manifest needs any more (every partition they led was released
//! or taken over, which moved the tail into a segment). The controller runs it. Fences
//! are never deleted — a zombie of that incarnation may wake up — and neither is a
//! stream's highest object, which marks where the stream ends.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use tracing::info;
use uuid::Uuid;

use super::error::Result;
use super::{manifest, wal, Store};

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
    let listed = store.list(&object_store::path::Path::from("wal")).await?;
    let dead = dead_streams(listed.iter().filter_map(wal::parse_path), running);
    if dead.values().all(|s| deletable(s).is_empty()) {
        return Ok(0);
    }
    // Streams some manifest still reads its tail from.
    let manifests: Vec<Result<(u64, manifest::Manifest)>> =
        futures::stream::iter(partitions.iter().copied())
            .map(|(id, p)| manifest::read_latest(store, id, p))
            .buffered(16)
            .collect()
            .await;
    let mut needed: BTreeSet<Stream> = BTreeSet::new();
    for m in manifests {
        let (_, m) = m?;
        if let Some((node, inc, _)) = super::engine::unreleased_tail(&m) {
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
