//! The invariants of `docs/storage-protocol.md`, checked while a run goes on and once it
//! is over:
//!
//! - every acknowledged record is readable exactly once, at the offset it was
//!   acknowledged with, and no offset ever holds two different records (I1, I5, I7,
//!   I11);
//! - offsets are dense: every batch starts where the previous one ended (I5);
//! - leader epochs only grow: in every new version of cluster metadata and of every
//!   partition manifest, and along the log (I2, I9);
//! - committed consumer offsets never go back (I12);
//! - no two brokers (or incarnations) acknowledge for the same partition and epoch (I8);
//! - memory stays within its bounds (the produce buffer and the block cache: I6,
//!   checked by `host.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_broker::coordination::ClusterMetadata;
use sluice_broker::storage::manifest::Manifest;

use crate::trace::{Kind, Trace};

/// A record the simulated producers wrote, identified by its value.
pub type RecordId = String;

/// Who acknowledged a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acker {
    pub node: i32,
    pub incarnation: u64,
}

/// A metadata version's assignment: topic -> [(leader, incarnation, epoch)].
type Assignment = BTreeMap<String, Vec<(i32, u64, i32)>>;

#[derive(Default)]
struct State {
    /// (partition, offset) -> the record acknowledged there.
    acked: BTreeMap<(i32, i64), RecordId>,
    /// (partition, epoch) -> the broker incarnation that acknowledged in it.
    ackers: BTreeMap<(i32, i32), Acker>,
    /// (partition, offset) -> the record a consumer read there.
    read: BTreeMap<(i32, i64), RecordId>,
    /// (group, partition) -> highest offset whose commit was acknowledged.
    committed: BTreeMap<(String, i32), i64>,
    /// (group, partition) -> last committed offset OffsetFetch answered.
    fetched: BTreeMap<(String, i32), i64>,
    /// Latest metadata version seen and its assignment.
    metadata: Option<(u64, Assignment)>,
    /// manifest prefix -> (version, epoch, next offset).
    manifests: BTreeMap<String, (u64, i32, i64)>,
    violations: Vec<String>,
}

pub struct Checker {
    state: Mutex<State>,
    trace: Trace,
}

impl Checker {
    pub fn new(trace: Trace) -> Arc<Self> {
        Arc::new(Checker {
            state: Mutex::new(State::default()),
            trace,
        })
    }

