//! `sluice-bench`: the load generator of the side-by-side benchmarks (benches/compare).
//!
//! It speaks to any Kafka-compatible broker through librdkafka (the rdkafka crate), the
//! client most collectors and detection pipelines actually run, so every broker is driven
//! by the same client code, batching and protocol versions. Each subcommand is one
//! workload; it creates its own topic, runs, and prints one JSON line with its figures
//! on stdout. It exits non-zero when a workload fails, loses a record, or moves no data.
//!
//! Long because: one concern, the load generator. Its five workloads (produce, latency,
//! end-to-end, catch-up, fan-out) are each one function of 30 to 90 lines over the shared
//! producer, consumer and timing helpers above them; splitting them apart would only move
//! those helpers behind a module boundary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Kafka load generator for side-by-side broker benchmarks")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Args, Clone)]
struct Common {
    /// Bootstrap servers of the broker under test.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Prefix of the topic names (each workload creates `<prefix>-<workload>`).
    #[arg(long, global = true, default_value = "bench")]
    topic_prefix: String,
    /// Partitions of each topic.
    #[arg(long, global = true, default_value_t = 8)]
    partitions: i32,
    /// Record value size in bytes.
    #[arg(long, global = true, default_value_t = 1024)]
    record_size: usize,
    /// Duration of the measured phase, in seconds.
    #[arg(long, global = true, default_value_t = 20.0)]
    seconds: f64,
    /// Idempotent producers (enable.idempotence); acks=all either way.
    #[arg(long, global = true, default_value_t = true, action = clap::ArgAction::Set)]
    idempotence: bool,
    /// librdkafka linger.ms of the throughput producers.
    #[arg(long, global = true, default_value_t = 5)]
    linger_ms: u32,
    /// More librdkafka settings for every client, `KEY=VALUE`, repeatable: how to reach a
    /// secured listener (`security.protocol=SASL_SSL`, `sasl.mechanism`, credentials,
    /// `ssl.ca.location`).
    #[arg(long = "client-config", global = true)]
    client_config: Vec<String>,
}

