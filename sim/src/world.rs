//! What the simulated hosts share: the bucket, the trace and checker, the simulated
//! connections between clients and brokers, and the driver's instructions to hosts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::bucket::Bucket;
use crate::checker::{Acker, Checker};
use crate::schedule::Shape;
use crate::trace::Trace;

/// The topic the producers write.
pub const TOPIC: &str = "events";
/// The consumer group.
pub const GROUP: &str = "sim";
/// How long a client waits for an answer.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Broker settings: short timers, so that a few simulated seconds see many rounds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat_ms: u64,
    pub session_timeout_ms: u64,
    pub metadata_poll_ms: u64,
    pub max_pending_bytes: usize,
    pub cache_bytes: u64,
}

pub const TIMING: Timing = Timing {
    heartbeat_ms: 200,
    session_timeout_ms: 1_500,
    metadata_poll_ms: 50,
    max_pending_bytes: 32 * 1024,
    cache_bytes: 8 * 1024 * 1024,
};

/// A request from a simulated client, answered by a broker's real handlers.
#[derive(Debug, Clone)]
pub enum Request {
    CreateTopic,
    Leader { partition: i32 },
    InitProducerId,
    Produce { partition: i32, batch: Bytes },
    Fetch { partition: i32, offset: i64 },
    FindCoordinator,
    Commit { offsets: Vec<(i32, i64)> },
    FetchCommitted { partitions: Vec<i32> },
    Move { partition: i32, to: i32 },
    Drain { node: i32, on: bool },
}

#[derive(Debug, Clone)]
pub enum Response {
    Done(Result<(), String>),
    Leader(Option<i32>),
    ProducerId(Option<i64>),
    Produce {
        error: i16,
        base_offset: i64,
        /// The epoch of the partition that took the append (read just before it).
        epoch: i32,
        by: Acker,
    },
    Fetch {
        error: i16,
        high_watermark: i64,
        records: Bytes,
    },
    Coordinator(Option<i32>),
    Commit(Vec<(i32, i16)>),
    Committed(Result<Vec<(i32, i64)>, i16>),
}

pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("broker unreachable")]
    Unreachable,
    #[error("connection closed before the answer")]
    Reset,
    #[error("no answer in time")]
    Timeout,
}

/// Instructions from the driver to a broker host, polled by the host.
#[derive(Debug, Default)]
struct Control {
    clock_jumps: BTreeMap<i32, u64>,
    graceful: BTreeSet<i32>,
    restart_wanted: BTreeSet<i32>,
    boots: BTreeMap<i32, u64>,
}

pub struct World {
    pub seed: u64,
    pub shape: Shape,
    pub trace: Trace,
    pub checker: Arc<Checker>,
    pub bucket: Arc<Bucket>,
    pub topic_id: Uuid,
    endpoints: Mutex<BTreeMap<i32, mpsc::UnboundedSender<Call>>>,
    client_cut: Mutex<BTreeSet<i32>>,
    control: Mutex<Control>,
    admin: Mutex<VecDeque<Request>>,
    pub topic_ready: AtomicBool,
    /// Producers stop starting new batches.
    pub stop_producing: AtomicBool,
    /// Faults are over: the verifier may start once producers are done.
    pub healed: AtomicBool,
    pub producers_done: AtomicUsize,
    pub producers: usize,
}

impl World {
    pub fn new(
        seed: u64,
        shape: Shape,
        trace: Trace,
        checker: Arc<Checker>,
        bucket: Arc<Bucket>,
        producers: usize,
    ) -> Self {
        World {
            seed,
            shape,
            trace,
            checker,
            bucket,
            topic_id: Uuid::from_u64_pair(seed, 0x5eed),
            endpoints: Mutex::new(BTreeMap::new()),
            client_cut: Mutex::new(BTreeSet::new()),
            control: Mutex::new(Control::default()),
            admin: Mutex::new(VecDeque::new()),
            topic_ready: AtomicBool::new(false),
            stop_producing: AtomicBool::new(false),
            healed: AtomicBool::new(false),
            producers_done: AtomicUsize::new(0),
            producers,
        }
    }

    pub fn brokers(&self) -> impl Iterator<Item = i32> {
        1..=self.shape.brokers
    }

    /// Calls `node` as a client would: unreachable when cut off or down, reset when
    /// the broker dies before answering.
    pub async fn call(&self, node: i32, request: Request) -> Result<Response, CallError> {
        if self.client_cut.lock().contains(&node) {
            tokio::time::sleep(RPC_TIMEOUT).await;
            return Err(CallError::Unreachable);
        }
        let tx = self.endpoints.lock().get(&node).cloned();
        let Some(tx) = tx else {
            // Connection refused comes back fast.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(CallError::Unreachable);
        };
        let (reply, answer) = oneshot::channel();
        if tx.send(Call { request, reply }).is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(CallError::Unreachable);
        }
        match tokio::time::timeout(RPC_TIMEOUT, answer).await {
            Ok(Ok(_)) if self.client_cut.lock().contains(&node) => Err(CallError::Timeout),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(CallError::Reset),
            Err(_) => Err(CallError::Timeout),
        }
    }

    pub fn set_endpoint(&self, node: i32, tx: Option<mpsc::UnboundedSender<Call>>) {
        let mut e = self.endpoints.lock();
        match tx {
            Some(tx) => e.insert(node, tx),
            None => e.remove(&node),
        };
    }

    pub fn cut_clients(&self, node: i32, cut: bool) {
        let mut c = self.client_cut.lock();
        if cut {
            c.insert(node);
        } else {
            c.remove(&node);
        }
    }

    pub fn heal_clients(&self) {
        self.client_cut.lock().clear();
    }

    pub fn jump_clock(&self, node: i32, ms: u64) {
        *self.control.lock().clock_jumps.entry(node).or_default() += ms;
    }

    pub fn take_clock_jump(&self, node: i32) -> Option<u64> {
        self.control.lock().clock_jumps.remove(&node)
    }

    pub fn request_graceful(&self, node: i32) {
        self.control.lock().graceful.insert(node);
    }

    pub fn take_graceful(&self, node: i32) -> bool {
        self.control.lock().graceful.remove(&node)
    }

    /// The host's software ended (fenced, or a clean shutdown): its supervisor
    /// restarts it.
    pub fn want_restart(&self, node: i32) {
        self.control.lock().restart_wanted.insert(node);
    }

    pub fn take_restarts(&self) -> Vec<i32> {
        std::mem::take(&mut self.control.lock().restart_wanted)
            .into_iter()
            .collect()
    }

    /// How many times `node` has booted (seeds its store's jitter).
    pub fn boot(&self, node: i32) -> u64 {
        let mut c = self.control.lock();
        let b = c.boots.entry(node).or_default();
        *b += 1;
        *b
    }

    pub fn queue_admin(&self, r: Request) {
        self.admin.lock().push_back(r);
    }

    pub fn next_admin(&self) -> Option<Request> {
        self.admin.lock().pop_front()
    }
}
