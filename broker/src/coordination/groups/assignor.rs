//! Server-side partition assignment for KIP-848 consumer groups, Kafka's two:
//! - "uniform" (the default): every topic's partitions are spread over the members
//!   subscribed to it as evenly as possible, keeping partitions where they are when that
//!   stays balanced (sticky), so a membership change moves as few partitions as it can;
//! - "range": each topic's partitions in contiguous ranges over its subscribers in
//!   member-id order, so topics with the same partition count are co-partitioned
//!   (partition i of every such topic goes to the same member), which joins need.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

pub type TopicPartition = (Uuid, i32);

/// What the assignor knows of a member.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    pub subscribed: BTreeSet<String>,
    pub current: BTreeSet<TopicPartition>,
}

/// A server-side assignor, as members name it in ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assignor {
    #[default]
    Uniform,
    Range,
}

impl Assignor {
    pub const ALL: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn by_name(name: &str) -> Option<Assignor> {
        Assignor::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Computes a target assignment with `assignor`. `topics` maps topic names to (id,
/// partition count); subscriptions to unknown topics are ignored.
pub fn assign(
    assignor: Assignor,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (index, (name, (id, count))) in topics.iter().enumerate() {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, spec)| spec.subscribed.contains(name))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() || *count <= 0 {
            continue;
        }
        let given = match assignor {
            Assignor::Uniform => uniform(members, &subscribers, *id, *count as usize, index),
            Assignor::Range => range(subscribers.len(), *count as usize),
        };
        for (i, m) in subscribers.iter().enumerate() {
            out.get_mut(*m)
                .expect("every member has an entry")
                .extend(given[i].iter().map(|p| (*id, *p)));
        }
    }
    out
}

/// Contiguous ranges of `n` partitions over `k` subscribers: the first `n % k` get one
/// more.
fn range(k: usize, n: usize) -> Vec<Vec<i32>> {
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = n / k + usize::from(i < n % k);
            let part = (start..start + len).map(|p| p as i32).collect();
            start += len;
            part
        })
        .collect()
}

/// Topic number `index` (`id`, `n` partitions) spread evenly over `subscribers`,
/// keeping current owners where balance allows.
fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    subscribers: &[&String],
    id: Uuid,
    n: usize,
    index: usize,
) -> Vec<Vec<i32>> {
    let k = subscribers.len();
    // Rotate who gets the extra partitions so several topics balance overall.
    let quota = |i: usize| n / k + usize::from((i + k - index % k) % k < n % k);
    let mut taken = vec![false; n];
    let mut given: Vec<Vec<i32>> = vec![Vec::new(); k];
    // Sticky pass: keep current owners up to their quota.
    for (i, m) in subscribers.iter().enumerate() {
        for (t, p) in &members[*m].current {
            if *t == id && (*p as usize) < n && !taken[*p as usize] && given[i].len() < quota(i) {
                taken[*p as usize] = true;
                given[i].push(*p);
            }
        }
    }
    // Fill pass: free partitions to whoever is under quota.
    let mut free = (0..n).filter(|p| !taken[*p]);
    for (i, g) in given.iter_mut().enumerate() {
        while g.len() < quota(i) {
            match free.next() {
                Some(p) => g.push(p as i32),
                None => break,
            }
        }
    }
    given
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(topics: &[&str], current: &[TopicPartition]) -> MemberSpec {
        MemberSpec {
            subscribed: topics.iter().map(|t| t.to_string()).collect(),
            current: current.iter().copied().collect(),
        }
    }

    #[test]
    fn spreads_evenly_and_keeps_partitions_in_place() {
        let t = Uuid::from_u128(1);
        let topics: BTreeMap<String, (Uuid, i32)> = [("t".to_string(), (t, 12))].into();
        let mut members: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), spec(&["t"], &[])))
            .collect();
        let first = assign(Assignor::Uniform, &members, &topics);
        assert!(first.values().all(|s| s.len() == 4));
        let all: BTreeSet<_> = first.values().flatten().collect();
        assert_eq!(all.len(), 12, "every partition assigned once");

        // "c" leaves: a and b keep what they had and split c's partitions.
        for (m, s) in &first {
            members.get_mut(m).unwrap().current = s.clone();
        }
        members.remove("c");
        let second = assign(Assignor::Uniform, &members, &topics);
        assert!(second["a"].is_superset(&first["a"]));
        assert!(second["b"].is_superset(&first["b"]));
        assert_eq!(second["a"].len() + second["b"].len(), 12);
        assert_eq!(second["a"].len(), 6);
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics: BTreeMap<String, (Uuid, i32)> =
            [("x".to_string(), (x, 2)), ("y".to_string(), (y, 3))].into();
        let members: BTreeMap<String, MemberSpec> = [
            ("a".to_string(), spec(&["x", "y"], &[])),
            ("b".to_string(), spec(&["y", "missing"], &[])),
        ]
        .into();
        let a = assign(Assignor::Uniform, &members, &topics);
        assert!(a["b"].iter().all(|(t, _)| *t == y));
        assert_eq!(a["a"].iter().filter(|(t, _)| *t == x).count(), 2);
        assert_eq!(a.values().flatten().filter(|(t, _)| *t == y).count(), 3);
    }

    #[test]
    fn range_gives_contiguous_ranges_and_co_partitions_topics() {
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics: BTreeMap<String, (Uuid, i32)> =
            [("x".to_string(), (x, 7)), ("y".to_string(), (y, 7))].into();
        let members: BTreeMap<String, MemberSpec> = ["b", "a", "c"]
            .iter()
            .map(|m| (m.to_string(), spec(&["x", "y"], &[])))
            .collect();
        let out = assign(Assignor::Range, &members, &topics);
        let of = |m: &str, t: Uuid| -> Vec<i32> {
            out[m]
                .iter()
                .filter(|(id, _)| *id == t)
                .map(|(_, p)| *p)
                .collect()
        };
        assert_eq!(of("a", x), vec![0, 1, 2]);
        assert_eq!(of("b", x), vec![3, 4]);
        assert_eq!(of("c", x), vec![5, 6]);
        for m in ["a", "b", "c"] {
            assert_eq!(of(m, x), of(m, y), "{m}: same partitions of both topics");
        }
        assert_eq!(Assignor::by_name("range"), Some(Assignor::Range));
        assert_eq!(Assignor::by_name("sticky"), None);
    }
}
