//! The producers: idempotent ones with one batch in flight, retried until
//! acknowledged, and a bulk producer that fills the brokers' produce buffers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use rand::Rng;
use sluice_protocol::record_batch::{self, NewRecord, ProducerFields};

use super::{
    ask_any, find_leader, is_sequence_error, record_ack, rng_for, sleep_ms, wait_for_topic,
};
use crate::checker::RecordId;
use crate::trace::{now, Kind};
use crate::world::{Request, Response, World};

/// An idempotent producer: one batch in flight, retried until acknowledged.
pub async fn producer(world: Arc<World>, id: u64) -> turmoil::Result {
    let mut rng = rng_for(&world, 100 + id);
    wait_for_topic(&world).await;
    let mut producer_id: Option<i64> = None;
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    let mut n = 0u64;
    // Retries of the last batch go on through the heal, then give up.
    while !world.stop_producing.load(Ordering::SeqCst) {
        let pid = match producer_id {
            Some(p) => p,
            None => {
                let got = ask_any(&world, &mut rng, Request::InitProducerId, |r| match r {
                    Response::ProducerId(p) => p,
                    _ => None,
                })
                .await;
                match got {
                    Some(p) => {
                        producer_id = Some(p);
                        sequences.clear();
                        p
                    }
                    None => {
                        world
                            .trace
                            .record(Kind::Client, format!("producer {id}: no producer id yet"));
                        sleep_ms(100).await;
                        continue;
                    }
                }
            }
        };
        let partition = rng.random_range(0..world.shape.partitions);
        let count = rng.random_range(1..=4usize);
        let pad = if rng.random_bool(0.1) {
            rng.random_range(0..8192)
        } else {
            16
        };
        let ids: Vec<RecordId> = (0..count).map(|r| format!("p{id}.{n}.{r}")).collect();
        n += 1;
        let sequence = *sequences.get(&partition).unwrap_or(&0);
        let batch = record_batch::encode_batch(
            ids.iter().enumerate().map(|(i, r)| NewRecord {
                key: Some(Bytes::from(r.clone())),
                value: Some(Bytes::from(vec![b'x'; pad])),
                timestamp: 1_700_000_000_000 + now().as_millis() as i64 + i as i64,
            }),
            Some(ProducerFields {
                producer_id: pid,
                epoch: 0,
                base_sequence: sequence,
            }),
            Compression::None,
        );
        let mut attempt = 0u32;
        let acked = loop {
            attempt += 1;
            let leader = match leaders.get(&partition) {
                Some(l) => Some(*l),
                None => find_leader(&world, &mut rng, partition).await,
            };
            let Some(leader) = leader else {
                sleep_ms(100).await;
                if world.healed.load(Ordering::SeqCst) && attempt > 400 {
                    break false;
                }
                continue;
            };
            leaders.insert(partition, leader);
            let r = world
                .call(
                    leader,
                    Request::Produce {
                        partition,
                        batch: batch.clone(),
                    },
                )
                .await;
            match r {
                Ok(Response::Produce {
                    error: 0,
                    base_offset,
                    epoch,
                    by,
                }) => {
                    record_ack(
                        &world,
                        &format!("producer {id}"),
                        (partition, base_offset, epoch, by),
                        &ids,
                        &format!(" (attempt {attempt})"),
                    );
                    break true;
                }
                Ok(Response::Produce { error, .. }) if is_sequence_error(error) => {
                    world.checker.violation(format!(
                        "producer {id}: batch {} of partition {partition} (sequence {sequence}, attempt {attempt}) refused with {:?}",
                        ids[0],
                        ResponseError::try_from_code(error)
                    ));
                    break false;
                }
                other => {
                    let why = match other {
                        Ok(Response::Produce { error, .. }) => {
                            format!("{:?}", ResponseError::try_from_code(error))
                        }
                        Ok(other) => format!("{other:?}"),
                        Err(e) => e.to_string(),
                    };
                    world.trace.record(
                        Kind::Client,
                        format!("producer {id}: {partition} via node {leader}: {why}"),
                    );
                    leaders.remove(&partition);
                    sleep_ms(rng.random_range(20..200)).await;
                    if world.healed.load(Ordering::SeqCst) && attempt > 400 {
                        break false;
                    }
                }
            }
        };
        if acked {
            sequences.insert(partition, sequence.wrapping_add(count as i32));
        } else {
            // Whether the batch landed is unknown: start over as a new producer.
            world.trace.record(
                Kind::Client,
                format!("producer {id}: gave up on {}", ids[0]),
            );
            producer_id = None;
        }
        sleep_ms(rng.random_range(0..40)).await;
    }
    world.producers_done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// A bulk producer without idempotence: `lanes` batches of a few KiB in flight at
/// once, each sent once (never retried, so never duplicated), enough to fill the
/// brokers' produce buffer when the bucket is slow and make them throttle.
pub async fn bulk(world: Arc<World>, lanes: u64) -> turmoil::Result {
    wait_for_topic(&world).await;
    let lane = |lane: u64| {
        let world = world.clone();
        async move {
            let mut rng = rng_for(&world, 1_000 + lane);
            let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
            let mut n = 0u64;
            while !world.stop_producing.load(Ordering::SeqCst) {
                let partition = rng.random_range(0..world.shape.partitions);
                let ids: Vec<RecordId> = (0..rng.random_range(1..=3))
                    .map(|r| format!("b{lane}.{n}.{r}"))
                    .collect();
                n += 1;
                let size = rng.random_range(1_000..6_000);
                let batch = record_batch::encode_batch(
                    ids.iter().map(|r| NewRecord {
                        key: Some(Bytes::from(r.clone())),
                        value: Some(Bytes::from(vec![b'y'; size])),
                        timestamp: 1_700_000_000_000 + now().as_millis() as i64,
                    }),
                    None,
                    Compression::None,
                );
                let leader = match leaders.get(&partition) {
                    Some(l) => Some(*l),
                    None => find_leader(&world, &mut rng, partition).await,
                };
                let Some(leader) = leader else {
                    sleep_ms(100).await;
                    continue;
                };
                leaders.insert(partition, leader);
                match world
                    .call(leader, Request::Produce { partition, batch })
                    .await
                {
                    Ok(Response::Produce {
                        error: 0,
                        base_offset,
                        epoch,
                        by,
                    }) => {
                        record_ack(
                            &world,
                            &format!("bulk {lane}"),
                            (partition, base_offset, epoch, by),
                            &ids,
                            "",
                        );
                    }
                    other => {
                        if let Ok(Response::Produce { error, .. }) = other {
                            world.trace.record(
                                Kind::Client,
                                format!(
                                    "bulk {lane}: {partition} via node {leader}: {:?}",
                                    ResponseError::try_from_code(error)
                                ),
                            );
                        }
                        leaders.remove(&partition);
                        sleep_ms(rng.random_range(20..200)).await;
                    }
                }
            }
        }
    };
    futures::future::join_all((0..lanes).map(lane)).await;
    world.producers_done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}
