//! This broker's part in the fleet: heartbeats, following cluster metadata, the
//! controller round, and leading exactly the partitions the assignment gives this
//! incarnation — taking them over, releasing them for a move (then handing them to
//! the move's target), or closing them once another broker has taken them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::Broker;
use crate::coordination::liveness::{write_heartbeat, Heartbeat};
use crate::coordination::PartitionAssignment;
use crate::storage::engine::Claim;
use crate::storage::StorageError;

/// Hand-overs and take-overs run at once.
const MOVE_CONCURRENCY: usize = 16;
/// A full listing of metadata versions this often, in case polling fell behind.
const FULL_REFRESH: Duration = Duration::from_secs(30);
/// How often the schema registry is re-read without a request that needs it: plain
/// JSON names no schema id, so only this brings a version registered on another broker
/// to this one's validators.
const SCHEMA_POLL: Duration = Duration::from_secs(2);

pub async fn beat(broker: &Broker, counter: u64) -> Result<(), StorageError> {
    write_heartbeat(
        &broker.store,
        broker.args.node_id,
        Heartbeat {
            incarnation: broker.engine.incarnation(),
            counter,
        },
    )
    .await
}

/// Starts the fleet tasks. The receiver fires with a reason if this incarnation is
/// fenced or declared dead: it can never acknowledge again and must restart.
pub fn start(
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
) -> (Vec<JoinHandle<()>>, oneshot::Receiver<String>) {
    let (fenced_tx, fenced_rx) = oneshot::channel();
    let tasks = vec![
        tokio::spawn(heartbeat_loop(broker.clone(), stop.clone())),
        tokio::spawn(controller_loop(broker.clone(), stop.clone())),
        tokio::spawn(follow_metadata(broker.clone(), stop.clone())),
        tokio::spawn(follow_schemas(broker.clone(), stop.clone())),
        tokio::spawn(lead_loop(broker.clone(), stop.clone())),
        tokio::spawn(watch_fencing(broker, stop, fenced_tx)),
    ];
    (tasks, fenced_rx)
}

/// A heartbeat every interval, on its own so that a slow controller round (or a slow
/// WAL collection) never makes this broker look dead.
async fn heartbeat_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let every = broker.args.heartbeat_interval();
    let mut counter = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        counter += 1;
        if let Err(e) = beat(&broker, counter).await {
            warn!(error = %e, "heartbeat write failed");
        }
    }
}

/// A controller round every heartbeat interval (it acts only while holding the lease).
async fn controller_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let every = broker.args.heartbeat_interval();
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = broker.controller.tick().await {
            warn!(error = %e, "controller round failed; next one retries");
        }
    }
}

/// Follows a polled document: the next versions every `every`, and a full listing
/// every [`FULL_REFRESH`] as a backstop against having fallen far behind.
async fn follow<F, Fut, E>(
    what: &'static str,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    refresh: F,
) where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
    E: std::fmt::Display,
{
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let full = last_full.elapsed() >= FULL_REFRESH;
        if full {
            last_full = tokio::time::Instant::now();
        }
        if let Err(e) = refresh(full).await {
            debug!(error = %e, what, "refresh failed");
        }
    }
}

fn metadata_poll(broker: &Broker) -> Duration {
    Duration::from_millis(broker.args.metadata_poll_ms.max(10))
}

async fn follow_metadata(broker: Arc<Broker>, stop: watch::Receiver<bool>) {
    let every = metadata_poll(&broker);
    follow("cluster metadata", every, stop, |full| {
        broker.metadata.refresh(full)
    })
    .await
}

async fn follow_schemas(broker: Arc<Broker>, stop: watch::Receiver<bool>) {
    follow("schema registry", SCHEMA_POLL, stop, |full| {
        broker.schemas.refresh(full)
    })
    .await
}

/// Follows the security document (credentials) at the metadata poll interval, so a
/// credential changed through any broker is used by this one within one poll.
pub fn follow_security(broker: Arc<Broker>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = metadata_poll(&broker);
        follow("security state", every, stop, |full| {
            broker.security.store.refresh(full)
        })
        .await
    })
}

async fn lead_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut changes = broker.metadata.subscribe();
    let every = broker.args.heartbeat_interval();
    loop {
        tokio::select! {
            biased;
            _ = changes.changed() => {}
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = reconcile(&broker).await {
            warn!(error = %format!("{e:#}"), "leadership change failed; next round retries");
        }
    }
}

async fn watch_fencing(
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
    fenced: oneshot::Sender<String>,
) {
    let (node, inc) = (broker.args.node_id, broker.engine.incarnation());
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return,
        }
        let reason = if broker.engine.is_fenced() {
            Some("another broker fenced this incarnation's WAL stream".to_string())
        } else {
            match broker.metadata.current().nodes.get(&node) {
                Some(n) if n.incarnation > inc => Some(format!(
                    "incarnation {} of node {node} registered",
                    n.incarnation
                )),
                Some(n) if n.incarnation == inc && !n.alive => {
                    Some("the controller declared this broker dead".to_string())
                }
                _ => None,
            }
        };
        if let Some(reason) = reason {
            let _ = fenced.send(reason);
            return;
        }
    }
}

/// A partition this broker leads with a pending move.
#[derive(Debug, Clone)]
struct HandOff {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    epoch: i32,
    to: i32,
}