#[derive(Subcommand)]
enum Workload {
    /// Produce throughput at acks=all: N producers send as fast as the broker acknowledges.
    Produce {
        #[arg(long, default_value_t = 1)]
        producers: usize,
    },
    /// Produce latency (send to acknowledgement) at a fixed rate, one producer.
    Latency {
        /// Records per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// End-to-end latency (send to receipt by a consumer) at a fixed rate.
    EndToEnd {
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// Catch-up read throughput: read a backlog from the start while a producer keeps
    /// producing at a fixed rate (and its latency is measured).
    Catchup {
        /// Backlog written first, in MiB.
        #[arg(long, default_value_t = 256)]
        backlog_mib: u64,
        /// Rate of the live producer during the catch-up, records per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// Consumer-group fan-out: G groups of M members each read the whole backlog.
    Fanout {
        #[arg(long, default_value_t = 256)]
        backlog_mib: u64,
        #[arg(long, default_value_t = 4)]
        groups: usize,
        #[arg(long, default_value_t = 2)]
        members: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(cli: &Cli) -> Result<Value> {
    let c = &cli.common;
    let (name, out) = match &cli.workload {
        Workload::Produce { producers } => {
            let name = format!("produce-{producers}p");
            (name.clone(), produce(c, &name, *producers)?)
        }
        Workload::Latency { rate } => ("latency".into(), latency(c, *rate)?),
        Workload::EndToEnd { rate } => ("end-to-end".into(), end_to_end(c, *rate)?),
        Workload::Catchup { backlog_mib, rate } => {
            ("catchup".into(), catchup(c, *backlog_mib, *rate)?)
        }
        Workload::Fanout {
            backlog_mib,
            groups,
            members,
        } => ("fanout".into(), fanout(c, *backlog_mib, *groups, *members)?),
    };
    let mut out = out;
    out["workload"] = json!(name);
    out["record_size"] = json!(c.record_size);
    out["partitions"] = json!(c.partitions);
    Ok(out)
}

/// The settings every client of a run shares: the broker, no Nagle delay, and the
/// `--client-config` pairs.
fn client_config(c: &Common) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &c.bootstrap)
        .set("socket.nagle.disable", "true");
    for kv in &c.client_config {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--client-config {kv:?} is not KEY=VALUE"))?;
        config.set(k, v);
    }
    Ok(config)
}

// ---------------------------------------------------------------- clocks and stats

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Microseconds since this process's first call: the delivery opaque of every record.
fn now_us() -> usize {
    start().elapsed().as_micros() as usize
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// p50/p99/p999/max in milliseconds of latencies in microseconds.
fn percentiles(mut v: Vec<u64>) -> Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    json!({"p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999),
           "max_ms": *v.last().unwrap() as f64 / 1000.0, "samples": v.len()})
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 / 1e6 / secs
    }
}

// ---------------------------------------------------------------- topics

fn topic_name(c: &Common, workload: &str) -> String {
    format!("{}-{workload}", c.topic_prefix)
}

/// Creates the topic and waits until every partition has a leader that answers.
fn create_topic(c: &Common, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(c)?.create().context("admin client")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    loop {
        let new = NewTopic::new(topic, c.partitions, TopicReplication::Fixed(1));
        let res = futures::executor::block_on(admin.create_topics([&new], &opts));
        match res {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => break,
                Some(Err((_, code))) if Instant::now() < deadline => {
                    eprintln!("create topic {topic}: {code}, retrying");
                }
                Some(Err((_, code))) => bail!("create topic {topic}: {code}"),
                None => bail!("create topic {topic}: no result"),
            },
            Err(e) if Instant::now() < deadline => eprintln!("create topic {topic}: {e}, retrying"),
            Err(e) => bail!("create topic {topic}: {e}"),
        }
        thread::sleep(Duration::from_millis(500));
    }
    // Every partition led and answering ListOffsets.
    let consumer = plain_consumer(c, "bench-probe")?;
    loop {
        match end_offsets(&consumer, topic, c.partitions) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for {topic}: {e:#}");
                thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

fn end_offsets(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Result<Vec<i64>> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("{topic} not in metadata"))?;
    if t.partitions().len() as i32 != partitions || t.partitions().iter().any(|p| p.leader() < 0) {
        bail!("{topic}: partitions not all led yet");
    }
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, high)| high)
                .with_context(|| format!("watermarks of {topic}/{p}"))
        })
        .collect()
}

// ---------------------------------------------------------------- producers

/// Counts acknowledgements and their latency (from the opaque: send time in `now_us`).
/// The producers are `ThreadedProducer`s: a thread of their own serves the delivery
/// reports as they arrive, so an acknowledgement's latency is not delayed by the sender.
#[derive(Default)]
struct Acks {
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latencies_us: Mutex<Vec<u64>>,
    /// Highest acknowledged offset per partition.
    max_offset: Mutex<HashMap<i32, i64>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        match result {
            Ok(m) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.acked_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                let lat = now_us().saturating_sub(sent_us) as u64;
                self.latencies_us.lock().unwrap().push(lat);
                let mut max = self.max_offset.lock().unwrap();
                let o = max.entry(m.partition()).or_insert(-1);
                *o = (*o).max(m.offset());
            }
            Err((e, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl Acks {
    /// Forgets what was acknowledged so far (after the warm-up).
    fn reset(&self) {
        self.acked.store(0, Ordering::Relaxed);
        self.acked_bytes.store(0, Ordering::Relaxed);
        self.latencies_us.lock().unwrap().clear();
    }

    fn check(&self) -> Result<()> {
        let errors = self.errors.load(Ordering::Relaxed);
        if errors > 0 {
            bail!(
                "{errors} records not acknowledged (first: {})",
                self.first_error.lock().unwrap().clone().unwrap_or_default()
            );
        }
        Ok(())
    }
}

fn producer(c: &Common, linger_ms: u32) -> Result<ThreadedProducer<Acks>> {
    client_config(c)?
        .set("acks", "all")
        .set("enable.idempotence", c.idempotence.to_string())
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        .set("message.timeout.ms", "120000")
        // 64 MiB of records queued per producer: enough to keep the broker busy, small
        // enough that the flush after the measured phase is short.
        .set("queue.buffering.max.kbytes", "65536")
        .create_with_context(Acks::default())
        .context("producer")
}

/// Sends records until `until` (or `stop`), as fast as acknowledged (`rate` None) or
/// at a fixed rate. At a fixed rate the latency counts from the record's scheduled time,
/// so a stalled broker is not hidden by a sender that waits for it. Each record carries
/// its send wall-clock time (µs) in its first 8 bytes, for the end-to-end latency.
fn send_loop(
    p: &ThreadedProducer<Acks>,
    topic: &str,
    size: usize,
    rate: Option<f64>,
    until: Instant,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut payload = vec![b'x'; size.max(8)];
    let t0 = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let mut opaque = now_us();
        if let Some(rate) = rate {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            opaque = due.duration_since(start()).as_micros() as usize;
            payload[..8].copy_from_slice(&wall_us().to_le_bytes());
        }
        let record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, opaque).payload(&payload[..size]);
        send_blocking(p, record)?;
        sent += 1;
    }
    p.flush(Duration::from_secs(120)).context("flush")?;
    Ok(sent)
}

/// Sends `record`, waiting while librdkafka's queue is full.
fn send_blocking<'a>(
    p: &ThreadedProducer<Acks>,
    mut record: BaseRecord<'a, (), [u8], usize>,
) -> Result<()> {
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("send: {e}"),
        }
    }
}

