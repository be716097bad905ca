//! Rates per quota holder and the throttle time that brings a holder back under its
//! quota, as Kafka computes them: the rate over a window of eleven 1 s samples, and a
//! throttle of `(rate - quota) / quota × window`, so that a client that waits it out
//! lands exactly at its quota. Idle holders are forgotten, so memory follows the
//! clients that are active.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::quotas::QuotaKey;

const SAMPLE: Duration = Duration::from_secs(1);
const SAMPLES: usize = 11;
/// The longest throttle (Kafka caps it at the quota window too).
const MAX_THROTTLE: Duration = Duration::from_secs(SAMPLES as u64);
/// Holders without a request for this long are dropped when the table is swept.
const IDLE: Duration = Duration::from_secs(60);
const SWEEP_AT: usize = 10_000;

/// What is measured: produce bytes, fetch bytes, request handling time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    ProduceBytes,
    FetchBytes,
    /// Handling time, in percent of one second per second.
    RequestPercent,
}

#[derive(Default)]
pub struct Throttler {
    rates: Mutex<HashMap<(Measure, QuotaKey), Rate>>,
}

impl Throttler {
    /// Records `value` for `key` and returns how long it must wait to be back under
    /// `quota` (zero when it is under).
    pub fn record(
        &self,
        measure: Measure,
        key: &QuotaKey,
        value: f64,
        quota: f64,
        now: Instant,
    ) -> Duration {
        let mut rates = self.rates.lock();
        if rates.len() >= SWEEP_AT {
            rates.retain(|_, r| now.saturating_duration_since(r.last) < IDLE);
        }
        let rate = rates
            .entry((measure, key.clone()))
            .or_insert_with(|| Rate::new(now));
        rate.record(value, now);
        let (observed, window) = rate.rate(now);
        if observed <= quota {
            return Duration::ZERO;
        }
        let wait = window.as_secs_f64() * (observed - quota) / quota;
        Duration::from_secs_f64(wait.min(MAX_THROTTLE.as_secs_f64()))
    }
}

struct Rate {
    samples: VecDeque<(Instant, f64)>,
    last: Instant,
}

impl Rate {
    fn new(now: Instant) -> Self {
        Rate {
            samples: VecDeque::from([(now, 0.0)]),
            last: now,
        }
    }

    fn record(&mut self, value: f64, now: Instant) {
        let current = self.samples.back().map_or(now, |s| s.0);
        if now.saturating_duration_since(current) >= SAMPLE {
            self.samples.push_back((now, 0.0));
        }
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
        if let Some(s) = self.samples.back_mut() {
            s.1 += value;
        }
        self.last = now;
    }

    /// The rate per second over the samples still in the window, and that window
    /// (at least one sample long, so a first burst is not divided by nothing).
    fn rate(&mut self, now: Instant) -> (f64, Duration) {
        let horizon = SAMPLE * SAMPLES as u32;
        while self
            .samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.0) > horizon)
        {
            self.samples.pop_front();
        }
        let total: f64 = self.samples.iter().map(|s| s.1).sum();
        let start = self.samples.front().map_or(now, |s| s.0);
        let window = now.saturating_duration_since(start).max(SAMPLE);
        (total / window.as_secs_f64(), window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> QuotaKey {
        QuotaKey {
            user: "alice".into(),
            client_id: String::new(),
        }
    }

    #[test]
    fn a_burst_waits_until_the_rate_is_back_at_the_quota() {
        let t = Throttler::default();
        let now = Instant::now();
        // 1 MB/s quota, 5 MB at once: 4 s over in a 1 s window.
        let wait = t.record(Measure::ProduceBytes, &key(), 5e6, 1e6, now);
        assert_eq!(wait, Duration::from_secs(4));
        // Having waited, the same holder is at its quota (5 MB over 5 s).
        let later = now + Duration::from_secs(5);
        assert_eq!(
            t.record(Measure::ProduceBytes, &key(), 0.0, 1e6, later),
            Duration::ZERO
        );
        // Under the quota nothing waits; other measures and holders are separate.
        assert_eq!(
            t.record(Measure::FetchBytes, &key(), 1e5, 1e6, later),
            Duration::ZERO
        );
    }

    #[test]
    fn steady_traffic_under_the_quota_is_never_throttled() {
        let t = Throttler::default();
        let start = Instant::now();
        for i in 0..300 {
            let now = start + Duration::from_millis(100 * i);
            assert_eq!(
                t.record(Measure::ProduceBytes, &key(), 9e4, 1e6, now),
                Duration::ZERO
            );
        }
    }

    #[test]
    fn throttle_is_capped() {
        let t = Throttler::default();
        let wait = t.record(Measure::RequestPercent, &key(), 1e9, 1.0, Instant::now());
        assert_eq!(wait, MAX_THROTTLE);
    }
}
