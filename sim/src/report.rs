//! What a failing seed prints: its violations, the command that replays it, and the
//! trace of its minimised schedule.

use std::fmt::Write as _;

use crate::bucket::FaultRates;
use crate::run::{run, shrink, Outcome, RunConfig};
use crate::schedule::Schedule;
use crate::trace::Kind;

/// `config`'s schedule reduced to the events at `keep` (all when `None`), without
/// background faults if asked: what a replay command names.
pub fn selected(config: &RunConfig, keep: Option<&[usize]>, no_background: bool) -> Schedule {
    let mut s = config.schedule();
    if let Some(keep) = keep {
        s.events = keep
            .iter()
            .filter_map(|i| s.events.get(*i).copied())
            .collect();
    }
    if no_background {
        s.background = FaultRates::NONE;
    }
    s
}

/// The command that replays `reduced`, a part of `config`'s schedule.
pub fn replay_command(config: &RunConfig, reduced: &Schedule) -> String {
    let full = config.schedule();
    let mut cmd = format!(
        "cargo run -p sluice-sim --release -- --seed {} --sim-secs {}",
        config.seed, config.shape.fault_secs
    );
    if reduced.events != full.events {
        let keep: Vec<String> = full
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| reduced.events.contains(e))
            .map(|(i, _)| i.to_string())
            .collect();
        if keep.is_empty() {
            cmd.push_str(" --no-events");
        } else {
            let _ = write!(cmd, " --keep-events={}", keep.join(","));
        }
    }
    if reduced.background != full.background {
        cmd.push_str(" --no-background");
    }
    cmd
}

/// The report of a failing run: violations, replay command, and (with a shrinking
/// budget) the minimised schedule's replay command and trace.
pub fn failure(
    config: &RunConfig,
    schedule: &Schedule,
    outcome: &Outcome,
    shrink_runs: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "seed {} FAILED ({} violations):",
        config.seed,
        outcome.violations.len()
    );
    for v in outcome.violations.iter().take(10) {
        let _ = writeln!(out, "  - {v}");
    }
    let _ = writeln!(out, "replay: {}", replay_command(config, schedule));
    if shrink_runs == 0 {
        return out;
    }
    let small = shrink(config, schedule, shrink_runs);
    let again = run(config, &small);
    let _ = writeln!(
        out,
        "minimised to {} of {} events: {}",
        small.events.len(),
        schedule.events.len(),
        replay_command(config, &small)
    );
    out.push_str(&again.trace.render(Kind::Fault));
    out
}
