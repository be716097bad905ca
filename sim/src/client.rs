//! The simulated clients: idempotent producers, a consumer that commits its offsets,
//! the admin that creates the topic and issues moves and drains, and the verifier that
//! reads every partition back once the faults are over.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_protocol::record_batch::{self, NewRecord, ProducerFields};

use crate::checker::{Acker, RecordId};
use crate::trace::{now, Kind};
use crate::world::{Request, Response, World, GROUP};

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

/// A consumer of every partition that commits as it goes and now and then restarts
/// from its committed offsets.
pub async fn consumer(world: Arc<World>) -> turmoil::Result {
    let mut rng = rng_for(&world, 7);
    wait_for_topic(&world).await;
    let mut leaders = BTreeMap::new();
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut restart = true;
    let mut rounds = 0u64;
    while !world.healed.load(Ordering::SeqCst) {
        if restart {
            match committed(&world, &mut rng).await {
                Some(c) => {
                    positions = c.into_iter().map(|(p, o)| (p, o.max(0))).collect();
                    world
                        .trace
                        .record(Kind::Client, format!("consumer: starts from {positions:?}"));
                    restart = false;
                }
                None => {
                    sleep_ms(100).await;
                    continue;
                }
            }
        }
        for p in 0..world.shape.partitions {
            let pos = *positions.get(&p).unwrap_or(&0);
            let Some((_, records)) = fetch(&world, &mut rng, &mut leaders, p, pos).await else {
                continue;
            };
            let mut next = pos;
            for (base, _, end, ids) in decode(&records) {
                if base != next {
                    world.checker.violation(format!(
                        "consumer: partition {p} batch at {base} where {next} was expected"
                    ));
                }
                for (i, r) in ids.iter().enumerate() {
                    world.checker.read(p, base + i as i64, r);
                }
                next = end;
            }
            positions.insert(p, next);
        }
        rounds += 1;
        if rounds % 5 == 0 {
            if let Some(node) = coordinator(&world, &mut rng).await {
                let offsets: Vec<(i32, i64)> = positions.iter().map(|(p, o)| (*p, *o)).collect();
                if let Ok(Response::Commit(codes)) = world
                    .call(
                        node,
                        Request::Commit {
                            offsets: offsets.clone(),
                        },
                    )
                    .await
                {
                    for ((p, o), (_, code)) in offsets.iter().zip(codes) {
                        if code == 0 {
                            world.checker.committed(GROUP, *p, *o);
                        }
                    }
                    world
                        .trace
                        .record(Kind::Client, format!("consumer: committed {offsets:?}"));
                }
            }
        }
        if rng.random_bool(0.03) {
            restart = true;
        }
        sleep_ms(rng.random_range(10..100)).await;
    }
    Ok(())
}

/// Creates the topic, then issues the moves and drains the driver queues.
pub async fn admin(world: Arc<World>) -> turmoil::Result {
    let mut rng = rng_for(&world, 3);
    loop {
        let ok = ask_any(&world, &mut rng, Request::CreateTopic, |r| match r {
            Response::Done(Ok(())) => Some(()),
            _ => None,
        })
        .await;
        if ok.is_some() {
            break;
        }
        sleep_ms(100).await;
    }
    world.trace.record(Kind::Client, "admin: topic created");
    world.topic_ready.store(true, Ordering::SeqCst);
    loop {
        while let Some(r) = world.next_admin() {
            let mut done = false;
            for _ in 0..5 {
                let answer = ask_any(&world, &mut rng, r.clone(), |a| match a {
                    Response::Done(d) => Some(d),
                    _ => None,
                })
                .await;
                if let Some(a) = answer {
                    world
                        .trace
                        .record(Kind::Client, format!("admin: {r:?} -> {a:?}"));
                    done = true;
                    break;
                }
                sleep_ms(200).await;
            }
            if !done {
                world
                    .trace
                    .record(Kind::Client, format!("admin: {r:?} got no answer"));
            }
        }
        if world.healed.load(Ordering::SeqCst)
            && world.producers_done.load(Ordering::SeqCst) >= world.producers
        {
            break;
        }
        sleep_ms(50).await;
    }
    verify(&world, &mut rng).await;
    Ok(())
}

/// Once healed and every producer finished: reads each partition in full from its
/// leader and hands it to the checker; then checks the committed offsets.
async fn verify(world: &World, rng: &mut StdRng) {
    // Let the fleet settle: failovers, restarts and hand-overs after the heal.
    sleep_ms(3_000).await;
    let deadline = now() + Duration::from_secs(60);
    let mut leaders = BTreeMap::new();
    for p in 0..world.shape.partitions {
        let mut batches = Vec::new();
        let mut offset = 0i64;
        let mut hw = None;
        loop {
            if now() > deadline {
                world.checker.violation(format!(
                    "partition {p} could not be read back within 60 s of the heal"
                ));
                break;
            }
            let Some((high, records)) = fetch(world, rng, &mut leaders, p, offset).await else {
                sleep_ms(100).await;
                continue;
            };
            if hw.is_some_and(|h| h != high) {
                // A leader change mid-read (the fleet is still settling): start over.
                batches.clear();
                offset = 0;
                hw = None;
                continue;
            }
            hw = Some(high);
            for (base, epoch, end, ids) in decode(&records) {
                batches.push((base, epoch, ids));
                offset = end;
            }
            if offset >= high {
                world.checker.final_log(p, &batches, high);
                break;
            }
            if records.is_empty() {
                sleep_ms(100).await;
            }
        }
    }
    // Committed offsets survived too.
    for _ in 0..50 {
        if committed(world, rng).await.is_some() {
            break;
        }
        sleep_ms(200).await;
    }
    world.trace.record(
        Kind::Client,
        format!(
            "verifier: {} acknowledged records checked",
            world.checker.acked_count()
        ),
    );
}
