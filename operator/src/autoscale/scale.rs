//! The scaling step: how many brokers the StatefulSet runs this round, given the
//! autoscaler's wish and what the fleet reports. Scale-out is immediate; a scale-in
//! first drains the brokers that will go (their partitions move, metadata only) and
//! shrinks only once they lead nothing.

/// A broker's `GET /v1/cluster` (the fleet as its metadata shows it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct FleetView {
    pub nodes: Vec<FleetNode>,
    /// Partitions with a move pending.
    pub partitions_moving: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct FleetNode {
    pub id: i32,
    pub alive: bool,
    pub draining: bool,
    pub partitions_led: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Stable,
    ScalingOut,
    /// Brokers to be removed are handing their partitions over.
    Draining,
    /// The balancer is moving partition leaders.
    Balancing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Stable => "Stable",
            Phase::ScalingOut => "ScalingOut",
            Phase::Draining => "Draining",
            Phase::Balancing => "Balancing",
        }
    }
}

/// What to do this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleStep {
    /// Brokers the StatefulSet runs now.
    pub replicas: i32,
    pub phase: Phase,
    /// Brokers to mark draining now.
    pub drain: Vec<i32>,
    /// Brokers to take back into service now.
    pub undrain: Vec<i32>,
    /// Brokers that go once drained (node ids = StatefulSet ordinals).
    pub leaving: Vec<i32>,
    /// Why the shrink waits, when it does.
    pub waiting_for: Option<String>,
}

/// The step from `current` brokers towards `desired`. `ours` are the brokers this
/// operator drained for an earlier scale-in: only those (and brokers being added back)
/// are taken out of draining, so a drain someone else started stays.
pub fn scale_step(
    current: i32,
    desired: i32,
    fleet: Option<&FleetView>,
    ours: &[i32],
) -> ScaleStep {
    let nodes = fleet.map(|f| f.nodes.as_slice()).unwrap_or_default();
    let undrain = nodes
        .iter()
        .filter(|n| n.draining && n.id < desired && (ours.contains(&n.id) || n.id >= current))
        .map(|n| n.id)
        .collect();
    if desired >= current {
        let phase = if desired > current {
            Phase::ScalingOut
        } else {
            Phase::Stable
        };
        return ScaleStep {
            replicas: desired,
            phase,
            drain: Vec::new(),
            undrain,
            leaving: Vec::new(),
            waiting_for: None,
        };
    }
    let leaving: Vec<i32> = (desired..current).collect();
    let present: Vec<&FleetNode> = nodes.iter().filter(|n| leaving.contains(&n.id)).collect();
    let drain = present
        .iter()
        .filter(|n| n.alive && !n.draining)
        .map(|n| n.id)
        .collect();
    let waiting_for = match fleet {
        None => Some("the fleet's view of its brokers".to_string()),
        Some(f) => {
            let busy: Vec<String> = present
                .iter()
                .filter(|n| n.alive && (!n.draining || n.partitions_led > 0))
                .map(|n| format!("broker {} ({} partitions)", n.id, n.partitions_led))
                .collect();
            if !busy.is_empty() {
                Some(format!("drain of {}", busy.join(", ")))
            } else if f.partitions_moving > 0 {
                Some(format!("{} partition moves in flight", f.partitions_moving))
            } else {
                None
            }
        }
    };
    ScaleStep {
        replicas: if waiting_for.is_some() {
            current
        } else {
            desired
        },
        phase: Phase::Draining,
        drain,
        undrain,
        leaving,
        waiting_for,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, draining: bool, led: usize) -> FleetNode {
        FleetNode {
            id,
            alive: true,
            draining,
            partitions_led: led,
        }
    }

    fn fleet(nodes: Vec<FleetNode>, moving: usize) -> FleetView {
        FleetView {
            nodes,
            partitions_moving: moving,
        }
    }

    #[test]
    fn scale_out_is_immediate_and_takes_returning_brokers_back() {
        // Broker 2 was drained by an earlier scale-in and left dead in the metadata.
        let mut gone = node(2, true, 0);
        gone.alive = false;
        let f = fleet(vec![node(0, false, 4), node(1, false, 4), gone], 0);
        let step = scale_step(2, 4, Some(&f), &[]);
        assert_eq!(step.replicas, 4);
        assert_eq!(step.phase, Phase::ScalingOut);
        assert_eq!(step.undrain, vec![2]);
        assert!(step.drain.is_empty());
    }

    #[test]
    fn scale_in_drains_first_and_shrinks_only_when_the_leavers_lead_nothing() {
        let f = fleet(
            vec![node(0, false, 3), node(1, false, 3), node(2, false, 2)],
            0,
        );
        let step = scale_step(3, 2, Some(&f), &[]);
        assert_eq!((step.replicas, step.phase), (3, Phase::Draining));
        assert_eq!(step.drain, vec![2]);
        assert_eq!(step.leaving, vec![2]);
        // Draining, partitions still moving off.
        let f = fleet(
            vec![node(0, false, 4), node(1, false, 3), node(2, true, 1)],
            1,
        );
        let step = scale_step(3, 2, Some(&f), &[2]);
        assert_eq!(step.replicas, 3);
        assert!(step.drain.is_empty(), "already draining");
        assert!(step
            .waiting_for
            .unwrap()
            .contains("broker 2 (1 partitions)"));
        // Empty, no move in flight: shrink.
        let f = fleet(
            vec![node(0, false, 4), node(1, false, 4), node(2, true, 0)],
            0,
        );
        let step = scale_step(3, 2, Some(&f), &[2]);
        assert_eq!((step.replicas, step.waiting_for), (2, None));
    }

    #[test]
    fn without_a_fleet_view_nothing_shrinks() {
        let step = scale_step(3, 1, None, &[]);
        assert_eq!(step.replicas, 3);
        assert_eq!(step.leaving, vec![1, 2]);
    }

    #[test]
    fn an_aborted_scale_in_undrains_only_what_it_drained() {
        // Load came back while 2 was draining; 1 was drained by a person.
        let f = fleet(
            vec![node(0, false, 4), node(1, true, 0), node(2, true, 1)],
            0,
        );
        let step = scale_step(3, 3, Some(&f), &[2]);
        assert_eq!((step.replicas, step.phase), (3, Phase::Stable));
        assert_eq!(step.undrain, vec![2]);
    }

    #[test]
    fn brokers_that_never_registered_do_not_hold_a_shrink() {
        let f = fleet(vec![node(0, false, 4)], 0);
        let step = scale_step(2, 1, Some(&f), &[]);
        assert_eq!(step.replicas, 1);
    }
}
