//! WAL replay: reading back the records a previous leader acknowledged but did not
//! checkpoint. A manifest names the WAL stream and first sequence of its tail
//! ([`unreleased_tail`]); a take-over fences that stream, then reads its data objects in
//! sequence order and keeps the batches of the partitions it claims
//! (`docs/storage-protocol.md` I5).

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use tokio::time::Instant;
use tracing::info;
use uuid::Uuid;

use super::error::{Result, StorageError};
use super::fence::fence_stream;
use super::manifest::Manifest;
use super::object::{Store, IO_CONCURRENCY};
use super::partition::TailBatch;
use super::wal::{self, WalEntry, WalObject, WalPosition};
use sluice_protocol::record_batch::BatchHeader;

/// A partition: (topic id, partition).
type PartitionKey = (Uuid, i32);

/// The WAL stream (node, incarnation) and first sequence holding a manifest's
/// un-checkpointed records, unless its leader released it. A manifest written before
/// claims recorded `wal_start` may have its tail anywhere in the stream.
pub fn unreleased_tail(m: &Manifest) -> Option<(i32, u64, u64)> {
    if m.released || m.leader_node < 0 || m.leader_incarnation == 0 {
        return None;
    }
    let from = m.wal_start.map_or(1, |w| w.seq);
    Some((m.leader_node, m.leader_incarnation, from))
}

/// Reads the stream `(node, inc)` for the partitions in `wanted` (each with the first
/// sequence that may hold its tail) and returns their batches in stream order. Fences
/// the stream first unless it is `me`'s own live stream.
pub async fn read_stream_tail(
    store: &Store,
    me: (i32, u64),
    (node, inc): (i32, u64),
    wanted: &HashMap<PartitionKey, u64>,
) -> Result<BTreeMap<PartitionKey, Vec<TailBatch>>> {
    let started = Instant::now();
    let from = wanted.values().copied().min().unwrap_or(1);
    let listed = wal::list_stream(store, node, inc).await?;
    let seqs = if (node, inc) == me {
        // Our own live stream: nothing to fence, every object is readable.
        listed
    } else {
        fence_stream(store, node, inc, listed).await?.0
    };
    let seqs: Vec<u64> = seqs.into_iter().filter(|s| *s >= from).collect();
    let objects = seqs.len();
    let mut out: BTreeMap<PartitionKey, Vec<TailBatch>> = BTreeMap::new();
    let mut fetched = futures::stream::iter(seqs)
        .map(|seq| async move {
            let pos = WalPosition {
                node,
                incarnation: inc,
                seq,
            };
            let data = store
                .get(&pos.path())
                .await?
                .ok_or_else(|| StorageError::corrupt(pos.path(), "listed WAL object vanished"))?;
            Ok::<_, StorageError>((pos, data))
        })
        .buffered(IO_CONCURRENCY);
    while let Some(r) = fetched.next().await {
        let (pos, data) = r?;
        if let WalObject::Data(entries) = wal::decode(&pos.path(), &data)? {
            keep_wanted(pos, entries, wanted, &mut out)?;
        }
    }
    info!(
        node,
        incarnation = inc,
        wal_objects = objects,
        partitions = wanted.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read back a WAL stream"
    );
    Ok(out)
}

