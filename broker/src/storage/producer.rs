//! Idempotent producer state of one partition: per producer id, the epoch and the last
//! few batches' sequence ranges, so retries are answered with their original offsets and
//! gaps are refused (Kafka keeps the same five).

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sluice_protocol::record_batch::BatchHeader;

use super::error::StorageError;

/// Batches remembered per producer: Kafka clients keep at most five in flight.
pub const BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub next_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerSnapshot {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: Vec<BatchMeta>,
    /// Broker time of the producer's last append (never the client's clock: event-time
    /// timestamps of replayed data must not expire state early), for expiry.
    #[serde(default)]
    pub last_timestamp: i64,
}

/// Producers idle this long are forgotten (Kafka's `producer.id.expiration.ms` default).
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Producer ids the broker derives for its own writes (dead-letter records) have this bit
/// set; InitProducerId never hands them out. Their batches carry the sequences of the
/// client records they came from, which skip the client's valid records, so any sequence
/// above the last is in order; a repeated batch is still a duplicate.
pub const INTERNAL_PRODUCER_BIT: i64 = 1 << 62;

pub fn is_internal(producer_id: i64) -> bool {
    producer_id >= 0 && producer_id & INTERNAL_PRODUCER_BIT != 0
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_timestamp: i64,
}

/// What the sequence check decided for an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// A retry of a batch already in the log at these offsets.
    Duplicate(BatchMeta),
}

#[derive(Debug, Clone, Default)]
pub struct ProducerTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerTable {
    pub fn from_snapshot(snapshot: &[ProducerSnapshot]) -> Self {
        let producers = snapshot
            .iter()
            .map(|s| {
                (
                    s.producer_id,
                    ProducerEntry {
                        epoch: s.epoch,
                        batches: s.batches.iter().copied().collect(),
                        last_timestamp: s.last_timestamp,
                    },
                )
            })
            .collect();
        ProducerTable { producers }
    }

