//! The driver: builds the simulated world for a seed, steps it, applies the fault
//! schedule between steps (crashes, restarts, partitions, clock jumps, moves, drains,
//! storms), heals everything at the end of the fault phase, and collects the outcome.
//! Also shrinks a failing schedule to a minimal one.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sluice_broker::coordination::ClusterMetadata;

use crate::bucket::{Bucket, FaultRates};
use crate::checker::Checker;
use crate::client;
use crate::host::{self, host_name};
use crate::schedule::{Fault, Schedule, Shape, STORM};
use crate::trace::{Kind, Trace};
use crate::world::{Request, World, TIMING};

/// Idempotent producers per run, and the bulk producer's batches in flight.
const PRODUCERS: u64 = 2;
const BULK_LANES: u64 = 6;
/// Simulated time the heal and the read-back may take at most.
const HEAL_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    pub seed: u64,
    pub shape: Shape,
    /// Simulated milliseconds per step.
    pub tick_ms: u64,
}

impl RunConfig {
    pub fn new(seed: u64, fault_secs: u64) -> Self {
        // The seed also picks the fleet's size.
        let brokers = 3 + (seed % 2) as i32;
        let partitions = 2 + ((seed / 2) % 3) as i32;
        RunConfig {
            seed,
            shape: Shape {
                brokers,
                partitions,
                fault_secs,
            },
            tick_ms: 1,
        }
    }

    pub fn schedule(&self) -> Schedule {
        Schedule::generate(self.seed, self.shape, TIMING.session_timeout_ms)
    }
}

pub struct Outcome {
    pub violations: Vec<String>,
    pub trace: Trace,
    pub simulated: Duration,
    pub acked: usize,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// What the driver does at a point in simulated time.
#[derive(Debug, Clone, Copy)]
enum Action {
    Crash(i32),
    Restart(i32),
    Graceful(i32),
    Bucket(i32, bool),
    Zombie(i32, bool),
    Stall(i32, u64),
    Clients(i32, bool),
    Jump(i32, u64),
    Move(i32, i32),
    Drain(i32, bool),
    Rates(FaultRates),
    Heal,
}

fn actions(schedule: &Schedule, shape: Shape) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    for e in &schedule.events {
        let t = e.at_ms;
        match e.fault {
            Fault::Crash { node, down_ms } => {
                out.push((t, Action::Crash(node)));
                out.push((t + down_ms, Action::Restart(node)));
            }
            Fault::Graceful { node } => out.push((t, Action::Graceful(node))),
            Fault::CutFromBucket { node, ms } => {
                out.push((t, Action::Bucket(node, true)));
                out.push((t + ms, Action::Bucket(node, false)));
            }
            Fault::Zombie { node, ms } => {
                out.push((t, Action::Zombie(node, true)));
                out.push((t + ms, Action::Zombie(node, false)));
            }
            Fault::Stall { node, ms } => out.push((t, Action::Stall(node, t + ms))),
            Fault::CutFromClients { node, ms } => {
                out.push((t, Action::Clients(node, true)));
                out.push((t + ms, Action::Clients(node, false)));
            }
            Fault::ClockJump { node, ms } => out.push((t, Action::Jump(node, ms))),
            Fault::Move { partition, to } => out.push((t, Action::Move(partition, to))),
            Fault::Drain { node, ms } => {
                out.push((t, Action::Drain(node, true)));
                out.push((t + ms, Action::Drain(node, false)));
            }
            Fault::StoreStorm { ms } => {
                out.push((t, Action::Rates(STORM)));
                out.push((t + ms, Action::Rates(schedule.background)));
            }
        }
    }
    let end = shape.fault_secs * 1000;
    out.retain(|(t, _)| *t < end);
    out.push((end, Action::Heal));
    out.sort_by_key(|(t, _)| *t);
    out
}

thread_local! {
    /// The checker of the run on this thread, for the panic hook.
    static RUNNING: RefCell<Option<Arc<Checker>>> = const { RefCell::new(None) };
}

/// A panic anywhere in the simulated fleet (a spawned task's panic is otherwise
/// swallowed by its runtime) is a violation.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let handled = RUNNING.with(|r| {
                r.borrow().as_ref().map(|c| {
                    c.violation(format!("panic: {info}"));
                })
            });
            if handled.is_none() {
                previous(info);
            }
        }));
    });
}

/// Writes the cluster's first metadata version with a fixed cluster id (a random one
/// would change topic ids derived from it, and so the order of things).
fn seed_metadata(bucket: &Bucket, seed: u64) {
    let meta = ClusterMetadata {
        cluster_id: format!("sim-{seed:018}"),
        ..Default::default()
    };
    let data = Bytes::from(serde_json::to_vec(&meta).expect("metadata serializes"));
    let raw = bucket.raw();
    futures::executor::block_on(
        raw.put(&Path::from(format!("meta/cluster/{:020}", 1)), data.into()),
    )
    .expect("the in-memory store takes a put");
}

