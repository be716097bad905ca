//! What the fault-injecting store does to each request: the configuration
//! ([`FaultConfig`], also parsed from `--inject-faults`), and [`Faults`], which draws
//! every fault of a request from a pluggable random source before the request starts.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use parking_lot::Mutex;
use rand::{Rng, RngCore};

/// Probabilities (0..=1) per request, latencies, and where faults apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// A put or copy fails before it takes effect.
    pub put_error: f64,
    /// A write (put, copy, delete) takes effect, then the caller gets an error (a
    /// timeout that still succeeded).
    pub lost_ack: f64,
    pub get_error: f64,
    pub list_error: f64,
    /// A delete fails before it takes effect.
    pub delete_error: f64,
    /// Any request answered "503 Slow Down" before it takes effect.
    pub throttle: f64,
    /// A write that takes `slow` longer before it takes effect.
    pub slow_put: f64,
    pub slow: Duration,
    /// Fixed latency before each request takes effect.
    pub latency: Duration,
    /// Plus latency uniform in 0..=`jitter` before, and again after, each request takes
    /// effect, so concurrent requests complete out of order.
    pub jitter: Duration,
    /// Only keys under this prefix are affected (all when `None`).
    pub only: Option<String>,
    /// Faults start this long after the store is opened.
    pub after: Duration,
}

impl FromStr for FaultConfig {
    type Err = String;

    /// `put_error=0.2,put_lost_ack=0.1,get_error=0.1,list_error=0.1,delete_error=0.1,throttle=0.05,latency_ms=5`
    /// (also `slow_put`, `slow_ms`, `jitter_ms`, `only`, `after_ms`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut c = FaultConfig::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            let p = || -> Result<f64, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("{k}: {v:?} is not a probability in [0, 1]"))
            };
            let ms = || -> Result<Duration, String> {
                v.parse()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{k}: {v:?} is not a number of milliseconds"))
            };
            match k {
                "put_error" => c.put_error = p()?,
                "put_lost_ack" | "lost_ack" => c.lost_ack = p()?,
                "get_error" => c.get_error = p()?,
                "list_error" => c.list_error = p()?,
                "delete_error" => c.delete_error = p()?,
                "throttle" => c.throttle = p()?,
                "slow_put" => c.slow_put = p()?,
                "slow_ms" => c.slow = ms()?,
                "latency_ms" => c.latency = ms()?,
                "jitter_ms" => c.jitter = ms()?,
                "after_ms" => c.after = ms()?,
                "only" => c.only = Some(v.to_string()),
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(c)
    }
}

/// The kinds of request, as faults tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Request {
    Put,
    Copy,
    Get,
    List,
    Delete,
}

impl Request {
    fn error(self, c: &FaultConfig) -> f64 {
        match self {
            Request::Put | Request::Copy => c.put_error,
            Request::Get => c.get_error,
            Request::List => c.list_error,
            Request::Delete => c.delete_error,
        }
    }

    fn writes(self) -> bool {
        matches!(self, Request::Put | Request::Copy | Request::Delete)
    }
}

/// What happens to one request, drawn before it starts.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    /// Waits before and after the request takes effect (`None`: no wait at all).
    pub before: Option<Duration>,
    pub after: Option<Duration>,
    pub fail: Option<&'static str>,
    pub lost_ack: bool,
}

/// The fault configuration and the random source every request draws from. One
/// `Faults` may serve many stores: the simulation's brokers share one, so a seed fixes
/// every decision in the order the requests are made.
pub struct Faults {
    config: Mutex<FaultConfig>,
    random: Mutex<Box<dyn RngCore + Send>>,
    opened: Instant,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faults({:?})", self.config.lock())
    }
}

impl Faults {
    /// Faults as `config` says, decided by `random` (any generator: seeded for a
    /// simulation that must replay, from the OS otherwise).
    pub fn new(config: FaultConfig, random: Box<dyn RngCore + Send>) -> Arc<Self> {
        Arc::new(Faults {
            config: Mutex::new(config),
            random: Mutex::new(random),
            opened: Instant::now(),
        })
    }

    /// Changes the configuration for the requests that start from now on.
    pub fn set_config(&self, config: FaultConfig) {
        *self.config.lock() = config;
    }

