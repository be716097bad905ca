//! Placement decisions, as pure functions over cluster metadata: where new partitions
//! go, where the partitions of dead brokers fail over to, and which moves drain a
//! broker. Leaders are spread so that every topic (the offsets topic, hence group
//! coordinators, included) and the fleet as a whole stay even.

use std::collections::BTreeMap;

use super::metadata::{ClusterMetadata, PartitionAssignment};

/// A change of leader decided by the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: i32,
    pub to: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no live broker can lead partitions")]
pub struct NoEligibleBroker;

/// Partitions led (or about to be led) per eligible node, overall and per topic.
struct Load {
    total: BTreeMap<i32, usize>,
    per_topic: BTreeMap<(String, i32), usize>,
}

impl Load {
    fn of(meta: &ClusterMetadata) -> Self {
        let mut total: BTreeMap<i32, usize> = meta
            .nodes
            .iter()
            .filter(|(_, n)| n.is_eligible())
            .map(|(id, _)| (*id, 0))
            .collect();
        let mut per_topic = BTreeMap::new();
        for (name, t) in &meta.topics {
            for p in &t.partitions {
                let node = p.target.unwrap_or(p.leader);
                if let Some(n) = total.get_mut(&node) {
                    *n += 1;
                    *per_topic.entry((name.clone(), node)).or_insert(0) += 1;
                }
            }
        }
        Load { total, per_topic }
    }

    /// The eligible node with the fewest partitions of `topic`, then overall, then the
    /// lowest id; `None` when no node is eligible.
    fn pick(&self, topic: &str, avoid: Option<i32>) -> Option<i32> {
        self.total
            .iter()
            .filter(|(id, _)| Some(**id) != avoid)
            .min_by_key(|(id, total)| {
                let in_topic = self
                    .per_topic
                    .get(&(topic.to_string(), **id))
                    .copied()
                    .unwrap_or(0);
                (in_topic, **total, **id)
            })
            .map(|(id, _)| *id)
    }

    fn add(&mut self, topic: &str, node: i32) {
        *self.total.entry(node).or_insert(0) += 1;
        *self.per_topic.entry((topic.to_string(), node)).or_insert(0) += 1;
    }

    fn remove(&mut self, topic: &str, node: i32) {
        if let Some(n) = self.total.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.per_topic.get_mut(&(topic.to_string(), node)) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Leaders for `count` new partitions of `topic` (existing ones included in the
/// balance), at epoch 0.
pub fn place_new(
    meta: &ClusterMetadata,
    topic: &str,
    count: usize,
) -> Result<Vec<PartitionAssignment>, NoEligibleBroker> {
    let mut load = Load::of(meta);
    (0..count)
        .map(|_| {
            let node = load.pick(topic, None).ok_or(NoEligibleBroker)?;
            load.add(topic, node);
            Ok(PartitionAssignment::led_by(&meta.nodes[&node], node, 0))
        })
        .collect()
}

/// Gives every partition whose leader is not a live incarnation a new leader with the
/// next epoch: the pending move's target if it can lead, else the previous leader if it
/// came back (a restart keeps its partitions), else the least loaded node.
pub fn fail_over(meta: &mut ClusterMetadata) -> Vec<Move> {
    let mut load = Load::of(meta);
    let mut moves = Vec::new();
    let eligible =
        |meta: &ClusterMetadata, node: i32| meta.nodes.get(&node).is_some_and(|n| n.is_eligible());
    let orphans: Vec<(String, usize)> = meta
        .topics
        .iter()
        .flat_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| !meta.leader_is_live(p))
                .map(move |(i, _)| (name.clone(), i))
        })
        .collect();
    for (name, i) in orphans {
        let p = meta.topics[&name].partitions[i];
        let to = match p.target {
            Some(t) if eligible(meta, t) => Some(t),
            _ if eligible(meta, p.leader) => Some(p.leader),
            _ => {
                load.remove(&name, p.target.unwrap_or(p.leader));
                let picked = load.pick(&name, None);
                if let Some(n) = picked {
                    load.add(&name, n);
                }
                picked
            }
        };
        let Some(to) = to else { continue };
        let info = &meta.nodes[&to];
        let next = PartitionAssignment::led_by(info, to, p.leader_epoch + 1);
        meta.topics.get_mut(&name).expect("listed").partitions[i] = next;
        moves.push(Move {
            topic: name,
            partition: i as i32,
            from: p.leader,
            to,
        });
    }
    moves
}