    pub fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        self.trace.record(Kind::Violation, what.clone());
        self.state.lock().violations.push(what);
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().violations.clone()
    }

    /// An acknowledged produce: `records` from `base` on, by `by` leading at `epoch`.
    pub fn acked(&self, partition: i32, base: i64, records: &[RecordId], by: Acker, epoch: i32) {
        let mut bad = Vec::new();
        {
            let mut s = self.state.lock();
            match s.ackers.get(&(partition, epoch)) {
                Some(a) if *a != by => bad.push(format!(
                    "partition {partition} epoch {epoch}: acknowledged by node {} incarnation {} and by node {} incarnation {}",
                    a.node, a.incarnation, by.node, by.incarnation
                )),
                Some(_) => {}
                None => {
                    s.ackers.insert((partition, epoch), by);
                }
            }
            for (i, r) in records.iter().enumerate() {
                let offset = base + i as i64;
                if let Some(prev) = s.acked.get(&(partition, offset)) {
                    if prev != r {
                        bad.push(format!(
                            "partition {partition} offset {offset}: acknowledged for {prev} and for {r}"
                        ));
                    }
                }
                if let Some(seen) = s.read.get(&(partition, offset)) {
                    if seen != r {
                        bad.push(format!(
                            "partition {partition} offset {offset}: acknowledged for {r} but a consumer read {seen} there"
                        ));
                    }
                }
                s.acked.insert((partition, offset), r.clone());
            }
        }
        for b in bad {
            self.violation(b);
        }
    }

    /// A consumer read `record` at `offset`.
    pub fn read(&self, partition: i32, offset: i64, record: &str) {
        let bad = {
            let mut s = self.state.lock();
            let mut bad = None;
            if let Some(prev) = s.read.get(&(partition, offset)) {
                if prev != record {
                    bad = Some(format!(
                        "partition {partition} offset {offset}: read {prev} once and {record} later"
                    ));
                }
            }
            if let Some(a) = s.acked.get(&(partition, offset)) {
                if a != record {
                    bad = Some(format!(
                        "partition {partition} offset {offset}: {a} was acknowledged there but {record} was read"
                    ));
                }
            }
            s.read.insert((partition, offset), record.to_string());
            bad
        };
        if let Some(b) = bad {
            self.violation(b);
        }
    }

    /// A commit of `offset` was acknowledged.
    pub fn committed(&self, group: &str, partition: i32, offset: i64) {
        let mut s = self.state.lock();
        let e = s
            .committed
            .entry((group.to_string(), partition))
            .or_insert(offset);
        *e = (*e).max(offset);
    }

    /// OffsetFetch answered `offset` (-1: none).
    pub fn fetched_commit(&self, group: &str, partition: i32, offset: i64) {
        let bad = {
            let mut s = self.state.lock();
            let key = (group.to_string(), partition);
            let mut bad = None;
            if let Some(c) = s.committed.get(&key) {
                if offset < *c {
                    bad = Some(format!(
                        "group {group} partition {partition}: committed offset went back from acknowledged {c} to {offset}"
                    ));
                }
            }
            if let Some(prev) = s.fetched.get(&key) {
                if offset < *prev {
                    bad = Some(format!(
                        "group {group} partition {partition}: committed offset went back from {prev} to {offset}"
                    ));
                }
            }
            s.fetched.insert(key, offset);
            bad
        };
        if let Some(b) = bad {
            self.violation(b);
        }
    }

    /// The bucket created or overwrote `path` with `data`.
    pub fn on_written(&self, path: &str, data: &Bytes, created: bool) {
        if !created {
            return;
        }
        if let Some(v) = path.strip_prefix("meta/cluster/") {
            if let (Ok(version), Ok(m)) = (v.parse::<u64>(), serde_json::from_slice(data)) {
                self.metadata_version(version, &m);
            }
        } else if path.starts_with("log/") && path.contains("/manifest/") {
            let (prefix, v) = path.rsplit_once('/').expect("has a slash");
            if let (Ok(version), Ok(m)) = (v.parse::<u64>(), serde_json::from_slice(data)) {
                self.manifest_version(prefix, version, &m);
            }
        }
    }

    fn metadata_version(&self, version: u64, m: &ClusterMetadata) {
        let now: Assignment = m
            .topics
            .iter()
            .map(|(name, t)| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| (p.leader, p.leader_incarnation, p.leader_epoch))
                    .collect();
                (name.clone(), parts)
            })
            .collect();
        let mut bad = Vec::new();
        {
            let mut s = self.state.lock();
            if let Some((prev_v, _)) = &s.metadata {
                if version <= *prev_v {
                    // Put-if-absent re-created a deleted old version: no reader looks
                    // below the current one; what matters is that its writer takes
                    // it as lost (the final read shows otherwise).
                    return;
                }
            }
            if let Some((prev_v, prev)) = &s.metadata {
                if version != prev_v + 1 {
                    bad.push(format!(
                        "metadata version {version} written after version {prev_v}"
                    ));
                }
                for (name, parts) in &now {
                    let Some(old) = prev.get(name) else { continue };
                    for (i, (new, old)) in parts.iter().zip(old).enumerate() {
                        if new.2 < old.2 {
                            bad.push(format!(
                                "metadata v{version}: {name}-{i} leader epoch went back from {} to {}",
                                old.2, new.2
                            ));
                        } else if (new.0, new.1) != (old.0, old.1) && new.2 == old.2 {
                            bad.push(format!(
                                "metadata v{version}: {name}-{i} changed leader without a new epoch ({})",
                                new.2
                            ));
                        }
                    }
                }
            }
            s.metadata = Some((version, now));
        }
        for b in bad {
            self.violation(b);
        }
    }

    fn manifest_version(&self, prefix: &str, version: u64, m: &Manifest) {
        let bad = {
            let mut s = self.state.lock();
            let mut bad = None;
            if let Some((v, epoch, next)) = s.manifests.get(prefix) {
                if version <= *v {
                    // A deleted old version re-created below the current one (see
                    // metadata_version): invisible to readers.
                    return;
                }
                if version != v + 1 {
                    bad = Some(format!("{prefix}: version {version} written after {v}"));
                } else if m.leader_epoch < *epoch {
                    bad = Some(format!(
                        "{prefix} v{version}: leader epoch went back from {epoch} to {}",
                        m.leader_epoch
                    ));
                } else if m.next_offset < *next {
                    bad = Some(format!(
                        "{prefix} v{version}: checkpointed end went back from {next} to {}",
                        m.next_offset
                    ));
                }
            }
            s.manifests
                .insert(prefix.to_string(), (version, m.leader_epoch, m.next_offset));
            bad
        };
        if let Some(b) = bad {
            self.violation(b);
        }
    }

    /// Every acknowledged record of `partition`, by offset.
    pub fn acked_in(&self, partition: i32) -> BTreeMap<i64, RecordId> {
        self.state
            .lock()
            .acked
            .range((partition, i64::MIN)..=(partition, i64::MAX))
            .map(|((_, o), r)| (*o, r.clone()))
            .collect()
    }

    pub fn acked_count(&self) -> usize {
        self.state.lock().acked.len()
    }

    pub fn committed_in(&self, group: &str, partition: i32) -> Option<i64> {
        self.state
            .lock()
            .committed
            .get(&(group.to_string(), partition))
            .copied()
    }

    /// The final read of `partition`: batches as (base offset, epoch, record ids), in
    /// log order from offset 0 to the high watermark.
    pub fn final_log(
        &self,
        partition: i32,
        batches: &[(i64, i32, Vec<RecordId>)],
        high_watermark: i64,
    ) {
        let mut bad = Vec::new();
        let mut next = 0i64;
        let mut epoch = i32::MIN;
        let mut at: BTreeMap<i64, &str> = BTreeMap::new();
        let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
        for (base, e, records) in batches {
            if *base != next {
                bad.push(format!(
                    "partition {partition}: batch at {base} where {next} was expected (offsets not dense)"
                ));
            }
            if *e < epoch {
                bad.push(format!(
                    "partition {partition}: batch at {base} has epoch {e} after epoch {epoch}"
                ));
            }
            epoch = epoch.max(*e);
            for (i, r) in records.iter().enumerate() {
                let o = base + i as i64;
                if let Some(first) = seen.insert(r, o) {
                    bad.push(format!(
                        "partition {partition}: {r} is in the log twice, at {first} and {o}"
                    ));
                }
                at.insert(o, r);
            }
            next = base + records.len() as i64;
        }
        if next != high_watermark {
            bad.push(format!(
                "partition {partition}: read up to {next} but the high watermark is {high_watermark}"
            ));
        }
        for (o, r) in self.acked_in(partition) {
            match at.get(&o) {
                None => bad.push(format!(
                    "partition {partition}: acknowledged {r} at {o} is lost"
                )),
                Some(found) if *found != r => bad.push(format!(
                    "partition {partition}: acknowledged {r} at {o} but {found} is there"
                )),
                Some(_) => {}
            }
        }
        for b in bad {
            self.violation(b);
        }
    }
}