    pub fn snapshot(&self) -> Vec<ProducerSnapshot> {
        let mut out: Vec<_> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerSnapshot {
                producer_id: *id,
                epoch: e.epoch,
                batches: e.batches.iter().copied().collect(),
                last_timestamp: e.last_timestamp,
            })
            .collect();
        out.sort_by_key(|s| s.producer_id);
        out
    }

    /// Checks an incoming batch (offsets not yet assigned) against the producer's state.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, StorageError> {
        self.check_from(h, h.base_sequence)
    }

    /// Like [`ProducerTable::check`], for a batch the broker rewrote from a client's
    /// batch that started at `client_base` (its invalid records went to a dead-letter
    /// topic): it must follow the producer's last batch as the client's did, and it ends
    /// where the client's did. A retry is rewritten the same way, so duplicates are still
    /// found by the rewritten batch's own range.
    pub fn check_from(
        &self,
        h: &BatchHeader,
        client_base: i32,
    ) -> Result<SequenceCheck, StorageError> {
        if h.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired with retention): accept.
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(StorageError::ProducerFenced {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        let last = entry.batches.back().map_or(-1, |b| b.last_seq);
        if h.producer_epoch > entry.epoch {
            // A bumped epoch restarts the sequence.
            return if client_base == 0 || is_internal(h.producer_id) {
                Ok(SequenceCheck::Append)
            } else {
                Err(StorageError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    got: client_base,
                    last: -1,
                })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let in_order = if is_internal(h.producer_id) {
            client_base > last
        } else {
            client_base == next_seq(last)
        };
        if entry.batches.is_empty() || in_order {
            Ok(SequenceCheck::Append)
        } else {
            Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                got: client_base,
                last,
            })
        }
    }

    /// Forgets producers whose newest record is older than `now_ms - PRODUCER_EXPIRATION_MS`
    /// (a returning one is accepted as new, like Kafka after expiry).
    pub fn expire(&mut self, now_ms: i64) {
        let horizon = now_ms.saturating_sub(PRODUCER_EXPIRATION_MS);
        self.producers.retain(|_, e| e.last_timestamp >= horizon);
    }

    /// Records a batch that now has its offsets (appended, or replayed in recovery).
    pub fn record(&mut self, h: &BatchHeader) {
        self.record_at(h, crate::clock::now_ms());
    }

    /// [`ProducerTable::record`] at a given broker time.
    pub fn record_at(&mut self, h: &BatchHeader, now_ms: i64) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        entry.last_timestamp = entry.last_timestamp.max(now_ms);
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            next_offset: h.next_offset(),
        });
        while entry.batches.len() > BATCHES_KEPT {
            entry.batches.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut t = ProducerTable::default();
        let a = header(7, 0, 0, 10, 0);
        assert_eq!(t.check(&a).unwrap(), SequenceCheck::Append);
        t.record(&a);
        let retry = header(7, 0, 0, 10, -1);
        assert!(matches!(
            t.check(&retry).unwrap(),
            SequenceCheck::Duplicate(BatchMeta {
                base_offset: 0,
                next_offset: 10,
                ..
            })
        ));
        let gap = header(7, 0, 15, 1, -1);
        assert!(matches!(
            t.check(&gap),
            Err(StorageError::OutOfOrderSequence {
                got: 15,
                last: 9,
                ..
            })
        ));
        let next = header(7, 0, 10, 5, 10);
        assert_eq!(t.check(&next).unwrap(), SequenceCheck::Append);
        t.record(&next);
        let bumped = header(7, 1, 0, 1, 15);
        assert_eq!(t.check(&bumped).unwrap(), SequenceCheck::Append);
        t.record(&bumped);
        let zombie = header(7, 0, 15, 1, -1);
        assert!(matches!(
            t.check(&zombie),
            Err(StorageError::ProducerFenced { current: 1, .. })
        ));
        let restored = ProducerTable::from_snapshot(&t.snapshot());
        assert_eq!(restored.snapshot(), t.snapshot());
    }

    #[test]
    fn internal_producers_may_skip_sequences_but_not_repeat_them() {
        let pid = INTERNAL_PRODUCER_BIT | 7;
        let mut t = ProducerTable::default();
        let first = header(pid, 0, 2, 2, 0);
        t.record(&first);
        assert_eq!(
            t.check(&header(pid, 0, 2, 2, 0)).unwrap(),
            SequenceCheck::Duplicate(BatchMeta {
                first_seq: 2,
                last_seq: 3,
                base_offset: 0,
                next_offset: 2
            })
        );
        assert_eq!(
            t.check(&header(pid, 0, 9, 1, 0)).unwrap(),
            SequenceCheck::Append
        );
        assert!(t.check(&header(pid, 0, 3, 1, 0)).is_err());
        assert_eq!(
            t.check(&header(pid, 1, 5, 1, 0)).unwrap(),
            SequenceCheck::Append,
            "a bumped epoch starts anywhere"
        );
        // A client's producer id still needs the next sequence exactly.
        t.record(&header(7, 0, 0, 1, 2));
        assert!(t.check(&header(7, 0, 5, 1, 3)).is_err());
    }

    #[test]
    fn idle_producers_expire() {
        let mut t = ProducerTable::default();
        t.record_at(&header(1, 0, 0, 1, 0), 1_000);
        t.record_at(&header(2, 0, 0, 1, 1), PRODUCER_EXPIRATION_MS + 5_000);
        t.expire(PRODUCER_EXPIRATION_MS + 2_000);
        let left: Vec<i64> = t.snapshot().iter().map(|s| s.producer_id).collect();
        assert_eq!(left, vec![2]);
    }

    #[test]
    fn keeps_only_the_last_five_batches() {
        let mut t = ProducerTable::default();
        for i in 0..8 {
            t.record(&header(1, 0, i, 1, i as i64));
        }
        assert_eq!(t.snapshot()[0].batches.len(), BATCHES_KEPT);
        assert_eq!(t.snapshot()[0].batches[0].first_seq, 3);
    }
}