/// Makes this broker lead exactly what the current assignment gives this incarnation.
pub async fn reconcile(broker: &Broker) -> anyhow::Result<()> {
    let _one_at_a_time = broker.leadership.lock().await;
    let meta = broker.metadata.current();
    let (me, inc) = (broker.args.node_id, broker.engine.incarnation());
    let mut lead: BTreeMap<(Uuid, i32), Claim> = BTreeMap::new();
    let mut hand_offs = Vec::new();
    for (name, t) in &meta.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader != me || p.leader_incarnation != inc {
                continue;
            }
            match p.target {
                Some(to) if to != me => hand_offs.push(HandOff {
                    topic: name.clone(),
                    topic_id: t.id,
                    partition: i as i32,
                    epoch: p.leader_epoch,
                    to,
                }),
                _ => {
                    lead.insert(
                        (t.id, i as i32),
                        Claim {
                            topic: name.clone(),
                            topic_id: t.id,
                            partition: i as i32,
                            epoch: p.leader_epoch,
                        },
                    );
                }
            }
        }
    }
    for part in broker.engine.partitions() {
        let key = (part.topic_id, part.partition);
        let moving = hand_offs.iter().any(|h| (h.topic_id, h.partition) == key);
        if !lead.contains_key(&key) && !moving {
            stop_coordinating(broker, key).await;
            let taken = meta.topic_by_id(key.0).is_some();
            broker.engine.close_partition(key.0, key.1, taken);
        }
    }
    let mut first_error = None;
    if !hand_offs.is_empty() {
        if let Err(e) = hand_over(broker, hand_offs).await {
            first_error.get_or_insert(e);
        }
    }
    let claims: Vec<Claim> = lead
        .into_values()
        .filter(|c| {
            !matches!(broker.engine.partition(c.topic_id, c.partition), Some(p) if !p.is_closed())
        })
        .collect();
    if !claims.is_empty() {
        let groups = broker.groups.get();
        for (c, r) in broker.engine.take_over(claims).await {
            let loaded = match (r, groups) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(g)) if g.offsets_topic_id() == c.topic_id => {
                    g.load_partition(c.partition).await
                }
                (Ok(_), _) => Ok(()),
            };
            if let Err(e) = loaded {
                warn!(topic = %c.topic, partition = c.partition, error = %e, "could not take over partition");
                first_error.get_or_insert(
                    anyhow::Error::new(e)
                        .context(format!("taking over {}-{}", c.topic, c.partition)),
                );
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Takes over the partitions of a topic just created, while the topic admin still holds
/// its lock (the leaders elsewhere see the new version; the lead loop retries ours).
pub async fn lead_new_topic(broker: &Broker, topic: &str) {
    if broker.groups.get().is_some() {
        if let Err(e) = reconcile(broker).await {
            warn!(topic, error = %format!("{e:#}"), "could not take over the new partitions yet");
        }
    }
}

async fn stop_coordinating(broker: &Broker, (topic_id, partition): (Uuid, i32)) {
    if let Some(g) = broker.groups.get() {
        if g.offsets_topic_id() == topic_id {
            g.unload_partition(partition).await;
        }
    }
}

/// Releases the partitions of pending moves, then gives each to its target with the
/// next epoch, provided the move is still the one that was released.
async fn hand_over(broker: &Broker, hand_offs: Vec<HandOff>) -> anyhow::Result<()> {
    let released: Vec<(HandOff, Result<(), StorageError>)> = futures::stream::iter(hand_offs)
        .map(|h| async move {
            stop_coordinating(broker, (h.topic_id, h.partition)).await;
            let r = broker
                .engine
                .release_partition(h.topic_id, h.partition)
                .await;
            (h, r)
        })
        .buffer_unordered(MOVE_CONCURRENCY)
        .collect()
        .await;
    let mut done = Vec::new();
    let mut first_error = None;
    for (h, r) in released {
        match r {
            Ok(()) => done.push(h),
            Err(e) => {
                warn!(topic = %h.topic, partition = h.partition, error = %e, "could not release partition");
                first_error.get_or_insert(e);
            }
        }
    }
    let (me, inc) = (broker.args.node_id, broker.engine.incarnation());
    let flipped = broker
        .metadata
        .update_if(|m| {
            let nodes = &m.nodes;
            let mut flipped = 0usize;
            for h in &done {
                let Some(p) = m
                    .topics
                    .get_mut(&h.topic)
                    .and_then(|t| t.partitions.get_mut(h.partition as usize))
                else {
                    continue;
                };
                let still_ours = p.leader == me
                    && p.leader_incarnation == inc
                    && p.leader_epoch == h.epoch
                    && p.target == Some(h.to);
                if let (true, Some(n)) = (still_ours, nodes.get(&h.to)) {
                    *p = PartitionAssignment::led_by(n, h.to, h.epoch + 1);
                    flipped += 1;
                }
            }
            Ok::<_, StorageError>((flipped > 0).then_some(flipped))
        })
        .await
        .context("handing released partitions to their targets")?;
    if let Some(n) = flipped {
        info!(partitions = n, "handed partitions over");
    }
    first_error.map_or(Ok(()), |e| Err(e.into()))
}

/// Clean shutdown: releases every partition (so the next leaders need no fence), then
/// deregisters so they fail over at once.
pub async fn hand_over_all(broker: &Broker) -> anyhow::Result<()> {
    let _one_at_a_time = broker.leadership.lock().await;
    let parts = broker.engine.partitions();
    let count = parts.len();
    let results: Vec<Result<(), StorageError>> = futures::stream::iter(parts)
        .map(|p| async move {
            stop_coordinating(broker, (p.topic_id, p.partition)).await;
            broker
                .engine
                .release_partition(p.topic_id, p.partition)
                .await
        })
        .buffer_unordered(MOVE_CONCURRENCY)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    broker
        .controller
        .deregister()
        .await
        .context("deregistering")?;
    info!(
        released = count - failed,
        failed, "released partitions and deregistered"
    );
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