/// Sends one record to every partition and waits for the acknowledgements, so that
/// metadata, connections and the producer id are in place before a latency is measured.
/// The records carry a zero timestamp: end-to-end consumers skip them.
fn warm_up(p: &ThreadedProducer<Acks>, topic: &str, partitions: i32, size: usize) -> Result<()> {
    let payload = vec![0u8; size.max(8)];
    for partition in 0..partitions {
        p.send(
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, now_us())
                .partition(partition)
                .payload(&payload[..size]),
        )
        .map_err(|(e, _)| anyhow!("warm-up send: {e}"))?;
    }
    p.flush(Duration::from_secs(60)).context("warm-up flush")?;
    p.context().check()?;
    p.context().reset();
    Ok(())
}

/// Writes `mib` MiB as fast as possible (the backlog of the read workloads). Returns the
/// bytes, the seconds and, per partition, the offset after the last acknowledged record:
/// what a reader must reach (taken from the acknowledgements, not from ListOffsets, so a
/// broker whose ListOffsets lags cannot end a read early).
fn write_backlog(c: &Common, topic: &str, mib: u64) -> Result<(u64, f64, Vec<i64>)> {
    let p = producer(c, c.linger_ms)?;
    let records = mib * 1024 * 1024 / c.record_size as u64;
    let payload = vec![b'b'; c.record_size];
    let t0 = Instant::now();
    for _ in 0..records {
        let record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, now_us()).payload(&payload[..]);
        send_blocking(&p, record)?;
    }
    p.flush(Duration::from_secs(300)).context("flush")?;
    p.context().check()?;
    let acked = p.context().acked_bytes.load(Ordering::Relaxed);
    let max = p.context().max_offset.lock().unwrap();
    let ends = (0..c.partitions)
        .map(|p| max.get(&p).map_or(0, |o| o + 1))
        .collect();
    Ok((acked, t0.elapsed().as_secs_f64(), ends))
}

// ---------------------------------------------------------------- workloads

