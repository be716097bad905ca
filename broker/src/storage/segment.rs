//! Segment objects: `log/<topic-id>/<partition>/<base>-<node>-<incarnation>-<seq>`
//! ([`segment_name`]), the partition's record batches verbatim (as a Kafka log file holds them) followed by a sparse index.
//!
//! The index has one 24-byte entry per block of about [`INDEX_INTERVAL`] bytes:
//! `first offset i64 | byte position u64 | max timestamp of the block i64`. Its location is
//! recorded in the manifest's [`SegmentInfo`], so a reader needs no footer request.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sluice_protocol::record_batch::BatchHeader;
use uuid::Uuid;

pub const INDEX_INTERVAL: usize = 64 * 1024;
const INDEX_ENTRY_LEN: usize = 24;

/// A segment as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// The object's name under the partition prefix ([`segment_name`]). Every name is
    /// written once, so a fenced writer can only ever write objects nothing references.
    pub name: String,
    pub base_offset: i64,
    /// Offset just past the last record.
    pub end_offset: i64,
    pub data_len: u64,
    pub index_len: u64,
    pub max_timestamp: i64,
    /// Base offset of the first batch carrying `max_timestamp`.
    pub max_timestamp_batch: i64,
}

impl SegmentInfo {
    pub fn object_len(&self) -> u64 {
        self.data_len + self.index_len
    }
}

pub fn partition_prefix(topic_id: Uuid, partition: i32) -> Path {
    Path::from(format!("log/{topic_id}/{partition}"))
}

/// A segment's object key. Names carry the writing incarnation and its own sequence
/// number (see [`SegmentInfo::name`]), so no key is ever written twice.
pub fn segment_path(topic_id: Uuid, partition: i32, name: &str) -> Path {
    partition_prefix(topic_id, partition).join(name)
}

/// `<base>-<node>-<incarnation>-<seq>`: `<base>` is the base offset, zero-padded so names
/// sort by offset; `seq` numbers the segments one incarnation writes. A retried checkpoint from the same
/// base offset gets a new name: overwriting the old object in place would corrupt it for
/// every manifest that already lists it with its old length (older manifests list names
/// without `seq`; names are opaque to readers).
pub fn segment_name(base_offset: i64, node: i32, incarnation: u64, seq: u64) -> String {
    format!("{base_offset:020}-{node}-{incarnation}-{seq}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: i64,
    pub position: u64,
    pub max_timestamp: i64,
}

/// Builds one segment from consecutive batches (each already carrying its offsets).
pub fn encode<'a>(
    batches: impl IntoIterator<Item = (&'a BatchHeader, &'a Bytes)>,
) -> (Bytes, SegmentInfo) {
    let mut data = BytesMut::new();
    let mut index: Vec<IndexEntry> = Vec::new();
    let mut info = SegmentInfo {
        name: String::new(),
        base_offset: -1,
        end_offset: -1,
        data_len: 0,
        index_len: 0,
        max_timestamp: i64::MIN,
        max_timestamp_batch: -1,
    };
    for (h, batch) in batches {
        let pos = data.len() as u64;
        match index.last_mut() {
            Some(last) if (pos - last.position) < INDEX_INTERVAL as u64 => {
                last.max_timestamp = last.max_timestamp.max(h.max_timestamp)
            }
            _ => index.push(IndexEntry {
                offset: h.base_offset,
                position: pos,
                max_timestamp: h.max_timestamp,
            }),
        }
        if info.base_offset < 0 {
            info.base_offset = h.base_offset;
        }
        info.end_offset = h.next_offset();
        if h.max_timestamp > info.max_timestamp {
            info.max_timestamp = h.max_timestamp;
            info.max_timestamp_batch = h.base_offset;
        }
        data.put_slice(batch);
    }
    info.data_len = data.len() as u64;
    for e in &index {
        data.put_i64(e.offset);
        data.put_u64(e.position);
        data.put_i64(e.max_timestamp);
    }
    info.index_len = (index.len() * INDEX_ENTRY_LEN) as u64;
    (data.freeze(), info)
}

pub fn decode_index(mut buf: &[u8]) -> Vec<IndexEntry> {
    let mut out = Vec::with_capacity(buf.len() / INDEX_ENTRY_LEN);
    while buf.len() >= INDEX_ENTRY_LEN {
        out.push(IndexEntry {
            offset: buf.get_i64(),
            position: buf.get_u64(),
            max_timestamp: buf.get_i64(),
        });
    }
    out
}

/// Position of the block that holds `offset`.
pub fn position_for_offset(index: &[IndexEntry], offset: i64) -> u64 {
    let i = index.partition_point(|e| e.offset <= offset);
    index[..i].last().map_or(0, |e| e.position)
}

/// Position of the first block whose records may reach `timestamp`.
pub fn position_for_timestamp(index: &[IndexEntry], timestamp: i64) -> Option<u64> {
    index
        .iter()
        .find(|e| e.max_timestamp >= timestamp)
        .map(|e| e.position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;
    use sluice_protocol::record_batch::{assign, testing::make_batch, BatchHeader};

    #[test]
    fn index_finds_offsets_and_timestamps() {
        let mut batches = Vec::new();
        let mut next = 0i64;
        for i in 0..200 {
            let raw = make_batch(100, Compression::None, i * 1000);
            let b = assign(&raw, next, 0);
            let h = BatchHeader::parse(&b).unwrap();
            next = h.next_offset();
            batches.push((h, b));
        }
        let (data, info) = encode(batches.iter().map(|(h, b)| (h, b)));
        assert_eq!(info.base_offset, 0);
        assert_eq!(info.end_offset, 20_000);
        assert_eq!(info.max_timestamp, 199 * 1000 + 99);
        assert_eq!(info.max_timestamp_batch, 199 * 100);
        let index = decode_index(&data[info.data_len as usize..]);
        assert!(
            index.len() > 1,
            "a multi-block segment gets several entries"
        );
        let pos = position_for_offset(&index, 15_050) as usize;
        let h = BatchHeader::parse(&data[pos..]).unwrap();
        assert!(h.base_offset <= 15_050);
        let pos = position_for_timestamp(&index, 150_000).unwrap() as usize;
        let h = BatchHeader::parse(&data[pos..]).unwrap();
        assert!(h.base_offset <= 15_000);
        assert!(position_for_timestamp(&index, 10_000_000).is_none());
    }
}
