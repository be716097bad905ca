//! Committed offsets, kept in the internal topic `__consumer_offsets` of our own storage
//! engine so they share its durability and move with their partition. A group maps to
//! one partition of that topic; each commit is one record batch there, acknowledged only
//! once durable. Records are JSON: key `{"g","t","p"}`, value `{"o","e","m"}` or null (a
//! deletion). When a partition's log grows past a threshold, the live offsets of its
//! groups are rewritten at its end and the log start moves up to them: compaction by
//! snapshot, so replay on start stays short.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use serde::{Deserialize, Serialize};
use sluice_protocol::record_batch::{self, NewRecord};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    #[serde(rename = "o")]
    pub offset: i64,
    #[serde(rename = "e")]
    pub leader_epoch: i32,
    #[serde(rename = "m", default)]
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OffsetKey {
    #[serde(rename = "g")]
    pub group: String,
    #[serde(rename = "t")]
    pub topic: String,
    #[serde(rename = "p")]
    pub partition: i32,
}

/// One change to a group's offsets.
pub type OffsetChange = (OffsetKey, Option<CommittedOffset>);

/// Which `__consumer_offsets` partition holds a group (Kafka's rule: hash mod count).
pub fn partition_for(group: &str, partitions: usize) -> i32 {
    // Java's String.hashCode, so the mapping is stable and familiar.
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    ((h & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

/// Encodes changes as one record batch (idempotence off, create time `now_ms`).
pub fn encode(changes: &[OffsetChange], now_ms: i64) -> Bytes {
    let records = changes.iter().map(|(key, value)| NewRecord {
        key: Some(Bytes::from(
            serde_json::to_vec(key).expect("key serializes"),
        )),
        value: value
            .as_ref()
            .map(|v| Bytes::from(serde_json::to_vec(v).expect("value serializes"))),
        timestamp: now_ms,
    });
    record_batch::encode_batch(records, None, Compression::None)
}

/// Decodes the changes in concatenated batches read back from the log.
pub fn decode(batches: &Bytes) -> Vec<OffsetChange> {
    let mut out = Vec::new();
    for (_, batch) in record_batch::split_bytes(batches) {
        let Ok(set) = RecordBatchDecoder::decode(&mut batch.clone()) else {
            continue;
        };
        for r in set.records {
            let Some(key) = r
                .key
                .as_ref()
                .and_then(|k| serde_json::from_slice::<OffsetKey>(k).ok())
            else {
                continue;
            };
            let value = r
                .value
                .as_ref()
                .and_then(|v| serde_json::from_slice(v).ok());
            out.push((key, value));
        }
    }
    out
}

/// One key's latest change and where in the offsets log it was written.
#[derive(Debug, Clone)]
struct Entry {
    /// `None`: deleted (kept so an older, slower write cannot bring it back).
    value: Option<CommittedOffset>,
    position: i64,
}

/// The committed offsets of every group, in memory. Changes carry their position in the
/// offsets log and the newest position wins, so commits may become durable and be
/// applied in any order.
#[derive(Debug, Default)]
pub struct OffsetTable {
    groups: HashMap<String, BTreeMap<(String, i32), Entry>>,
}

impl OffsetTable {
    /// Applies changes written at log `position`; keys already changed at a later
    /// position keep their value.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = OffsetChange>, position: i64) {
        for (key, value) in changes {
            let group = self.groups.entry(key.group).or_default();
            let slot = (key.topic, key.partition);
            if group.get(&slot).is_some_and(|e| e.position > position) {
                continue;
            }
            group.insert(slot, Entry { value, position });
        }
    }

    fn live(&self, group: &str) -> impl Iterator<Item = (&(String, i32), &CommittedOffset)> {
        self.groups
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups
            .get(group)?
            .get(&(topic.to_string(), partition))?
            .value
            .as_ref()
    }

    pub fn group(&self, group: &str) -> impl Iterator<Item = (&(String, i32), &CommittedOffset)> {
        self.live(group)
    }

    /// Groups with at least one committed offset.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups
            .iter()
            .filter(|(_, offsets)| offsets.values().any(|e| e.value.is_some()))
            .map(|(g, _)| g)
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.live(group).next().is_some()
    }

    /// Takes over every group of `other` (loaded from a partition this table no longer
    /// holds anything of).
    pub fn absorb(&mut self, other: OffsetTable) {
        self.groups.extend(other.groups);
    }

    /// Forgets the groups held by one offsets partition (it moved to another broker).
    pub fn drop_partition(&mut self, partition: i32, partitions: usize) {
        self.groups
            .retain(|g, _| partition_for(g, partitions) != partition);
    }

    /// Every live offset of the groups held by one offsets partition, as changes; the
    /// partition's deletion markers are dropped (call with no write in flight).
    pub fn compact(&mut self, partition: i32, partitions: usize) -> Vec<OffsetChange> {
        let mut out = Vec::new();
        for (g, offsets) in self
            .groups
            .iter_mut()
            .filter(|(g, _)| partition_for(g, partitions) == partition)
        {
            offsets.retain(|_, e| e.value.is_some());
            out.extend(offsets.iter().map(|((t, p), e)| {
                (
                    OffsetKey {
                        group: g.clone(),
                        topic: t.clone(),
                        partition: *p,
                    },
                    e.value.clone(),
                )
            }));
        }
        self.groups.retain(|_, offsets| !offsets.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: &str, t: &str, p: i32) -> OffsetKey {
        OffsetKey {
            group: g.into(),
            topic: t.into(),
            partition: p,
        }
    }

    #[test]
    fn commits_round_trip_through_record_batches() {
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
        };
        let changes = vec![
            (key("g", "t", 0), Some(v.clone())),
            (key("g", "t", 1), None),
        ];
        let batch = encode(&changes, 1000);
        record_batch::validate_produce_records(&batch).expect("a valid single batch");
        assert_eq!(decode(&batch), changes);
        let mut table = OffsetTable::default();
        table.apply(decode(&batch), 10);
        assert_eq!(table.get("g", "t", 0), Some(&v));
        table.apply([(key("g", "t", 0), None)], 12);
        assert!(
            !table.has_group("g"),
            "a group with no offsets left is gone"
        );
        table.apply([(key("g", "t", 0), Some(v.clone()))], 11);
        assert!(
            !table.has_group("g"),
            "an older write does not undo a newer deletion"
        );
        assert!(table.compact(0, 1).is_empty());
    }

    #[test]
    fn group_partition_matches_kafka() {
        // Java: Math.abs("my-group".hashCode()) % 50
        let h = "my-group"
            .chars()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
        assert_eq!(partition_for("my-group", 50), ((h & 0x7fff_ffff) % 50));
    }
}
