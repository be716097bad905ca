//! Incident simulation (issue 8): three feeds spike tenfold for ten minutes. A fleet
//! model (per-broker capacity, pod start-up delay, a backlog that grows with unserved
//! demand) runs under three policies — Sluice's autoscaler (throughput with unserved
//! demand, lag, HPA behaviour), a lag-only policy (KEDA's Kafka scaler), and a CPU-only
//! policy (HPA on utilisation) — and reports time-to-capacity, peak lag and
//! broker-minutes. Writes `benches/results/autoscale-<policy>.csv` and, when Python
//! with matplotlib is available (`SLUICE_PYTHON`, default the test venv), a PNG plot.
//!
//! Run: `cargo bench -p sluice-operator --bench autoscale`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use sluice_operator::autoscale::{Autoscaler, Policy, Signals};

/// Produce + fetch bytes per second one broker serves.
const CAPACITY: f64 = 60e6;
/// From a scale decision to a broker serving (scheduling, start, readiness).
const STARTUP: u64 = 30;
/// How often a policy decides (HPA's sync period).
const PERIOD: u64 = 15;
const RECORD_BYTES: f64 = 1024.0;
const FEEDS: f64 = 3.0;
/// Per feed, produce bytes per second; every feed has one consumer group (fetch = produce).
const BASE: f64 = 10e6;
const SPIKE_FROM: u64 = 600;
const SPIKE_TO: u64 = 1200;
const END: u64 = 3000;

fn demand(t: u64) -> f64 {
    let produce = if (SPIKE_FROM..SPIKE_TO).contains(&t) {
        10.0 * BASE
    } else {
        BASE
    };
    2.0 * FEEDS * produce
}

struct Row {
    t: u64,
    desired: u32,
    serving: u32,
    demand: f64,
    served: f64,
    lag_records: f64,
}

struct Outcome {
    name: &'static str,
    rows: Vec<Row>,
}

impl Outcome {
    fn time_to_capacity(&self) -> Option<u64> {
        self.rows
            .iter()
            .find(|r| r.t >= SPIKE_FROM && r.serving as f64 * CAPACITY >= r.demand)
            .map(|r| r.t - SPIKE_FROM)
    }
    fn peak_lag(&self) -> f64 {
        self.rows.iter().map(|r| r.lag_records).fold(0.0, f64::max)
    }
    fn broker_minutes(&self) -> f64 {
        self.rows.iter().map(|r| r.serving as f64).sum::<f64>() / 60.0
    }
    /// Seconds from the spike's end until the backlog is gone.
    fn drained_after(&self) -> Option<u64> {
        self.rows
            .iter()
            .find(|r| r.t >= SPIKE_TO && r.lag_records < 1.0)
            .map(|r| r.t - SPIKE_TO)
    }
}

/// Runs the fleet model for one policy, one second at a time.
fn simulate(name: &'static str, policy: &Policy, cpu_only: bool) -> Outcome {
    let mut scaler = Autoscaler::default();
    let mut desired = policy.min_brokers;
    // Brokers become serving STARTUP seconds after they were asked for; removals are
    // immediate (a drain hands partitions over in about a second).
    let mut starting: Vec<u64> = Vec::new();
    let mut serving = desired;
    let mut backlog = 0.0f64;
    let mut consumed = 0i64;
    let mut last_backlog = 0.0f64;
    let mut rows = Vec::new();
    for t in 0..END {
        starting.retain(|ready| {
            if *ready <= t {
                serving += 1;
                false
            } else {
                true
            }
        });
        let capacity = serving as f64 * CAPACITY;
        let wanted = demand(t) + backlog;
        let served = wanted.min(capacity);
        backlog = (wanted - served).max(0.0);
        consumed += (served / RECORD_BYTES) as i64;
        if t % PERIOD == 0 {
            let growth = (backlog - last_backlog) / PERIOD as f64;
            last_backlog = backlog;
            let lag = (backlog / RECORD_BYTES) as u64;
            let signals = if cpu_only {
                Signals {
                    cpu: Some(served / capacity),
                    ..Signals::default()
                }
            } else {
                Signals {
                    bytes_per_second: served,
                    backlog_growth: growth,
                    lag: [(("feeds".to_string(), "all".to_string(), 0), (lag, consumed))].into(),
                    cpu: None,
                }
            };
            let d = scaler.decide(policy, Duration::from_secs(t), desired, &signals);
            if d.desired > desired {
                starting.extend((desired..d.desired).map(|_| t + STARTUP));
            } else if d.desired < desired {
                let remove = desired - d.desired;
                // Cancel brokers still starting first, then drain serving ones.
                let cancelled = remove.min(starting.len() as u32);
                starting.truncate(starting.len() - cancelled as usize);
                serving -= remove - cancelled;
            }
            desired = d.desired;
        }
        rows.push(Row {
            t,
            desired,
            serving,
            demand: demand(t),
            served,
            lag_records: backlog / RECORD_BYTES,
        });
    }
    Outcome { name, rows }
}

