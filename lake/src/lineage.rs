//! Offset lineage in snapshot summaries: what a commit added and where the next one
//! starts, so the table itself says which records it holds (`docs/lake.md`, "Lineage").
//!
//! Every snapshot Sluice commits carries, in its summary:
//! - `sluice.offsets.<partition>` = `<first>-<last>`: the offsets this commit covered
//!   (inclusive). Every record of the partition at those offsets is in this snapshot's
//!   added files, once; offsets without a row are control records.
//! - `sluice.next.<partition>` = the offset the next commit starts at, for every
//!   partition ever written (carried over from the parent): a writer resumes from the
//!   table's current snapshot alone, never from a side store.
//! - `sluice.topic`, `sluice.commit` (a fresh id per commit, to recognise our own commit
//!   after an unknown outcome), `sluice.writer`, and `sluice.generation` when known.

use std::collections::{BTreeMap, HashMap};

pub const OFFSETS_PREFIX: &str = "sluice.offsets.";
pub const NEXT_PREFIX: &str = "sluice.next.";
pub const TOPIC: &str = "sluice.topic";
pub const COMMIT: &str = "sluice.commit";
pub const WRITER: &str = "sluice.writer";
pub const GENERATION: &str = "sluice.generation";

/// Next offset to write, per partition.
pub type Positions = BTreeMap<i32, i64>;

/// The partitions' positions a snapshot summary records (none for a table no Sluice
/// commit has touched).
pub fn positions(summary: &HashMap<String, String>) -> Positions {
    summary
        .iter()
        .filter_map(|(k, v)| {
            let p = k.strip_prefix(NEXT_PREFIX)?.parse().ok()?;
            Some((p, v.parse().ok()?))
        })
        .collect()
}

/// What a snapshot that adds no offsets (a compaction) carries over from its parent's
/// summary: the positions, the topic and the generation, so the table's current
/// snapshot still says where every partition stands.
pub fn carried(summary: &HashMap<String, String>) -> HashMap<String, String> {
    summary
        .iter()
        .filter(|(k, _)| k.starts_with(NEXT_PREFIX) || *k == TOPIC || *k == GENERATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Ranges a snapshot summary says it added: partition -> (first, last) inclusive.
pub fn added_ranges(summary: &HashMap<String, String>) -> BTreeMap<i32, (i64, i64)> {
    ranges(summary, OFFSETS_PREFIX)
}

/// The ranges a summary records under `<prefix><partition>` = `<first>-<last>`
/// (`sluice.offsets.` added, `sluice.replaced.` replaced by a replay).
pub fn ranges(summary: &HashMap<String, String>, prefix: &str) -> BTreeMap<i32, (i64, i64)> {
    summary
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.parse().ok()?, parse_range(v)?)))
        .collect()
}

/// `<first>-<last>`, as summaries and replay records write a range.
pub fn parse_range(v: &str) -> Option<(i64, i64)> {
    let (a, b) = v.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// What one commit covers: per partition, from its start position to its end position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Where each partition started (None: the table had no position for it, the writer
    /// started at the log's start).
    pub start: BTreeMap<i32, Option<i64>>,
    /// The next offset after the last record covered.
    pub end: Positions,
}

impl Coverage {
    /// Whether anything moved: a commit with no progress is not made.
    pub fn is_empty(&self) -> bool {
        self.end
            .iter()
            .all(|(p, e)| self.start.get(p).copied().flatten() == Some(*e))
    }

    /// Whether the parent's positions for our partitions are where we started: the
    /// commit would add exactly the records we read, no others written meanwhile.
    pub fn fits(&self, parent: &Positions) -> bool {
        self.start
            .iter()
            .all(|(p, start)| parent.get(p).copied() == *start)
    }

    /// Whether `parent` already holds exactly our end positions (our own commit landed
    /// although its answer was lost, or another writer covered the same range).
    pub fn already_in(&self, parent: &Positions) -> bool {
        self.end.iter().all(|(p, e)| parent.get(p) == Some(e))
    }

    /// The summary properties of a commit on top of a parent with `parent` positions.
    pub fn summary(
        &self,
        topic: &str,
        parent: &Positions,
        commit_id: &str,
        writer: &str,
        generation: Option<i64>,
    ) -> HashMap<String, String> {
        let mut props = HashMap::new();
        let mut next = parent.clone();
        for (p, end) in &self.end {
            let from = self.start.get(p).copied().flatten().unwrap_or(0);
            if *end > from {
                props.insert(
                    format!("{OFFSETS_PREFIX}{p}"),
                    format!("{from}-{}", end - 1),
                );
            }
            next.insert(*p, *end);
        }
        for (p, n) in next {
            props.insert(format!("{NEXT_PREFIX}{p}"), n.to_string());
        }
        props.insert(TOPIC.into(), topic.into());
        props.insert(COMMIT.into(), commit_id.into());
        props.insert(WRITER.into(), writer.into());
        if let Some(g) = generation {
            props.insert(GENERATION.into(), g.to_string());
        }
        props
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips_and_carries_other_partitions() {
        let cov = Coverage {
            start: BTreeMap::from([(0, Some(10)), (2, None)]),
            end: BTreeMap::from([(0, 25), (2, 7)]),
        };
        let parent = BTreeMap::from([(0, 10), (1, 99)]);
        assert!(cov.fits(&parent));
        assert!(!cov.fits(&BTreeMap::from([(0, 11)])));
        let parent_fit = BTreeMap::from([(0, 10), (1, 99)]);
        let cov_fit = Coverage {
            start: BTreeMap::from([(0, Some(10))]),
            end: BTreeMap::from([(0, 25)]),
        };
        assert!(cov_fit.fits(&parent_fit));
        let s = cov.summary("t", &parent, "c1", "node-1", Some(3));
        assert_eq!(positions(&s), BTreeMap::from([(0, 25), (1, 99), (2, 7)]));
        assert_eq!(
            added_ranges(&s),
            BTreeMap::from([(0, (10, 24)), (2, (0, 6))])
        );
        assert_eq!(s[GENERATION], "3");
        assert!(cov.already_in(&positions(&s)));
    }

    #[test]
    fn a_replacing_snapshot_carries_positions_not_ranges() {
        let cov = Coverage {
            start: BTreeMap::from([(0, Some(10))]),
            end: BTreeMap::from([(0, 25)]),
        };
        let s = cov.summary("t", &BTreeMap::new(), "c1", "node-1", Some(3));
        let c = carried(&s);
        assert_eq!(positions(&c), BTreeMap::from([(0, 25)]));
        assert!(added_ranges(&c).is_empty());
        assert_eq!(c[TOPIC], "t");
        assert_eq!(c[GENERATION], "3");
        assert!(!c.contains_key(COMMIT));
    }

    #[test]
    fn a_partition_never_written_fits_a_parent_without_it() {
        let cov = Coverage {
            start: BTreeMap::from([(2, None)]),
            end: BTreeMap::from([(2, 7)]),
        };
        assert!(cov.fits(&BTreeMap::from([(0, 5)])));
        assert!(!cov.fits(&BTreeMap::from([(2, 5)])));
        assert!(!cov.is_empty());
        let idle = Coverage {
            start: BTreeMap::from([(2, Some(7))]),
            end: BTreeMap::from([(2, 7)]),
        };
        assert!(idle.is_empty());
    }
}
