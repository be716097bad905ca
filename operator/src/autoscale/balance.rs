//! Leadership moves that even out broker load — by throughput, not partition counts.
//! Moves are metadata only in Sluice, so balancing costs a hand-over each, not a copy.

use std::collections::BTreeMap;

/// One partition's leader and load.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLoad {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    /// Produce + fetch bytes per second.
    pub bytes_per_second: f64,
}

/// A broker that may lead partitions, and the load it carries now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrokerLoad {
    pub id: i32,
    pub bytes_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: i32,
    pub to: i32,
}

/// Every partition weighs at least this, so idle partitions spread by count too.
const FLOOR: f64 = 1.0;

fn weight(p: &PartitionLoad) -> f64 {
    p.bytes_per_second.max(0.0) + FLOOR
}

/// At most `max_moves` moves: first every partition led by a broker that is not in
/// `brokers` (leaving: drained before a scale-in, or gone), heaviest first, to the
/// least loaded broker; then, while the most loaded broker is above the mean by more
/// than `tolerance` (a share, e.g. 0.1), the partition whose move best evens the most
/// and the least loaded brokers.
pub fn plan_moves(
    partitions: &[PartitionLoad],
    brokers: &[i32],
    tolerance: f64,
    max_moves: usize,
) -> Vec<Move> {
    if brokers.is_empty() {
        return Vec::new();
    }
    let mut load: BTreeMap<i32, f64> = brokers.iter().map(|b| (*b, 0.0)).collect();
    let mut leader: Vec<i32> = partitions.iter().map(|p| p.leader).collect();
    for (p, l) in partitions.iter().zip(&leader) {
        if let Some(x) = load.get_mut(l) {
            *x += weight(p);
        }
    }
    let coldest = |load: &BTreeMap<i32, f64>| {
        load.iter()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(b.0)))
            .map(|(b, l)| (*b, *l))
            .expect("brokers is not empty")
    };
    let mut moves = Vec::new();
    let push = |i: usize, to: i32, leader: &mut Vec<i32>, moves: &mut Vec<Move>| {
        moves.push(Move {
            topic: partitions[i].topic.clone(),
            partition: partitions[i].partition,
            from: leader[i],
            to,
        });
        leader[i] = to;
    };
    // Leaving brokers first, heaviest partitions first.
    let mut orphans: Vec<usize> = (0..partitions.len())
        .filter(|i| !load.contains_key(&leader[*i]))
        .collect();
    orphans.sort_by(|a, b| weight(&partitions[*b]).total_cmp(&weight(&partitions[*a])));
    for i in orphans {
        if moves.len() >= max_moves {
            return moves;
        }
        let (to, _) = coldest(&load);
        *load.get_mut(&to).expect("known") += weight(&partitions[i]);
        push(i, to, &mut leader, &mut moves);
    }
    let total: f64 = load.values().sum();
    let mean = total / load.len() as f64;
    while moves.len() < max_moves {
        let (hot, hot_load) = load
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(b, l)| (*b, *l))
            .expect("brokers is not empty");
        let (cold, cold_load) = coldest(&load);
        if hot_load <= mean * (1.0 + tolerance) || hot == cold {
            break;
        }
        // The move leaving the pair most even, if it improves on not moving.
        let gap = hot_load - cold_load;
        let best = (0..partitions.len())
            .filter(|i| leader[*i] == hot)
            .map(|i| (i, (gap - 2.0 * weight(&partitions[i])).abs()))
            .filter(|(_, after)| *after < gap)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, _)) = best else { break };
        let w = weight(&partitions[i]);
        *load.get_mut(&hot).expect("known") -= w;
        *load.get_mut(&cold).expect("known") += w;
        push(i, cold, &mut leader, &mut moves);
    }
    moves
}

/// The load each broker would carry, from partition loads.
pub fn broker_loads(partitions: &[PartitionLoad], brokers: &[i32]) -> Vec<BrokerLoad> {
    brokers
        .iter()
        .map(|b| BrokerLoad {
            id: *b,
            bytes_per_second: partitions
                .iter()
                .filter(|p| p.leader == *b)
                .map(|p| p.bytes_per_second)
                .sum(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(partition: i32, leader: i32, mb: f64) -> PartitionLoad {
        PartitionLoad {
            topic: "t".into(),
            partition,
            leader,
            bytes_per_second: mb * 1e6,
        }
    }

    fn apply(parts: &mut [PartitionLoad], moves: &[Move]) {
        for m in moves {
            let p = parts
                .iter_mut()
                .find(|p| p.partition == m.partition)
                .unwrap();
            assert_eq!(p.leader, m.from);
            p.leader = m.to;
        }
    }

    #[test]
    fn new_brokers_take_load_by_throughput_not_by_count() {
        // Broker 1 leads one hot partition and three cold ones; broker 2 is new.
        let mut parts = vec![
            part(0, 1, 90.0),
            part(1, 1, 10.0),
            part(2, 1, 10.0),
            part(3, 1, 10.0),
        ];
        let moves = plan_moves(&parts, &[1, 2], 0.1, 10);
        apply(&mut parts, &moves);
        let loads = broker_loads(&parts, &[1, 2]);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!(moves[0].partition, 0, "the hot partition moves alone");
        assert!(loads.iter().all(|b| b.bytes_per_second > 20e6));
    }

    #[test]
    fn leaving_brokers_are_emptied_first_and_moves_are_bounded() {
        let parts: Vec<_> = (0..6).map(|i| part(i, 3, 5.0)).collect();
        let moves = plan_moves(&parts, &[1, 2], 0.1, 4);
        assert_eq!(moves.len(), 4);
        assert!(moves.iter().all(|m| m.from == 3 && m.to != 3));
        let mut parts = parts;
        apply(&mut parts, &moves);
        let rest = plan_moves(&parts, &[1, 2], 0.1, 4);
        assert_eq!(rest.iter().filter(|m| m.from == 3).count(), 2);
    }

    #[test]
    fn a_balanced_fleet_moves_nothing() {
        let parts = vec![part(0, 1, 10.0), part(1, 2, 11.0), part(2, 3, 9.5)];
        assert!(plan_moves(&parts, &[1, 2, 3], 0.1, 10).is_empty());
        // Idle partitions spread by count.
        let idle: Vec<_> = (0..6).map(|i| part(i, 1, 0.0)).collect();
        let moves = plan_moves(&idle, &[1, 2, 3], 0.1, 10);
        assert_eq!(moves.len(), 4);
    }
}
