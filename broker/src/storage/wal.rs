//! WAL object format. One object per broker flush, holding batches of many partitions:
//!
//! ```text
//! magic "SLWAL001" | kind u8 (0 data, 1 fence) | node i32 | incarnation u64 | seq u64
//! entries: topic id [16] | partition i32 | length u32 | record batch
//! trailer: entry count u32 | crc32c of everything before u32
//! ```
//! Keys are `wal/<node>/<incarnation>/<seq>` with zero-padded numbers, written with
//! put-if-absent: a fence object at a stream's next sequence stops its writer for good.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{Result, StorageError};
use super::object::{parse_seq, seq_key, Store};

const MAGIC: &[u8; 8] = b"SLWAL001";
const HEADER_LEN: usize = 8 + 1 + 4 + 8 + 8;
const TRAILER_LEN: usize = 8;
const ENTRY_OVERHEAD: usize = 16 + 4 + 4;
const KIND_DATA: u8 = 0;
const KIND_FENCE: u8 = 1;

/// Where a WAL object sits: its writer's stream and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WalPosition {
    pub node: i32,
    pub incarnation: u64,
    pub seq: u64,
}

impl WalPosition {
    pub fn path(&self) -> Path {
        stream_prefix(self.node, self.incarnation).join(seq_key(self.seq))
    }
}

pub fn node_prefix(node: i32) -> Path {
    Path::from(format!("wal/{node}"))
}

pub fn stream_prefix(node: i32, incarnation: u64) -> Path {
    node_prefix(node).join(seq_key(incarnation))
}

/// The sequences present in a WAL stream, ascending.
pub async fn list_stream(store: &Store, node: i32, incarnation: u64) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = store
        .list(&stream_prefix(node, incarnation))
        .await?
        .iter()
        .filter_map(parse_seq)
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Parses `wal/<node>/<incarnation>/<seq>`.
pub fn parse_path(path: &Path) -> Option<WalPosition> {
    let parts: Vec<_> = path.parts().collect();
    let n = parts.len();
    if n < 4 || parts[n - 4].as_ref() != "wal" {
        return None;
    }
    Some(WalPosition {
        node: parts[n - 3].as_ref().parse().ok()?,
        incarnation: parts[n - 2].as_ref().parse().ok()?,
        seq: parse_seq(path)?,
    })
}

/// One partition's batch inside a WAL object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    pub topic_id: Uuid,
    pub partition: i32,
    pub batch: Bytes,
}

/// A decoded WAL object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalObject {
    Data(Vec<WalEntry>),
    Fence,
}

/// Accumulates entries for one WAL object, encoding as it goes so the flush is one copy.
#[derive(Debug)]
pub struct WalObjectBuilder {
    buf: BytesMut,
    count: u32,
}

impl WalObjectBuilder {
    pub fn new(pos: WalPosition) -> Self {
        Self::with_kind(pos, KIND_DATA)
    }

    fn with_kind(pos: WalPosition, kind: u8) -> Self {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.put_slice(MAGIC);
        buf.put_u8(kind);
        buf.put_i32(pos.node);
        buf.put_u64(pos.incarnation);
        buf.put_u64(pos.seq);
        WalObjectBuilder { buf, count: 0 }
    }

    pub fn push(&mut self, topic_id: Uuid, partition: i32, batch: &[u8]) {
        self.buf.put_slice(topic_id.as_bytes());
        self.buf.put_i32(partition);
        self.buf.put_u32(batch.len() as u32);
        self.buf.put_slice(batch);
        self.count += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of payload so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(mut self) -> Bytes {
        self.buf.put_u32(self.count);
        let crc = crc32c::crc32c(&self.buf);
        self.buf.put_u32(crc);
        self.buf.freeze()
    }
}

/// The object that fences the stream `pos` belongs to.
pub fn fence_object(pos: WalPosition) -> Bytes {
    WalObjectBuilder::with_kind(pos, KIND_FENCE).finish()
}

/// Decodes and checks a WAL object read from `path`.
pub fn decode(path: &Path, data: &Bytes) -> Result<WalObject> {
    let corrupt = |r: &str| StorageError::corrupt(path, r);
    if data.len() < HEADER_LEN + TRAILER_LEN || &data[..8] != MAGIC {
        return Err(corrupt("not a WAL object"));
    }
    let body_len = data.len() - 4;
    let crc = (&data[body_len..]).get_u32();
    if crc32c::crc32c(&data[..body_len]) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let kind = data[8];
    let count = (&data[body_len - 4..body_len]).get_u32();
    if kind == KIND_FENCE {
        return Ok(WalObject::Fence);
    }
    if kind != KIND_DATA {
        return Err(corrupt("unknown WAL object kind"));
    }
    // The count is untrusted: never reserve more entries than the bytes could hold.
    let mut entries = Vec::with_capacity((count as usize).min(data.len() / ENTRY_OVERHEAD));
    let mut pos = HEADER_LEN;
    let end = body_len - 4;
    for _ in 0..count {
        if pos + ENTRY_OVERHEAD > end {
            return Err(corrupt("entry header past end"));
        }
        let mut b = &data[pos..pos + ENTRY_OVERHEAD];
        let mut id = [0u8; 16];
        b.copy_to_slice(&mut id);
        let partition = b.get_i32();
        let len = b.get_u32() as usize;
        pos += ENTRY_OVERHEAD;
        if pos + len > end {
            return Err(corrupt("entry past end"));
        }
        entries.push(WalEntry {
            topic_id: Uuid::from_bytes(id),
            partition,
            batch: data.slice(pos..pos + len),
        });
        pos += len;
    }
    if pos != end {
        return Err(corrupt("trailing bytes after entries"));
    }
    Ok(WalObject::Data(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_entries_and_detects_damage() {
        let pos = WalPosition {
            node: 3,
            incarnation: 7,
            seq: 42,
        };
        let t = Uuid::new_v4();
        let mut b = WalObjectBuilder::new(pos);
        b.push(t, 0, b"first");
        b.push(t, 5, b"second");
        let data = b.finish();
        let path = pos.path();
        assert_eq!(
            path.as_ref(),
            "wal/3/00000000000000000007/00000000000000000042"
        );
        assert_eq!(parse_path(&path), Some(pos));
        let WalObject::Data(entries) = decode(&path, &data).unwrap() else {
            panic!("expected data")
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].partition, 5);
        assert_eq!(&entries[1].batch[..], b"second");

        let mut bad = BytesMut::from(&data[..]);
        bad[40] ^= 1;
        assert!(decode(&path, &bad.freeze()).is_err());
        assert_eq!(decode(&path, &fence_object(pos)).unwrap(), WalObject::Fence);
    }
}
