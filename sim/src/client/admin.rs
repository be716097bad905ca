//! The admin (creates the topic, issues the driver's moves and drains) and the verifier
//! it runs at the end, which reads every partition back and checks committed offsets.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;

use super::{ask_any, committed, decode, fetch, rng_for, sleep_ms};
use crate::trace::{now, Kind};
use crate::world::{Request, Response, World};

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
