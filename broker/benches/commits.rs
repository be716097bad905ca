//! Offset-commit throughput: N consumer groups, each committing synchronously in a loop
//! (librdkafka through rdkafka), against one broker on the file backend. Every commit is
//! acknowledged only once durable in `__consumer_offsets`, so this measures how well the
//! WAL batches commits of many groups into one object.
//! Run: `cargo bench -p sluice-broker --bench commits`.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let broker = support::Broker::start(dir.path(), &["--default-partitions", "8"]);
    let bootstrap = broker.bootstrap();
    // Commits are only accepted for partitions that exist: create the topic first.
    let producer: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            rdkafka::producer::BaseRecord::to("commits")
                .key("k")
                .payload("v"),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();
    println!(
        "offset commits: synchronous, one partition per commit, file backend, WAL linger 10 ms"
    );
    for groups in [1usize, 16, 64] {
        let done = Arc::new(AtomicU64::new(0));
        let run_for = Duration::from_secs(5);
        let threads: Vec<_> = (0..groups)
            .map(|g| {
                let bootstrap = bootstrap.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let c: BaseConsumer = ClientConfig::new()
                        .set("bootstrap.servers", &bootstrap)
                        .set("group.id", format!("bench-{groups}-{g}"))
                        .set("enable.auto.commit", "false")
                        .set("allow.auto.create.topics", "true")
                        .create()
                        .unwrap();
                    let start = Instant::now();
                    let mut n = 0i64;
                    while start.elapsed() < run_for {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition_offset("commits", (g % 8) as i32, Offset::Offset(n))
                            .unwrap();
                        if c.commit(&tpl, CommitMode::Sync).is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        let started = Instant::now();
        for t in threads {
            t.join().unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let total = done.load(Ordering::Relaxed);
        println!(
            "  {groups:>3} committing groups: {:>8.0} commits/s ({total} in {secs:.1} s)",
            total as f64 / secs
        );
    }
}
