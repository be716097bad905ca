//! The simulated clients: idempotent producers and a bulk producer ([`produce`]), a
//! consumer that commits its offsets ([`consume`]), the admin that creates the topic and
//! issues moves and drains, and the verifier that reads every partition back once the
//! faults are over ([`admin`]); and what they share: finding brokers, fetching,
//! decoding, recording acknowledgements.

mod admin;
mod consume;
mod produce;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_protocol::record_batch;

use crate::checker::{Acker, RecordId};
use crate::trace::Kind;
use crate::world::{Request, Response, World, GROUP};

pub use admin::admin;
pub use consume::consumer;
pub use produce::{bulk, producer};

fn rng_for(world: &World, who: u64) -> StdRng {
    StdRng::seed_from_u64(world.seed ^ who.wrapping_mul(0x2545_F491_4F6C_DD1D))
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn wait_for_topic(world: &World) {
    while !world.topic_ready.load(Ordering::SeqCst) {
        sleep_ms(50).await;
    }
}

/// The leader of `partition` as some reachable broker's metadata tells it.
async fn find_leader(world: &World, rng: &mut StdRng, partition: i32) -> Option<i32> {
    let first = rng.random_range(1..=world.shape.brokers);
    for i in 0..world.shape.brokers {
        let node = (first - 1 + i) % world.shape.brokers + 1;
        if let Ok(Response::Leader(Some(l))) = world.call(node, Request::Leader { partition }).await
        {
            return Some(l);
        }
    }
    None
}

/// Asks brokers in turn until one answers `request` with something `accept` takes.
async fn ask_any<T>(
    world: &World,
    rng: &mut StdRng,
    request: Request,
    accept: impl Fn(Response) -> Option<T>,
) -> Option<T> {
    let first = rng.random_range(1..=world.shape.brokers);
    for i in 0..world.shape.brokers {
        let node = (first - 1 + i) % world.shape.brokers + 1;
        match world.call(node, request.clone()).await {
            Ok(r) => {
                let shown = format!("{r:?}");
                if let Some(v) = accept(r) {
                    return Some(v);
                }
                world
                    .trace
                    .record(Kind::Client, format!("{request:?} at node {node}: {shown}"));
            }
            Err(e) => world
                .trace
                .record(Kind::Client, format!("{request:?} at node {node}: {e}")),
        }
    }
    None
}

/// An acknowledged produce: traced, and handed to the checker.
fn record_ack(
    world: &World,
    who: &str,
    (partition, base_offset, epoch, by): (i32, i64, i32, Acker),
    ids: &[RecordId],
    note: &str,
) {
    world.trace.record(
        Kind::Client,
        format!(
            "{who}: {partition}@{base_offset} {} records acked by node {} inc {} epoch {epoch}{note}",
            ids.len(),
            by.node,
            by.incarnation
        ),
    );
    world.checker.acked(partition, base_offset, ids, by, epoch);
}

fn is_sequence_error(code: i16) -> bool {
    [
        ResponseError::OutOfOrderSequenceNumber,
        ResponseError::DuplicateSequenceNumber,
        ResponseError::UnknownProducerId,
        ResponseError::InvalidProducerEpoch,
    ]
    .iter()
    .any(|e| e.code() == code)
}

/// Decodes fetched batches: (base offset, leader epoch, next offset, record ids).
pub fn decode(records: &Bytes) -> Vec<(i64, i32, i64, Vec<RecordId>)> {
    let mut out = Vec::new();
    for (h, range) in record_batch::split(records) {
        let ids = match RecordBatchDecoder::decode(&mut records.slice(range)) {
            Ok(set) => set
                .records
                .iter()
                .map(|r| {
                    r.key
                        .as_ref()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default()
                })
                .collect(),
            Err(e) => vec![format!("<undecodable batch: {e}>")],
        };
        out.push((
            h.base_offset,
            h.partition_leader_epoch,
            h.next_offset(),
            ids,
        ));
    }
    out
}

/// Reads one chunk of `partition` from `offset` from its leader.
async fn fetch(
    world: &World,
    rng: &mut StdRng,
    leaders: &mut BTreeMap<i32, i32>,
    partition: i32,
    offset: i64,
) -> Option<(i64, Bytes)> {
    let leader = match leaders.get(&partition) {
        Some(l) => *l,
        None => find_leader(world, rng, partition).await?,
    };
    leaders.insert(partition, leader);
    match world
        .call(leader, Request::Fetch { partition, offset })
        .await
    {
        Ok(Response::Fetch {
            error: 0,
            high_watermark,
            records,
        }) => Some((high_watermark, records)),
        Ok(Response::Fetch { error, .. }) if error == ResponseError::OffsetOutOfRange.code() => {
            world.checker.violation(format!(
                "partition {partition}: offset {offset}, read before, is out of range at node {leader}"
            ));
            leaders.remove(&partition);
            None
        }
        _ => {
            leaders.remove(&partition);
            None
        }
    }
}

async fn coordinator(world: &World, rng: &mut StdRng) -> Option<i32> {
    ask_any(world, rng, Request::FindCoordinator, |r| match r {
        Response::Coordinator(c) => c,
        _ => None,
    })
    .await
}

/// The group's committed offsets, as its coordinator answers them.
async fn committed(world: &World, rng: &mut StdRng) -> Option<Vec<(i32, i64)>> {
    let node = coordinator(world, rng).await?;
    let partitions = (0..world.shape.partitions).collect();
    match world
        .call(node, Request::FetchCommitted { partitions })
        .await
    {
        Ok(Response::Committed(Ok(v))) => {
            for (p, o) in &v {
                world.checker.fetched_commit(GROUP, *p, *o);
            }
            Some(v)
        }
        _ => None,
    }
}
