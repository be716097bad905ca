//! The event trace of one run: every fault, every store operation and its outcome,
//! every acknowledgement, commit and violation, stamped with simulated time. Two runs
//! of one seed must produce the same trace byte for byte.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// What kind of line it is, so a printed trace can leave the noisy ones out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An object store request.
    Store,
    /// A client request and its answer.
    Client,
    /// A fault, crash, restart or heal.
    Fault,
    /// A broken invariant.
    Violation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub at: Duration,
    pub kind: Kind,
    pub text: String,
}

/// Shared, append-only.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    lines: Arc<Mutex<Vec<Line>>>,
}

/// Simulated time as the running host sees it (the driver passes its own).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl Trace {
    pub fn record(&self, kind: Kind, text: impl Into<String>) {
        self.record_at(now(), kind, text)
    }

    pub fn record_at(&self, at: Duration, kind: Kind, text: impl Into<String>) {
        self.lines.lock().push(Line {
            at,
            kind,
            text: text.into(),
        });
    }

    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lines.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole trace as text (what the determinism test compares).
    pub fn render(&self, min_kind: Kind) -> String {
        let mut out = String::new();
        for l in self.lines.lock().iter().filter(|l| l.kind >= min_kind) {
            let _ = writeln!(
                out,
                "{:>10.3}s {:<9} {}",
                l.at.as_secs_f64(),
                format!("{:?}", l.kind).to_lowercase(),
                l.text
            );
        }
        out
    }
}