fn produce(c: &Common, name: &str, producers: usize) -> Result<Value> {
    let topic = topic_name(c, name);
    create_topic(c, &topic)?;
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(c.seconds);
    let results: Vec<Result<(u64, u64, Vec<u64>)>> = thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|_| {
                s.spawn(|| {
                    let p = producer(c, c.linger_ms)?;
                    send_loop(&p, &topic, c.record_size, None, until, &stop)?;
                    let ctx = p.context();
                    ctx.check()?;
                    let lat = std::mem::take(&mut *ctx.latencies_us.lock().unwrap());
                    Ok((
                        ctx.acked.load(Ordering::Relaxed),
                        ctx.acked_bytes.load(Ordering::Relaxed),
                        lat,
                    ))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let (mut records, mut bytes, mut lat) = (0, 0, Vec::new());
    for r in results {
        let (n, b, l) = r?;
        records += n;
        bytes += b;
        lat.extend(l);
    }
    if records == 0 {
        bail!("no record acknowledged");
    }
    Ok(json!({
        "producers": producers, "records": records, "seconds": secs,
        "mb_per_s": mb_per_s(bytes, secs), "records_per_s": records as f64 / secs,
        "bytes_in": bytes, "bytes_out": 0,
        "ack_latency_closed_loop": percentiles(lat),
    }))
}

fn latency(c: &Common, rate: f64) -> Result<Value> {
    let topic = topic_name(c, "latency");
    create_topic(c, &topic)?;
    let p = producer(c, 0)?;
    warm_up(&p, &topic, c.partitions, c.record_size)?;
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let sent = send_loop(
        &p,
        &topic,
        c.record_size,
        Some(rate),
        t0 + Duration::from_secs_f64(c.seconds),
        &stop,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let ctx = p.context();
    ctx.check()?;
    let acked = ctx.acked.load(Ordering::Relaxed);
    if acked == 0 || acked != sent {
        bail!("{acked} of {sent} records acknowledged");
    }
    let bytes = ctx.acked_bytes.load(Ordering::Relaxed);
    Ok(json!({
        "rate": rate, "records": acked, "seconds": secs,
        "mb_per_s": mb_per_s(bytes, secs), "bytes_in": bytes, "bytes_out": 0,
        "ack_latency": percentiles(std::mem::take(&mut *ctx.latencies_us.lock().unwrap())),
    }))
}

fn plain_consumer(c: &Common, group: &str) -> Result<BaseConsumer> {
    client_config(c)?
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("consumer")
}

/// Per-partition progress of one reader (or one group): done when every partition's
/// next offset reached its target.
struct Progress {
    next: Vec<i64>,
    target: Vec<i64>,
    bytes: u64,
    records: u64,
}

impl Progress {
    fn new(target: Vec<i64>) -> Self {
        Progress {
            next: vec![0; target.len()],
            target,
            bytes: 0,
            records: 0,
        }
    }
    fn done(&self) -> bool {
        self.next.iter().zip(&self.target).all(|(n, t)| n >= t)
    }
    fn record(&mut self, partition: i32, offset: i64, len: usize) {
        let p = partition as usize;
        if offset >= self.next[p] {
            self.next[p] = offset + 1;
        }
        self.bytes += len as u64;
        self.records += 1;
    }
}

fn assign_from(consumer: &BaseConsumer, topic: &str, offsets: &[i64]) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o))?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

fn end_to_end(c: &Common, rate: f64) -> Result<Value> {
    let topic = topic_name(c, "end-to-end");
    create_topic(c, &topic)?;
    let consumer = plain_consumer(c, "bench-e2e")?;
    // A fresh topic: read it from offset 0 (the warm-up records come first).
    assign_from(&consumer, &topic, &vec![0; c.partitions as usize])?;
    // Let the consumer connect and position itself before the first record.
    let _ = consumer.poll(Duration::from_millis(500));
    let stop = AtomicBool::new(false);
    // Records the producer sent, once it is done (u64::MAX while it runs).
    let sent_total = AtomicU64::new(u64::MAX);
    // Warm-up records the consumer has seen: the timed phase starts once it saw them all.
    let warm_seen = AtomicU64::new(0);
    let (sent, bytes_in, lat, received, bytes_out) = thread::scope(|s| -> Result<_> {
        let prod = s.spawn(|| -> Result<(u64, u64)> {
            let p = producer(c, 0)?;
            let warm = warm_up(&p, &topic, c.partitions, c.record_size);
            let deadline = Instant::now() + Duration::from_secs(60);
            while warm.is_ok()
                && warm_seen.load(Ordering::SeqCst) < c.partitions as u64
                && Instant::now() < deadline
                && !stop.load(Ordering::SeqCst)
            {
                thread::sleep(Duration::from_millis(5));
            }
            let t0 = Instant::now();
            let r = warm.and_then(|_| {
                if warm_seen.load(Ordering::SeqCst) < c.partitions as u64 {
                    bail!("the consumer did not receive the warm-up records in 60 s");
                }
                send_loop(
                    &p,
                    &topic,
                    c.record_size,
                    Some(rate),
                    t0 + Duration::from_secs_f64(c.seconds),
                    &stop,
                )
            });
            let sent = r.as_ref().copied().unwrap_or(0);
            sent_total.store(sent, Ordering::SeqCst);
            r?;
            p.context().check()?;
            Ok((sent, p.context().acked_bytes.load(Ordering::Relaxed)))
        });
        let mut lat = Vec::new();
        let (mut received, mut bytes) = (0u64, 0u64);
        let mut drain_deadline = None;
        let consumed = (|| loop {
            let total = sent_total.load(Ordering::SeqCst);
            if total != u64::MAX {
                if received >= total {
                    return Ok(());
                }
                let d =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                if Instant::now() > d {
                    return Ok(());
                }
            }
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or_default();
                    let sent_us = payload
                        .get(..8)
                        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
                    if sent_us == 0 {
                        warm_seen.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    lat.push(wall_us().saturating_sub(sent_us));
                    received += 1;
                    bytes += payload.len() as u64;
                }
                Some(Err(e)) => bail!("consume: {e}"),
                None => {}
            }
        })();
        if consumed.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        let produced = prod.join().unwrap();
        consumed?;
        let (sent, bytes_in) = produced?;
        Ok((sent, bytes_in, lat, received, bytes))
    })?;
    if received < sent || sent == 0 {
        bail!("consumer received {received} of {sent} records");
    }
    Ok(json!({
        "rate": rate, "records": sent, "seconds": c.seconds,
        "mb_per_s": mb_per_s(bytes_in, c.seconds),
        "bytes_in": bytes_in, "bytes_out": bytes_out,
        "e2e_latency": percentiles(lat),
    }))
}

fn catchup(c: &Common, backlog_mib: u64, rate: f64) -> Result<Value> {
    let topic = topic_name(c, "catchup");
    create_topic(c, &topic)?;
    let (backlog_bytes, backlog_secs, target) = write_backlog(c, &topic, backlog_mib)?;
    let consumer = plain_consumer(c, "bench-catchup")?;
    // Cross-check: the high watermarks the broker reports (ListOffsets) against the
    // acknowledged offsets.
    let listed = end_offsets(&consumer, &topic, c.partitions)?;
    assign_from(&consumer, &topic, &vec![0; target.len()])?;
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(600);
    let (progress, read_secs, live) = thread::scope(|s| -> Result<_> {
        let live = s.spawn(|| -> Result<Value> {
            let p = producer(c, 0)?;
            warm_up(&p, &topic, c.partitions, c.record_size)?;
            let t0 = Instant::now();
            send_loop(&p, &topic, c.record_size, Some(rate), deadline, &stop)?;
            let ctx = p.context();
            ctx.check()?;
            let bytes = ctx.acked_bytes.load(Ordering::Relaxed);
            Ok(json!({
                "rate": rate, "records": ctx.acked.load(Ordering::Relaxed), "bytes": bytes,
                "seconds": t0.elapsed().as_secs_f64(),
                "ack_latency": percentiles(std::mem::take(&mut *ctx.latencies_us.lock().unwrap())),
            }))
        });
        let t0 = Instant::now();
        let mut progress = Progress::new(target.clone());
        let result = (|| {
            while !progress.done() {
                if Instant::now() > deadline {
                    bail!("catch-up did not finish in time");
                }
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let p = m.partition() as usize;
                        if m.offset() < progress.target[p] {
                            progress.record(m.partition(), m.offset(), m.payload_len());
                        }
                    }
                    Some(Err(e)) => bail!("consume: {e}"),
                    None => {}
                }
            }
            Ok(())
        })();
        let read_secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let live = live.join().unwrap();
        result?;
        Ok((progress, read_secs, live?))
    })?;
    if progress.bytes == 0 {
        bail!("nothing read");
    }
    let live_bytes = live["bytes"].as_u64().unwrap_or(0);
    Ok(json!({
        "backlog_mib": backlog_mib, "records": progress.records, "seconds": read_secs,
        "mb_per_s": mb_per_s(progress.bytes, read_secs),
        "backlog_write_mb_per_s": mb_per_s(backlog_bytes, backlog_secs),
        "list_offsets_match_acks": listed == target,
        "bytes_in": backlog_bytes + live_bytes, "bytes_out": progress.bytes,
        "live_producer": live,
    }))
}