fn results_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_csv(o: &Outcome) -> PathBuf {
    let mut csv = String::from("t_seconds,desired_brokers,serving_brokers,demand_bytes_per_s,served_bytes_per_s,lag_records\n");
    for r in &o.rows {
        writeln!(
            csv,
            "{},{},{},{:.0},{:.0},{:.0}",
            r.t, r.desired, r.serving, r.demand, r.served, r.lag_records
        )
        .unwrap();
    }
    let path = results_dir().join(format!("autoscale-{}.csv", o.name));
    std::fs::write(&path, csv).unwrap();
    path
}

fn plot(csvs: &[PathBuf]) -> Option<PathBuf> {
    let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sluice/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/plot_autoscale.py");
    let png = results_dir().join("autoscale.png");
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg(&png)
        .args(csvs)
        .status();
    match status {
        Ok(s) if s.success() => Some(png),
        other => {
            eprintln!(
                "no plot ({python} {}: {other:?}); `pip install matplotlib` in that Python",
                script.display()
            );
            None
        }
    }
}

fn main() {
    // HPA's defaults (Policy::default), each policy with only its own signal.
    let common = Policy {
        min_brokers: 2,
        max_brokers: 20,
        target_bytes_per_broker: 0.0,
        lag_threshold: None,
        ..Policy::default()
    };
    let sluice = Policy {
        target_bytes_per_broker: 0.8 * CAPACITY,
        lag_threshold: Some(2_000_000),
        ..common.clone()
    };
    let keda = Policy {
        lag_threshold: Some(2_000_000),
        ..common.clone()
    };
    let hpa = Policy {
        cpu_target: Some(0.7),
        ..common
    };
    let outcomes = [
        simulate("sluice", &sluice, false),
        simulate("lag-only", &keda, false),
        simulate("cpu-only", &hpa, true),
    ];
    println!(
        "incident: {FEEDS} feeds, produce {} MB/s each (fetch the same), 10x from {SPIKE_FROM}s to {SPIKE_TO}s; \
         broker capacity {} MB/s, start-up {STARTUP}s, decisions every {PERIOD}s, 2..20 brokers",
        BASE / 1e6,
        CAPACITY / 1e6
    );
    println!("| policy | time to capacity | peak lag (records) | backlog gone after spike | broker-minutes |");
    println!("|---|---|---|---|---|");
    let mut csvs = Vec::new();
    for o in &outcomes {
        csvs.push(write_csv(o));
        println!(
            "| {} | {} | {:.0} | {} | {:.0} |",
            o.name,
            o.time_to_capacity()
                .map_or("never".into(), |s| format!("{s} s")),
            o.peak_lag(),
            o.drained_after()
                .map_or("never".into(), |s| format!("{s} s")),
            o.broker_minutes()
        );
    }
    for p in &csvs {
        println!("csv: {}", p.display());
    }
    if let Some(png) = plot(&csvs) {
        println!("plot: {}", png.display());
    }
}
