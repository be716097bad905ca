//! The fault schedule of a run, drawn from its seed before the run starts, so that a
//! failing run can be shrunk by dropping events and replayed exactly.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bucket::FaultRates;

/// One fault. Each carries its own end, so dropping one never leaves another open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of a broker (its tasks dropped wherever they are), restarted as a new
    /// incarnation `down_ms` later.
    Crash { node: i32, down_ms: u64 },
    /// SIGTERM: the broker hands its partitions over and deregisters, then restarts.
    Graceful { node: i32 },
    /// The broker cannot reach the bucket (so neither the controller nor its peers).
    CutFromBucket { node: i32, ms: u64 },
    /// The broker's heartbeats and metadata reads fail, everything else works: the
    /// fleet declares it dead while it still takes writes (a zombie).
    Zombie { node: i32, ms: u64 },
    /// Every bucket request of the broker waits `ms` (a paused process: requests in
    /// flight land late).
    Stall { node: i32, ms: u64 },
    /// The broker's clients cannot reach it.
    CutFromClients { node: i32, ms: u64 },
    /// The broker's clock jumps forward (within the session timeout).
    ClockJump { node: i32, ms: u64 },
    /// AlterPartitionReassignments: move a partition's leadership to `to`.
    Move { partition: i32, to: i32 },
    /// Drain a broker for `ms`, then undrain it.
    Drain { node: i32, ms: u64 },
    /// The bucket misbehaves much more for `ms`.
    StoreStorm { ms: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { node, down_ms } => write!(f, "crash broker {node} (down {down_ms} ms)"),
            Fault::Graceful { node } => write!(f, "graceful restart of broker {node}"),
            Fault::CutFromBucket { node, ms } => {
                write!(f, "partition broker {node} from the bucket for {ms} ms")
            }
            Fault::Zombie { node, ms } => {
                write!(
                    f,
                    "broker {node} is a zombie (heartbeats and metadata cut) for {ms} ms"
                )
            }
            Fault::Stall { node, ms } => write!(f, "broker {node} stalls for {ms} ms"),
            Fault::CutFromClients { node, ms } => {
                write!(f, "partition broker {node} from its clients for {ms} ms")
            }
            Fault::ClockJump { node, ms } => write!(f, "clock of broker {node} jumps {ms} ms"),
            Fault::Move { partition, to } => write!(f, "move partition {partition} to broker {to}"),
            Fault::Drain { node, ms } => write!(f, "drain broker {node} for {ms} ms"),
            Fault::StoreStorm { ms } => write!(f, "object store storm for {ms} ms"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub at_ms: u64,
    pub fault: Fault,
}

/// Everything a run is made of besides its seed's workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub events: Vec<Event>,
    /// The bucket's faults outside storms.
    pub background: FaultRates,
}

/// Shape of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub brokers: i32,
    pub partitions: i32,
    /// Faults happen in [1 s, fault_secs).
    pub fault_secs: u64,
}

/// A storm's rates.
pub const STORM: FaultRates = FaultRates {
    error: 0.2,
    lost_ack: 0.15,
    throttle: 0.1,
    slow_put: 0.1,
    slow_ms: 3_000,
    max_latency_ms: 60,
};

impl Schedule {
    /// Draws the schedule of `seed`.
    pub fn generate(seed: u64, shape: Shape, session_timeout_ms: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xFA17);
        let quiet = rng.random_bool(0.2);
        let background = if quiet {
            FaultRates::NONE
        } else {
            FaultRates {
                error: rng.random_range(0.0..0.05),
                lost_ack: rng.random_range(0.0..0.04),
                throttle: rng.random_range(0.0..0.03),
                slow_put: rng.random_range(0.0..0.02),
                slow_ms: rng.random_range(200..2_500),
                max_latency_ms: rng.random_range(1..25),
            }
        };
        // About one event every 1.5 s of the fault phase.
        let span = shape.fault_secs.saturating_sub(1).max(1) * 1000;
        let count = rng.random_range(span / 3000..=span / 1000);
        let mut events: Vec<Event> = (0..count)
            .map(|_| {
                let at_ms = 1000 + rng.random_range(0..span);
                let node = rng.random_range(1..=shape.brokers);
                let fault = match rng.random_range(0..120) {
                    100..=109 => Fault::Zombie {
                        node,
                        ms: rng.random_range(session_timeout_ms..(session_timeout_ms * 4)),
                    },
                    110..=119 => Fault::Stall {
                        node,
                        ms: rng.random_range(100..(session_timeout_ms * 3)),
                    },
                    0..=24 => Fault::Crash {
                        node,
                        down_ms: rng.random_range(0..4_000),
                    },
                    25..=34 => Fault::Graceful { node },
                    35..=49 => Fault::CutFromBucket {
                        node,
                        ms: rng.random_range(100..(session_timeout_ms * 3)),
                    },
                    50..=57 => Fault::CutFromClients {
                        node,
                        ms: rng.random_range(100..5_000),
                    },
                    58..=67 => Fault::ClockJump {
                        node,
                        ms: rng.random_range(1..session_timeout_ms),
                    },
                    68..=83 => Fault::Move {
                        partition: rng.random_range(0..shape.partitions),
                        to: node,
                    },
                    84..=91 => Fault::Drain {
                        node,
                        ms: rng.random_range(500..6_000),
                    },
                    _ => Fault::StoreStorm {
                        ms: rng.random_range(200..3_000),
                    },
                };
                Event { at_ms, fault }
            })
            .collect();
        events.sort_by_key(|e| e.at_ms);
        Schedule { events, background }
    }
}