fn fanout(c: &Common, backlog_mib: u64, groups: usize, members: usize) -> Result<Value> {
    let topic = topic_name(c, "fanout");
    create_topic(c, &topic)?;
    let (backlog_bytes, _, target) = write_backlog(c, &topic, backlog_mib)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let progress: Vec<Mutex<Progress>> = (0..groups)
        .map(|_| Mutex::new(Progress::new(target.clone())))
        .collect();
    let failed = AtomicBool::new(false);
    let t0 = Instant::now();
    let finish_secs: Vec<Mutex<Option<f64>>> = (0..groups).map(|_| Mutex::new(None)).collect();
    let results: Vec<Result<()>> = thread::scope(|s| {
        let mut handles = Vec::new();
        for g in 0..groups {
            for _ in 0..members {
                let (progress, finish, failed, topic) =
                    (&progress[g], &finish_secs[g], &failed, &topic);
                handles.push(s.spawn(move || -> Result<()> {
                    let consumer = plain_consumer(c, &format!("bench-fanout-{g}"))?;
                    consumer.subscribe(&[topic])?;
                    loop {
                        if progress.lock().unwrap().done() {
                            let mut f = finish.lock().unwrap();
                            f.get_or_insert(t0.elapsed().as_secs_f64());
                            return Ok(());
                        }
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        if Instant::now() > deadline {
                            failed.store(true, Ordering::Relaxed);
                            bail!("group {g} did not finish in time");
                        }
                        match consumer.poll(Duration::from_millis(100)) {
                            Some(Ok(m)) => {
                                progress.lock().unwrap().record(
                                    m.partition(),
                                    m.offset(),
                                    m.payload_len(),
                                );
                            }
                            Some(Err(e)) => {
                                failed.store(true, Ordering::Relaxed);
                                bail!("group {g}: {e}");
                            }
                            None => {}
                        }
                    }
                }));
            }
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        r?;
    }
    let secs = finish_secs
        .iter()
        .filter_map(|f| *f.lock().unwrap())
        .fold(0.0, f64::max);
    let bytes_out: u64 = progress.iter().map(|p| p.lock().unwrap().bytes).sum();
    let unique: u64 = (groups as u64) * backlog_bytes;
    let per_group: HashMap<String, f64> = finish_secs
        .iter()
        .enumerate()
        .map(|(g, f)| (format!("group-{g}"), f.lock().unwrap().unwrap_or(f64::NAN)))
        .collect();
    if bytes_out == 0 {
        bail!("nothing read");
    }
    Ok(json!({
        "backlog_mib": backlog_mib, "groups": groups, "members": members, "seconds": secs,
        // Throughput counts each group's copy of the backlog once (re-deliveries after a
        // rebalance are in bytes_out but not in the rate).
        "mb_per_s": mb_per_s(unique, secs),
        "bytes_in": backlog_bytes, "bytes_out": bytes_out,
        "group_finish_seconds": per_group,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_latencies() {
        let v: Vec<u64> = (1..=1000).map(|ms| ms * 1000).collect();
        let p = percentiles(v);
        assert_eq!(p["p50_ms"], json!(501.0));
        assert_eq!(p["p99_ms"], json!(990.0));
        assert_eq!(p["p999_ms"], json!(999.0));
        assert_eq!(p["max_ms"], json!(1000.0));
        assert_eq!(p["samples"], json!(1000));
        assert_eq!(percentiles(Vec::new()), json!(null));
    }

    #[test]
    fn progress_is_done_when_every_partition_reached_its_target() {
        let mut p = Progress::new(vec![2, 0, 1]);
        assert!(!p.done());
        p.record(0, 0, 10);
        p.record(2, 0, 10);
        assert!(!p.done(), "partition 0 still needs offset 1");
        // A re-delivery after a rebalance counts bytes but does not move progress back.
        p.record(0, 1, 10);
        p.record(0, 0, 10);
        assert!(p.done());
        assert_eq!(p.next, vec![2, 0, 1]);
        assert_eq!((p.records, p.bytes), (4, 40));
    }

    #[test]
    fn throughput_in_megabytes() {
        assert_eq!(mb_per_s(5_000_000, 2.0), 2.5);
        assert_eq!(mb_per_s(1, 0.0), 0.0);
    }
}