    pub fn config(&self) -> FaultConfig {
        self.config.lock().clone()
    }

    /// Whether faults apply now to `location` (`None`: a request on no one key).
    fn applies(&self, c: &FaultConfig, location: Option<&Path>) -> bool {
        if self.opened.elapsed() < c.after {
            return false;
        }
        match (&c.only, location) {
            (None, _) => true,
            (Some(prefix), Some(l)) => l.as_ref().starts_with(prefix.as_str()),
            (Some(_), None) => false,
        }
    }

    /// Draws the faults of one request. The order of the draws is part of what a
    /// simulation seed replays: change it and every recorded seed means another run.
    pub(super) fn plan(&self, request: Request, location: Option<&Path>) -> Plan {
        let c = self.config();
        if !self.applies(&c, location) {
            return Plan::default();
        }
        let mut rng = self.random.lock();
        let jitter = c.jitter.as_millis() as u64;
        let mut latency = || Duration::from_millis(rng.random_range(0..=jitter));
        let before = c.latency + latency();
        let after = latency();
        let fail = if rng.random_bool(c.throttle) {
            Some("503 Slow Down")
        } else if rng.random_bool(request.error(&c)) {
            Some("request failed")
        } else {
            None
        };
        let slow = request.writes() && rng.random_bool(c.slow_put);
        let lost_ack = request.writes() && rng.random_bool(c.lost_ack);
        let before = before + if slow { c.slow } else { Duration::ZERO };
        // With jitter every request waits (even 0 ms: a timer tick); without, only for
        // a latency that is there.
        let wait = |d: Duration| (jitter > 0 || !d.is_zero()).then_some(d);
        Plan {
            before: wait(before),
            after: wait(after),
            fail,
            lost_ack,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn parses_a_fault_spec_and_refuses_nonsense() {
        let c: FaultConfig = "put_error=0.2, put_lost_ack=0.1,latency_ms=5,jitter_ms=3"
            .parse()
            .unwrap();
        assert_eq!(c.put_error, 0.2);
        assert_eq!(c.lost_ack, 0.1);
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.jitter, Duration::from_millis(3));
        assert!("put_error=2".parse::<FaultConfig>().is_err());
        assert!("bogus=0.1".parse::<FaultConfig>().is_err());
        assert!("latency_ms=soon".parse::<FaultConfig>().is_err());
    }

    fn seeded(config: FaultConfig, seed: u64) -> Arc<Faults> {
        Faults::new(config, Box::new(StdRng::seed_from_u64(seed)))
    }

    #[test]
    fn a_seed_decides_every_plan() {
        let config = FaultConfig {
            put_error: 0.3,
            lost_ack: 0.3,
            throttle: 0.1,
            slow_put: 0.2,
            slow: Duration::from_millis(500),
            jitter: Duration::from_millis(20),
            ..Default::default()
        };
        let plans = |seed| {
            let f = seeded(config.clone(), seed);
            (0..200)
                .map(|i| {
                    let r = [Request::Put, Request::Get, Request::Delete][i % 3];
                    format!("{:?}", f.plan(r, None))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(plans(7), plans(7));
        assert_ne!(plans(7), plans(8));
    }

    #[test]
    fn reads_are_never_slow_and_never_lose_answers() {
        let f = seeded(
            FaultConfig {
                lost_ack: 1.0,
                slow_put: 1.0,
                slow: Duration::from_secs(3),
                ..Default::default()
            },
            1,
        );
        let read = f.plan(Request::Get, None);
        assert!(!read.lost_ack);
        assert_eq!(read.before, None, "no latency configured: no wait");
        let write = f.plan(Request::Delete, None);
        assert!(write.lost_ack);
        assert_eq!(write.before, Some(Duration::from_secs(3)));
        assert_eq!(write.after, None);
    }

    #[test]
    fn errors_follow_the_kind_of_request() {
        let f = seeded(
            FaultConfig {
                get_error: 1.0,
                ..Default::default()
            },
            1,
        );
        assert_eq!(f.plan(Request::Get, None).fail, Some("request failed"));
        assert_eq!(f.plan(Request::List, None).fail, None);
        assert_eq!(f.plan(Request::Put, None).fail, None);
    }
}