/// Runs one seed with `schedule`.
pub fn run(config: &RunConfig, schedule: &Schedule) -> Outcome {
    install_panic_hook();
    let trace = Trace::default();
    let checker = Checker::new(trace.clone());
    RUNNING.with(|r| *r.borrow_mut() = Some(checker.clone()));
    let bucket = Arc::new(Bucket::new(
        Box::new(StdRng::seed_from_u64(config.seed)),
        schedule.background,
        trace.clone(),
        checker.clone(),
    ));
    seed_metadata(&bucket, config.seed);
    let world = Arc::new(World::new(
        config.seed,
        config.shape,
        trace.clone(),
        checker.clone(),
        bucket.clone(),
        PRODUCERS as usize + 1,
    ));
    let fault_end = Duration::from_secs(config.shape.fault_secs);
    let limit = fault_end + HEAL_LIMIT;
    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .enable_random_order()
        .tick_duration(Duration::from_millis(config.tick_ms))
        .simulation_duration(limit + Duration::from_secs(10))
        .build();
    for node in world.brokers() {
        let w = world.clone();
        sim.host(host_name(node), move || host::broker(w.clone(), node));
    }
    sim.client("admin", client::admin(world.clone()));
    for id in 0..PRODUCERS {
        sim.client(
            format!("producer-{id}"),
            client::producer(world.clone(), id),
        );
    }
    sim.client("bulk", client::bulk(world.clone(), BULK_LANES));
    sim.client("consumer", client::consumer(world.clone()));

    let plan = actions(schedule, config.shape);
    let mut next = 0;
    let mut down = std::collections::BTreeSet::new();
    for e in &schedule.events {
        trace.record_at(
            Duration::from_millis(e.at_ms),
            Kind::Fault,
            format!("scheduled: {}", e.fault),
        );
    }
    loop {
        let now = sim.elapsed();
        while next < plan.len() && Duration::from_millis(plan[next].0) <= now {
            let action = plan[next].1;
            next += 1;
            trace.record_at(now, Kind::Fault, format!("{action:?}"));
            match action {
                Action::Crash(n) => {
                    if down.insert(n) {
                        world.set_endpoint(n, None);
                        sim.crash(host_name(n));
                    }
                }
                Action::Restart(n) => {
                    if down.remove(&n) {
                        sim.bounce(host_name(n));
                    }
                }
                Action::Graceful(n) => world.request_graceful(n),
                Action::Bucket(n, cut) => bucket.cut(n, cut),
                Action::Zombie(n, on) => bucket.zombie(n, on),
                Action::Stall(n, until_ms) => bucket.stall(n, Duration::from_millis(until_ms)),
                Action::Clients(n, cut) => world.cut_clients(n, cut),
                Action::Jump(n, ms) => world.jump_clock(n, ms),
                Action::Move(partition, to) => world.queue_admin(Request::Move { partition, to }),
                Action::Drain(node, on) => world.queue_admin(Request::Drain { node, on }),
                Action::Rates(r) => bucket.set_rates(r),
                Action::Heal => {
                    bucket.heal_links();
                    bucket.set_rates(FaultRates::NONE);
                    world.heal_clients();
                    for n in std::mem::take(&mut down) {
                        sim.bounce(host_name(n));
                    }
                    for n in world.brokers() {
                        world.queue_admin(Request::Drain { node: n, on: false });
                    }
                    world
                        .stop_producing
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    world
                        .healed
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
        for n in world.take_restarts() {
            if !down.contains(&n) {
                trace.record_at(now, Kind::Fault, format!("supervisor restarts broker {n}"));
                sim.bounce(host_name(n));
            }
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                checker.violation(format!("simulation failed: {e}"));
                break;
            }
        }
        if sim.elapsed() > limit {
            checker.violation(format!(
                "the run did not finish within {} s of simulated time",
                limit.as_secs()
            ));
            break;
        }
    }
    let simulated = sim.elapsed();
    drop(sim);
    RUNNING.with(|r| *r.borrow_mut() = None);
    Outcome {
        violations: checker.violations(),
        trace,
        simulated,
        acked: checker.acked_count(),
    }
}

/// Drops what it can from a failing schedule while the run still fails: the
/// background faults, then halves, quarters, ... and finally single events.
/// At most `budget` runs.
pub fn shrink(config: &RunConfig, schedule: &Schedule, budget: usize) -> Schedule {
    let mut best = schedule.clone();
    let mut runs = 0;
    let fails = |s: &Schedule, runs: &mut usize| {
        *runs += 1;
        run(config, s).failed()
    };
    if best.background != FaultRates::NONE {
        let mut c = best.clone();
        c.background = FaultRates::NONE;
        if fails(&c, &mut runs) {
            best = c;
        }
    }
    let mut chunk = best.events.len().div_ceil(2);
    while chunk >= 1 && runs < budget {
        let mut i = 0;
        while i < best.events.len() && runs < budget {
            let mut c = best.clone();
            let end = (i + chunk).min(c.events.len());
            c.events.drain(i..end);
            if fails(&c, &mut runs) {
                best = c;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2).min(chunk - 1).max(1);
    }
    best
}

/// Seeds per second and simulated time, for the report.
pub struct Stats {
    pub seeds: u64,
    pub failed: Vec<u64>,
    pub simulated: Duration,
    pub wall: Duration,
    pub acked: usize,
}

/// Runs `seeds` in turn, calling `on_fail` for each failing one.
pub fn run_seeds(
    seeds: impl Iterator<Item = u64>,
    fault_secs: u64,
    mut on_fail: impl FnMut(&RunConfig, &Schedule, &Outcome),
) -> Stats {
    let started = Instant::now();
    let mut stats = Stats {
        seeds: 0,
        failed: Vec::new(),
        simulated: Duration::ZERO,
        wall: Duration::ZERO,
        acked: 0,
    };
    for seed in seeds {
        let config = RunConfig::new(seed, fault_secs);
        let schedule = config.schedule();
        let outcome = run(&config, &schedule);
        stats.seeds += 1;
        stats.simulated += outcome.simulated;
        stats.acked += outcome.acked;
        if outcome.failed() {
            stats.failed.push(seed);
            on_fail(&config, &schedule, &outcome);
        }
    }
    stats.wall = started.elapsed();
    stats
}
