//! Server-side partition assignment for KIP-848 consumer groups ("uniform"): every
//! topic's partitions are spread over the members subscribed to it as evenly as
//! possible, keeping partitions where they are when that stays balanced (sticky), so
//! a membership change moves as few partitions as it can.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

pub type TopicPartition = (Uuid, i32);

/// What the assignor knows of a member.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    pub subscribed: BTreeSet<String>,
    pub current: BTreeSet<TopicPartition>,
}

pub const NAME: &str = "uniform";

/// Computes a target assignment. `topics` maps topic names to (id, partition count);
/// subscriptions to unknown topics are ignored.
pub fn assign(
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
        let k = subscribers.len();
        let n = *count as usize;
        // Rotate who gets the extra partitions so several topics balance overall.
        let quota = |i: usize| n / k + usize::from((i + k - index % k) % k < n % k);
        let mut taken = vec![false; n];
        let mut given: Vec<Vec<i32>> = vec![Vec::new(); k];
        // Sticky pass: keep current owners up to their quota.
        for (i, m) in subscribers.iter().enumerate() {
            for (t, p) in &members[*m].current {
                if t == id && (*p as usize) < n && !taken[*p as usize] && given[i].len() < quota(i)
                {
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
        for (i, m) in subscribers.iter().enumerate() {
            out.get_mut(*m)
                .expect("every member has an entry")
                .extend(given[i].iter().map(|p| (*id, *p)));
        }
    }
    out
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
        let first = assign(&members, &topics);
        assert!(first.values().all(|s| s.len() == 4));
        let all: BTreeSet<_> = first.values().flatten().collect();
        assert_eq!(all.len(), 12, "every partition assigned once");

        // "c" leaves: a and b keep what they had and split c's partitions.
        for (m, s) in &first {
            members.get_mut(m).unwrap().current = s.clone();
        }
        members.remove("c");
        let second = assign(&members, &topics);
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
        let a = assign(&members, &topics);
        assert!(a["b"].iter().all(|(t, _)| *t == y));
        assert_eq!(a["a"].iter().filter(|(t, _)| *t == x).count(), 2);
        assert_eq!(a.values().flatten().filter(|(t, _)| *t == y).count(), 3);
    }
}