/// Sets move targets for partitions led by draining nodes, at most `limit` moves in
/// flight at once. Returns the moves started.
pub fn drain(meta: &mut ClusterMetadata, limit: usize) -> Vec<Move> {
    let in_flight = meta
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.target.is_some())
        .count();
    let mut budget = limit.saturating_sub(in_flight);
    let mut load = Load::of(meta);
    let mut moves = Vec::new();
    let draining: Vec<i32> = meta
        .nodes
        .iter()
        .filter(|(_, n)| n.alive && n.draining)
        .map(|(id, _)| *id)
        .collect();
    for (name, t) in meta.topics.iter_mut() {
        for (i, p) in t.partitions.iter_mut().enumerate() {
            if budget == 0 {
                return moves;
            }
            if p.target.is_some() || !draining.contains(&p.leader) {
                continue;
            }
            let Some(to) = load.pick(name, Some(p.leader)) else {
                return moves;
            };
            load.add(name, to);
            p.target = Some(to);
            budget -= 1;
            moves.push(Move {
                topic: name.clone(),
                partition: i as i32,
                from: p.leader,
                to,
            });
        }
    }
    moves
}

/// Drops targets that cannot be carried out (the target can no longer lead) or are
/// no-ops (the target already leads). Returns how many were dropped.
pub fn drop_stale_targets(meta: &mut ClusterMetadata) -> usize {
    let eligible: Vec<i32> = meta
        .nodes
        .iter()
        .filter(|(_, n)| n.is_eligible())
        .map(|(id, _)| *id)
        .collect();
    let mut dropped = 0;
    for t in meta.topics.values_mut() {
        for p in t.partitions.iter_mut() {
            if let Some(to) = p.target {
                if to == p.leader || !eligible.contains(&to) {
                    p.target = None;
                    dropped += 1;
                }
            }
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::metadata::{NodeInfo, TopicMetadata};
    use uuid::Uuid;

    fn node(incarnation: u64, alive: bool, draining: bool) -> NodeInfo {
        NodeInfo {
            host: "127.0.0.1".into(),
            port: 9092,
            incarnation,
            alive,
            draining,
            ..NodeInfo::default()
        }
    }

    fn cluster(nodes: &[(i32, NodeInfo)]) -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: "c".into(),
            nodes: nodes.iter().cloned().collect(),
            ..Default::default()
        }
    }

    fn add_topic(meta: &mut ClusterMetadata, name: &str, count: usize) {
        let partitions = place_new(meta, name, count).unwrap();
        meta.topics.insert(
            name.into(),
            TopicMetadata {
                id: Uuid::new_v4(),
                partitions,
                configs: Default::default(),
            },
        );
    }

    fn leaders(meta: &ClusterMetadata, topic: &str) -> Vec<i32> {
        meta.topics[topic]
            .partitions
            .iter()
            .map(|p| p.leader)
            .collect()
    }

    #[test]
    fn new_partitions_spread_per_topic_and_overall() {
        let mut m = cluster(&[
            (1, node(1, true, false)),
            (2, node(1, true, false)),
            (3, node(1, true, false)),
        ]);
        add_topic(&mut m, "a", 4);
        assert_eq!(leaders(&m, "a"), vec![1, 2, 3, 1]);
        add_topic(&mut m, "b", 2);
        assert_eq!(leaders(&m, "b"), vec![2, 3], "node 1 already leads two");
        assert_eq!(m.partitions_led_by(1), 2);
        assert_eq!(m.partitions_led_by(2), 2);
    }

    #[test]
    fn draining_and_dead_nodes_get_nothing_new() {
        let mut m = cluster(&[
            (1, node(1, true, true)),
            (2, node(1, false, false)),
            (3, node(1, true, false)),
        ]);
        add_topic(&mut m, "a", 3);
        assert_eq!(leaders(&m, "a"), vec![3, 3, 3]);
        let none = cluster(&[(1, node(1, false, false))]);
        assert_eq!(place_new(&none, "a", 1), Err(NoEligibleBroker));
    }

    #[test]
    fn a_dead_brokers_partitions_spread_over_the_live_ones_with_a_new_epoch() {
        let mut m = cluster(&[
            (1, node(1, true, false)),
            (2, node(1, true, false)),
            (3, node(1, true, false)),
        ]);
        add_topic(&mut m, "a", 6);
        m.nodes.get_mut(&2).unwrap().alive = false;
        let moves = fail_over(&mut m);
        assert_eq!(moves.len(), 2);
        assert!(moves.iter().all(|mv| mv.from == 2 && mv.to != 2));
        let to: Vec<i32> = moves.iter().map(|mv| mv.to).collect();
        assert!(to.contains(&1) && to.contains(&3), "spread: {to:?}");
        for mv in &moves {
            let p = m.topics["a"].partitions[mv.partition as usize];
            assert_eq!(p.leader_epoch, 1);
            assert_eq!(p.leader_incarnation, 1);
        }
        assert!(fail_over(&mut m).is_empty(), "nothing left to fail over");
    }

    #[test]
    fn a_restarted_broker_gets_its_partitions_back_at_a_new_epoch() {
        let mut m = cluster(&[(1, node(1, true, false)), (2, node(1, true, false))]);
        add_topic(&mut m, "a", 4);
        m.nodes.get_mut(&1).unwrap().incarnation = 2;
        let moves = fail_over(&mut m);
        assert_eq!(moves.len(), 2);
        assert!(moves.iter().all(|mv| mv.from == 1 && mv.to == 1));
        assert!(m.topics["a"]
            .partitions
            .iter()
            .filter(|p| p.leader == 1)
            .all(|p| p.leader_incarnation == 2 && p.leader_epoch == 1));
    }

    #[test]
    fn a_failed_over_move_goes_to_its_target() {
        let mut m = cluster(&[
            (1, node(1, true, false)),
            (2, node(1, true, false)),
            (3, node(1, true, false)),
        ]);
        add_topic(&mut m, "a", 1);
        m.topics.get_mut("a").unwrap().partitions[0].target = Some(3);
        m.nodes.get_mut(&1).unwrap().alive = false;
        let moves = fail_over(&mut m);
        assert_eq!(
            moves,
            vec![Move {
                topic: "a".into(),
                partition: 0,
                from: 1,
                to: 3
            }]
        );
        assert_eq!(m.topics["a"].partitions[0].target, None);
    }

    #[test]
    fn draining_moves_partitions_off_within_the_limit() {
        let mut m = cluster(&[
            (1, node(1, true, false)),
            (2, node(1, true, false)),
            (3, node(1, true, false)),
        ]);
        add_topic(&mut m, "a", 9);
        m.nodes.get_mut(&3).unwrap().draining = true;
        let first = drain(&mut m, 2);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|mv| mv.from == 3 && mv.to != 3));
        assert!(drain(&mut m, 2).is_empty(), "two already in flight");
        let more = drain(&mut m, 10);
        assert_eq!(more.len(), 1);
        let targets: Vec<i32> = m.topics["a"]
            .partitions
            .iter()
            .filter_map(|p| p.target)
            .collect();
        assert_eq!(targets.len(), 3);
        assert!(targets.contains(&1) && targets.contains(&2));
    }

    #[test]
    fn stale_targets_are_dropped() {
        let mut m = cluster(&[(1, node(1, true, false)), (2, node(1, false, false))]);
        add_topic(&mut m, "a", 2);
        m.topics.get_mut("a").unwrap().partitions[0].target = Some(2);
        m.topics.get_mut("a").unwrap().partitions[1].target = Some(1);
        assert_eq!(drop_stale_targets(&mut m), 2);
    }
}
