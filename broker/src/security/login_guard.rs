//! Failed logins, counted per source address and slowed down: each failure in a row from
//! one address doubles the delay before the refusal is sent (Kafka delays by a fixed
//! `connection.failed.authentication.delay.ms`), so guessing passwords costs time while
//! one mistyped password costs a user almost nothing. Memory stays bounded however many
//! addresses try.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A source's run of failures ends after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Doublings of the base delay at most (100 ms becomes at most 6.4 s).
const MAX_DOUBLINGS: u32 = 6;
/// Sources remembered at most; beyond, the quietest are forgotten.
const MAX_SOURCES: usize = 10_000;

pub struct LoginGuard {
    base_delay: Duration,
    sources: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Failures since the guard started (for logs and `/v1/security`).
    total: u64,
    /// Failures in the current run, which set the delay.
    in_a_row: u32,
    last: Instant,
}

/// What the guard decided about one failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub failures_from_source: u64,
    pub delay: Duration,
}

impl LoginGuard {
    pub fn new(base_delay: Duration) -> Self {
        LoginGuard {
            base_delay,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed login from `source`; the refusal is to be sent after `delay`.
    pub fn failed(&self, source: IpAddr, now: Instant) -> Refusal {
        let mut sources = self.sources.lock();
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            forget_quietest(&mut sources, now);
        }
        let f = sources.entry(source).or_insert(Failures {
            total: 0,
            in_a_row: 0,
            last: now,
        });
        if now.saturating_duration_since(f.last) > FORGET_AFTER {
            f.in_a_row = 0;
        }
        f.total += 1;
        f.in_a_row = f.in_a_row.saturating_add(1);
        f.last = now;
        Refusal {
            failures_from_source: f.total,
            delay: self.base_delay * 2u32.pow((f.in_a_row - 1).min(MAX_DOUBLINGS)),
        }
    }

    /// A successful login ends the source's run of failures.
    pub fn succeeded(&self, source: IpAddr) {
        if let Some(f) = self.sources.lock().get_mut(&source) {
            f.in_a_row = 0;
        }
    }

    /// Failures per source since start, most first (at most `limit`).
    pub fn top_sources(&self, limit: usize) -> Vec<(IpAddr, u64)> {
        let mut all: Vec<(IpAddr, u64)> = self
            .sources
            .lock()
            .iter()
            .map(|(ip, f)| (*ip, f.total))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }
}

/// Drops sources quiet for [`FORGET_AFTER`], or else the older half.
fn forget_quietest(sources: &mut HashMap<IpAddr, Failures>, now: Instant) {
    sources.retain(|_, f| now.saturating_duration_since(f.last) <= FORGET_AFTER);
    if sources.len() >= MAX_SOURCES {
        let mut lasts: Vec<Instant> = sources.values().map(|f| f.last).collect();
        lasts.sort();
        let cut = lasts[lasts.len() / 2];
        sources.retain(|_, f| f.last > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_failure_in_a_row_and_resets() {
        let g = LoginGuard::new(Duration::from_millis(100));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        let delays: Vec<u64> = (0..9)
            .map(|_| g.failed(ip, t).delay.as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 6400, 6400]);
        g.succeeded(ip);
        assert_eq!(g.failed(ip, t).delay, Duration::from_millis(100));
        let later = t + FORGET_AFTER + Duration::from_secs(1);
        g.failed(ip, t);
        assert_eq!(g.failed(ip, later).delay, Duration::from_millis(100));
        assert_eq!(g.top_sources(5), vec![(ip, 12)]);
    }

    #[test]
    fn memory_is_bounded_by_sources() {
        let g = LoginGuard::new(Duration::from_millis(1));
        let t = Instant::now();
        for i in 0..(MAX_SOURCES as u32 * 3) {
            let ip = IpAddr::from(i.to_be_bytes());
            g.failed(ip, t + Duration::from_millis(i as u64));
        }
        assert!(g.sources.lock().len() <= MAX_SOURCES);
    }
}
