//! The consumer: reads every partition, commits as it goes, and now and then restarts
//! from its committed offsets.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::Rng;

use super::{committed, coordinator, decode, fetch, rng_for, sleep_ms, wait_for_topic};
use crate::trace::Kind;
use crate::world::{Request, Response, World, GROUP};

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
        if rounds.is_multiple_of(5) {
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