/// Adds to `out` the entries of the data object at `pos` that `wanted` asks for: those
/// of a wanted partition, in an object at or past that partition's first sequence.
fn keep_wanted(
    pos: WalPosition,
    entries: Vec<WalEntry>,
    wanted: &HashMap<PartitionKey, u64>,
    out: &mut BTreeMap<PartitionKey, Vec<TailBatch>>,
) -> Result<()> {
    for e in entries {
        let key = (e.topic_id, e.partition);
        if wanted.get(&key).is_some_and(|from| pos.seq >= *from) {
            let header = BatchHeader::parse(&e.batch)
                .map_err(|err| StorageError::corrupt(pos.path(), err))?;
            out.entry(key).or_default().push(TailBatch {
                header,
                bytes: e.batch,
                wal: pos,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use bytes::Bytes;
    use kafka_protocol::records::Compression;
    use sluice_protocol::record_batch::{assign, encode_batch, NewRecord};
    use std::sync::Arc;

    fn claimed(node: i32, incarnation: u64) -> Manifest {
        let mut m = Manifest::empty(Uuid::nil(), 0);
        m.leader_node = node;
        m.leader_incarnation = incarnation;
        m
    }

    #[test]
    fn an_unreleased_tail_starts_at_wal_start_or_at_the_streams_beginning() {
        let mut m = claimed(2, 5);
        assert_eq!(
            unreleased_tail(&m),
            Some((2, 5, 1)),
            "no wal_start: all of it"
        );
        m.wal_start = Some(WalPosition {
            node: 2,
            incarnation: 5,
            seq: 9,
        });
        assert_eq!(unreleased_tail(&m), Some((2, 5, 9)));
    }

    #[test]
    fn released_or_unclaimed_manifests_have_no_tail_to_read() {
        let mut m = claimed(2, 5);
        m.released = true;
        assert_eq!(unreleased_tail(&m), None);
        assert_eq!(unreleased_tail(&Manifest::empty(Uuid::nil(), 0)), None);
        assert_eq!(unreleased_tail(&claimed(2, 0)), None, "no incarnation");
    }

    /// One record at `offset`.
    fn batch(offset: i64) -> Bytes {
        let r = NewRecord {
            value: Some(Bytes::from_static(b"v")),
            ..Default::default()
        };
        assign(&encode_batch([r], None, Compression::None), offset, 1)
    }

    fn at(seq: u64) -> WalPosition {
        WalPosition {
            node: 1,
            incarnation: 1,
            seq,
        }
    }

    #[test]
    fn only_wanted_partitions_from_their_first_sequence_are_kept() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let wanted = HashMap::from([((a, 0), 3), ((b, 1), 1)]);
        let entry = |topic_id, partition, offset| WalEntry {
            topic_id,
            partition,
            batch: batch(offset),
        };
        let mut out = BTreeMap::new();
        for (seq, entries) in [
            (2, vec![entry(a, 0, 5), entry(b, 1, 7), entry(a, 1, 0)]),
            (3, vec![entry(a, 0, 6), entry(b, 1, 8)]),
        ] {
            keep_wanted(at(seq), entries, &wanted, &mut out).unwrap();
        }
        let offsets = |k| -> Vec<(u64, i64)> {
            out.get(&k)
                .map(|v: &Vec<TailBatch>| {
                    v.iter()
                        .map(|t| (t.wal.seq, t.header.base_offset))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(offsets((a, 0)), vec![(3, 6)], "a-0 wants sequence 3 on");
        assert_eq!(offsets((b, 1)), vec![(2, 7), (3, 8)]);
        assert_eq!(offsets((a, 1)), vec![], "not wanted");
    }

    #[test]
    fn an_unparsable_batch_is_corruption() {
        let wanted = HashMap::from([((Uuid::nil(), 0), 1)]);
        let bad = WalEntry {
            topic_id: Uuid::nil(),
            partition: 0,
            batch: Bytes::from_static(b"short"),
        };
        let mut out = BTreeMap::new();
        assert!(matches!(
            keep_wanted(at(1), vec![bad], &wanted, &mut out),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn another_streams_tail_is_read_after_fencing_it() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let t = Uuid::from_u128(7);
        for (seq, offset) in [(1, 0), (2, 1)] {
            let mut w = wal::WalObjectBuilder::new(at(seq));
            w.push(t, 0, &batch(offset));
            store.put(&at(seq).path(), w.finish()).await.unwrap();
        }
        let wanted = HashMap::from([((t, 0), 2)]);
        let got = read_stream_tail(&store, (9, 1), (1, 1), &wanted)
            .await
            .unwrap();
        let offsets: Vec<i64> = got[&(t, 0)].iter().map(|b| b.header.base_offset).collect();
        assert_eq!(offsets, vec![1], "from sequence 2 on");
        assert_eq!(
            wal::list_stream(&store, 1, 1).await.unwrap(),
            vec![1, 2, 3],
            "fenced"
        );
        // Our own stream is read, never fenced.
        read_stream_tail(&store, (1, 2), (1, 2), &wanted)
            .await
            .unwrap();
        assert!(wal::list_stream(&store, 1, 2).await.unwrap().is_empty());
    }
}
