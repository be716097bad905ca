//! `sluice-sim`: runs seeds of the deterministic simulation, replays one, and prints a
//! failing seed's replay command and minimised trace.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use sluice_sim::report::{failure, selected};
use sluice_sim::trace::Kind;
use sluice_sim::{run, run_seeds, RunConfig};

#[derive(Debug, Parser)]
#[command(
    name = "sluice-sim",
    about = "Deterministic simulation of Sluice's storage and leadership protocol"
)]
struct Args {
    /// Replay one seed and print its trace.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, A..B (B excluded).
    #[arg(long, default_value = "0..20")]
    seeds: String,
    /// Simulated seconds of faults per seed (then everything heals and is checked).
    #[arg(long, default_value_t = 20)]
    sim_secs: u64,
    /// With --seed: keep only these schedule events (comma-separated indexes), as a
    /// minimised replay prints them.
    #[arg(long, value_delimiter = ',')]
    keep_events: Option<Vec<usize>>,
    /// With --seed: no schedule events at all (as a minimised replay prints).
    #[arg(long, conflicts_with = "keep_events")]
    no_events: bool,
    /// With --seed: no background object-store faults (as a minimised replay prints).
    #[arg(long)]
    no_background: bool,
    /// Which trace lines to print: fault (faults and violations), client, or store (all).
    #[arg(long, default_value = "fault")]
    trace: String,
    /// Runs at most this many times to shrink a failing schedule (0: do not shrink).
    #[arg(long, default_value_t = 40)]
    shrink_runs: usize,
    /// Broker logs (tracing, filtered by RUST_LOG) on stderr.
    #[arg(long)]
    log: bool,
}

fn parse_range(s: &str) -> anyhow::Result<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..").context("--seeds takes A..B")?;
    let (a, b) = (a.parse()?, b.parse()?);
    if a >= b {
        bail!("--seeds {s}: empty range");
    }
    Ok(a..b)
}

fn level(s: &str) -> anyhow::Result<Kind> {
    Ok(match s {
        "fault" => Kind::Fault,
        "client" => Kind::Client,
        "store" => Kind::Store,
        other => bail!("--trace {other}: expected fault, client or store"),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let min = level(&args.trace)?;
    if let Some(seed) = args.seed {
        let config = RunConfig::new(seed, args.sim_secs);
        let keep = if args.no_events {
            Some(Vec::new())
        } else {
            args.keep_events.clone()
        };
        let schedule = selected(&config, keep.as_deref(), args.no_background);
        let started = Instant::now();
        let outcome = run(&config, &schedule);
        print!("{}", outcome.trace.render(min));
        println!(
            "seed {seed}: {} brokers, {} partitions, {} events, {:.1} simulated s in {:.1} s, {} records acknowledged, {}",
            config.shape.brokers,
            config.shape.partitions,
            schedule.events.len(),
            outcome.simulated.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            outcome.acked,
            if outcome.failed() { "FAILED" } else { "ok" }
        );
        if outcome.failed() {
            eprint!(
                "{}",
                failure(&config, &schedule, &outcome, args.shrink_runs)
            );
            std::process::exit(1);
        }
        return Ok(());
    }
    let range = parse_range(&args.seeds)?;
    let stats = run_seeds(range, args.sim_secs, |config, schedule, outcome| {
        eprint!("{}", failure(config, schedule, outcome, args.shrink_runs))
    });
    println!(
        "{} seeds, {:.2} simulated hours, {} records acknowledged, {:.1} s: {:.2} seeds/s; failed: {:?}",
        stats.seeds,
        stats.simulated.as_secs_f64() / 3600.0,
        stats.acked,
        stats.wall.as_secs_f64(),
        stats.seeds as f64 / stats.wall.as_secs_f64(),
        stats.failed
    );
    if !stats.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
