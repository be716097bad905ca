//! Validation on produce against the real broker binary: the registry API every broker
//! serves, reject mode's KIP-467 per-record errors, observe mode, and dead-letter mode's
//! exactly-once routing through idempotent retries, a kill -9 and a partition that moves
//! to another broker (whose dead-letter partition is led elsewhere).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::fleet::Fleet;
use common::{temp_storage, BrokerProcess, KafkaConn};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_protocol::record_batch::{encode_batch, NewRecord, ProducerFields};
use sluice_testkit::http_send;

const SCHEMA: &str = r#"{"type":"object","properties":{"user":{"type":"string"},"n":{"type":"integer"}},"required":["user"]}"#;

/// Registers the JSON schema under `subject` through `broker`'s registry API.
fn register(broker: &BrokerProcess, subject: &str) -> i64 {
    let body = serde_json::json!({ "schemaType": "JSON", "schema": SCHEMA }).to_string();
    let (status, text) = http_send(
        broker.metrics_addr,
        "POST",
        &format!("/subjects/{subject}/versions"),
        &body,
    )
    .expect("registry reachable");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_i64()
        .expect("an id")
}

fn create_topic(conn: &mut KafkaConn, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let r: CreateTopicsResponse = conn.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![topic]),
    );
    assert_eq!(
        r.topics[0].error_code, 0,
        "creating {name}: {:?}",
        r.topics[0].error_message
    );
}

fn feed_configs<'a>(mode: &'a str, dead_letter: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("sluice.schema.subject", "auth-value"),
        ("sluice.schema.format", "json"),
        ("sluice.schema.level", "full"),
        ("sluice.schema.mode", mode),
        ("sluice.dead.letter.topic", dead_letter),
    ]
}

/// One batch of `values`; idempotent when `producer` is given as (id, base sequence).
fn batch(values: &[&str], producer: Option<(i64, i32)>, compression: Compression) -> Bytes {
    encode_batch(
        values.iter().enumerate().map(|(i, v)| NewRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            timestamp: 1_700_000_000_000 + i as i64,
        }),
        producer.map(|(producer_id, base_sequence)| ProducerFields {
            producer_id,
            epoch: 0,
            base_sequence,
        }),
        compression,
    )
}

struct Produced {
    error_code: i16,
    base_offset: i64,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

fn produce(conn: &mut KafkaConn, topic: &str, partition: i32, records: Bytes) -> Produced {
    let p = conn
        .try_produce(topic, partition, records)
        .expect("an answer");
    Produced {
        error_code: p.error_code,
        base_offset: p.base_offset,
        message: p.error_message.as_ref().map(|m| m.to_string()),
        record_errors: p
            .record_errors
            .iter()
            .map(|e| {
                let m = e.batch_index_error_message.as_ref().map(|m| m.to_string());
                (e.batch_index, m.unwrap_or_default())
            })
            .collect(),
    }
}

/// [`produce`], retried while the partition is still being taken over (a leader named
/// in metadata opens the partition a moment later), as a client would.
fn produce_after_move(
    conn: &mut KafkaConn,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> Produced {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = produce(conn, topic, partition, records.clone());
        if r.error_code != NOT_LEADER_OR_FOLLOWER || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A record as a librdkafka consumer sees it.
#[derive(Debug, Clone)]
struct Seen {
    offset: i64,
    key: String,
    value: String,
    headers: BTreeMap<String, String>,
}

/// Polls without a message (200 ms each) after which a read ends at a trailing gap.
const IDLE_POLLS_AT_END: u32 = 15;

/// Every record of `topic`/`partition` up to its high watermark.
fn read(bootstrap: &str, topic: &str, partition: i32) -> Vec<Seen> {
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "schema-validation-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut position = 0;
    let mut idle = 0;
    while position < high {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            // A control batch, or a batch whose last records went to the dead-letter
            // topic, ends the partition without a message for the offsets it spans:
            // once nothing arrives for a while, everything below `high` has been seen.
            let at_end = c.position().ok().and_then(|p| {
                p.find_partition(topic, partition)
                    .and_then(|e| e.offset().to_raw())
            }) >= Some(high);
            idle += 1;
            if at_end || idle >= IDLE_POLLS_AT_END {
                break;
            }
            continue;
        };
        idle = 0;
        let m = m.expect("consuming");
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).to_string();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), text(h.value)))
                    .collect()
            })
            .unwrap_or_default();
        position = m.offset() + 1;
        out.push(Seen {
            offset: m.offset(),
            key: text(m.key()),
            value: text(m.payload()),
            headers,
        });
    }
    out
}

const GOOD_A: &str = r#"{"user":"alice","n":1}"#;
const GOOD_B: &str = r#"{"user":"bob"}"#;
const NOT_JSON: &str = "user=carol";
const WRONG: &str = r#"{"user":7}"#;

#[test]
fn reject_mode_refuses_the_batch_and_names_each_invalid_record() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    register(&broker, "auth-value");
    let mut conn = broker.connect();
    create_topic(&mut conn, "auth", 1, &feed_configs("reject", ""));

    for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
        let r = produce(
            &mut conn,
            "auth",
            0,
            batch(&[GOOD_A, NOT_JSON, WRONG], None, compression),
        );
        assert_eq!(r.error_code, 87, "INVALID_RECORD with {compression:?}");
        let indices: Vec<i32> = r.record_errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![1, 2]);
        assert!(
            r.record_errors[0].1.contains("not_json"),
            "{:?}",
            r.record_errors
        );
        assert!(
            r.record_errors[1].1.contains("schema"),
            "{:?}",
            r.record_errors
        );
        assert!(
            r.message
                .as_deref()
                .unwrap_or_default()
                .contains("2 of 3 records"),
            "{:?}",
            r.message
        );
    }
    let ok = produce(
        &mut conn,
        "auth",
        0,
        batch(&[GOOD_A, GOOD_B], None, Compression::Lz4),
    );
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
    let seen = read(&broker.bootstrap(), "auth", 0);
    let values: Vec<&str> = seen.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(
        values,
        vec![GOOD_A, GOOD_B],
        "nothing of a refused batch landed"
    );
    assert_eq!(
        broker.metric("sluice_records_rejected_total{topic=\"auth\",reason=\"not_json\"}"),
        Some(3.0)
    );
    assert_eq!(
        broker.metric("sluice_records_validated_total{topic=\"auth\"}"),
        Some(11.0)
    );
}

#[test]
fn observe_mode_lands_everything_and_counts_the_invalid() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    register(&broker, "auth-value");
    let mut conn = broker.connect();
    create_topic(&mut conn, "auth", 1, &feed_configs("observe", ""));
    let r = produce(
        &mut conn,
        "auth",
        0,
        batch(&[GOOD_A, WRONG], None, Compression::None),
    );
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert_eq!(read(&broker.bootstrap(), "auth", 0).len(), 2);
    assert_eq!(
        broker.metric("sluice_records_invalid_observed_total{topic=\"auth\",reason=\"schema\"}"),
        Some(1.0)
    );
}

#[test]
fn a_topic_naming_an_unknown_subject_refuses_produce_clearly() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    let mut conn = broker.connect();
    create_topic(&mut conn, "auth", 1, &feed_configs("reject", ""));
    let r = produce(
        &mut conn,
        "auth",
        0,
        batch(&[GOOD_A], None, Compression::None),
    );
    assert_eq!(r.error_code, 87);
    assert!(
        r.message
            .as_deref()
            .unwrap_or_default()
            .contains("auth-value"),
        "{:?}",
        r.message
    );
}

/// Checks the dead-letter record's headers name where it came from and why.
fn assert_dead_letter(seen: &Seen, value: &str, reason: &str, producer: i64) {
    assert_eq!(seen.value, value);
    let h = &seen.headers;
    assert_eq!(h["sluice.dlq.reason"], reason, "{h:?}");
    assert_eq!(h["sluice.dlq.topic"], "auth");
    assert_eq!(h["sluice.dlq.partition"], "0");
    assert_eq!(h["sluice.dlq.subject"], "auth-value");
    assert_eq!(h["sluice.dlq.producer.id"], producer.to_string());
    assert!(!h["sluice.dlq.error"].is_empty());
}

#[test]
fn dead_letter_mode_routes_each_invalid_record_once_through_retries_and_a_crash() {
    let (_dir, url) = temp_storage();
    let mut broker = BrokerProcess::start(&url, &[]);
    register(&broker, "auth-value");
    let mut conn = broker.connect();
    create_topic(&mut conn, "auth-dlq", 2, &[]);
    create_topic(
        &mut conn,
        "auth",
        1,
        &feed_configs("dead-letter", "auth-dlq"),
    );
    let pid = conn.init_producer_id();

    let first = || {
        batch(
            &[GOOD_A, NOT_JSON, GOOD_B, WRONG],
            Some((pid, 0)),
            Compression::Snappy,
        )
    };
    let r = produce(&mut conn, "auth", 0, first());
    assert_eq!((r.error_code, r.base_offset), (0, 0), "{:?}", r.message);
    // The retry of a batch whose acknowledgement was lost: the same offsets, nothing new.
    let again = produce(&mut conn, "auth", 0, first());
    assert_eq!((again.error_code, again.base_offset), (0, 0));
    // A batch with no valid record still keeps the producer's sequence in order.
    let all_bad = produce(
        &mut conn,
        "auth",
        0,
        batch(&[WRONG], Some((pid, 4)), Compression::None),
    );
    assert_eq!(all_bad.error_code, 0, "{:?}", all_bad.message);
    let next = produce(
        &mut conn,
        "auth",
        0,
        batch(&[GOOD_B], Some((pid, 5)), Compression::None),
    );
    assert_eq!(next.error_code, 0, "{:?}", next.message);

    broker.kill9();
    broker.restart();
    let mut conn = broker.connect();
    let after = produce(&mut conn, "auth", 0, first());
    assert_eq!(
        (after.error_code, after.base_offset),
        (0, 0),
        "a retry after a crash is still a duplicate"
    );
    let last = produce(
        &mut conn,
        "auth",
        0,
        batch(&[GOOD_A], Some((pid, 6)), Compression::None),
    );
    assert_eq!(last.error_code, 0, "{:?}", last.message);

    let landed = read(&broker.bootstrap(), "auth", 0);
    let values: Vec<&str> = landed.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(values, vec![GOOD_A, GOOD_B, GOOD_B, GOOD_A]);
    // Each valid record is where its producer's offset says: the first batch's invalid
    // records (offsets 1 and 3) and the all-invalid batch (offset 4) leave gaps.
    let offsets: Vec<i64> = landed.iter().map(|s| s.offset).collect();
    assert_eq!(
        offsets,
        vec![0, 2, 5, 6],
        "records land at their acknowledged offsets"
    );
    assert_eq!(landed[1].key, "k2");

    // Source partition 0 dead-letters to partition 0 of the dead-letter topic.
    let dead = read(&broker.bootstrap(), "auth-dlq", 0);
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert_dead_letter(&dead[0], NOT_JSON, "not_json", pid);
    assert_eq!(dead[0].key, "k1", "the original key is kept");
    assert_eq!(dead[0].headers["sluice.dlq.batch.index"], "1");
    assert_dead_letter(&dead[1], WRONG, "schema", pid);
    assert_dead_letter(&dead[2], WRONG, "schema", pid);
    assert!(read(&broker.bootstrap(), "auth-dlq", 1).is_empty());
}

#[test]
fn dead_letters_reach_a_partition_led_by_another_broker_and_survive_a_move() {
    let mut fleet = Fleet::start(2, &[]);
    register(&fleet.brokers[0], "auth-value");
    let mut conn = fleet.any();
    create_topic(&mut conn, "auth-dlq", 1, &[]);
    create_topic(
        &mut conn,
        "auth",
        1,
        &feed_configs("dead-letter", "auth-dlq"),
    );
    fleet.reassign("auth", &[(0, 1)]);
    fleet.reassign("auth-dlq", &[(0, 2)]);
    fleet.wait_leaders("auth", Duration::from_secs(20), "auth on 1", |l| {
        l[&0].node == 1
    });
    fleet.wait_leaders("auth-dlq", Duration::from_secs(20), "dlq on 2", |l| {
        l[&0].node == 2
    });

    let mut on1 = fleet.node(1).connect();
    let pid = on1.init_producer_id();
    let first = || batch(&[GOOD_A, WRONG], Some((pid, 0)), Compression::None);
    let r = produce_after_move(&mut on1, "auth", 0, first());
    assert_eq!(r.error_code, 0, "{:?}", r.message);

    // The source partition moves to broker 2, which now leads both; the retry is a
    // duplicate in the feed and in the dead-letter topic.
    fleet.reassign("auth", &[(0, 2)]);
    fleet.wait_leaders("auth", Duration::from_secs(20), "auth on 2", |l| {
        l[&0].node == 2
    });
    let mut on2 = fleet.node(2).connect();
    let retry = produce_after_move(&mut on2, "auth", 0, first());
    assert_eq!((retry.error_code, retry.base_offset), (0, r.base_offset));

    let bootstrap = fleet.bootstrap();
    assert_eq!(read(&bootstrap, "auth", 0).len(), 1);
    let dead = read(&bootstrap, "auth-dlq", 0);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_dead_letter(&dead[0], WRONG, "schema", pid);
}

#[test]
fn the_registry_answers_on_every_broker_and_ids_stay_unique_under_a_race() {
    let fleet = Fleet::start(2, &[]);
    let id = register(&fleet.brokers[0], "auth-value");
    let (status, text) = http_send(
        fleet.brokers[1].metrics_addr,
        "GET",
        &format!("/schemas/ids/{id}"),
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"schemaType\":\"JSON\""), "{text}");

    // Two brokers register different schemas at once: each gets its own id.
    let schemas: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"type":"object","properties":{{"f{i}":{{"type":"string"}}}}}}"#))
        .collect();
    let ids: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = schemas
            .iter()
            .enumerate()
            .map(|(i, schema)| {
                let addr = fleet.brokers[i % 2].metrics_addr;
                s.spawn(move || {
                    let body = serde_json::json!({ "schemaType": "JSON", "schema": schema });
                    let (status, text) = http_send(
                        addr,
                        "POST",
                        &format!("/subjects/race-{i}/versions"),
                        &body.to_string(),
                    )
                    .unwrap();
                    assert_eq!(status, 200, "{text}");
                    serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
                        .as_i64()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids {ids:?}");
    assert!(!ids.contains(&id));
}

#[test]
fn plain_json_lines_from_kcat_land_or_go_to_the_dead_letter_topic() {
    let (_dir, url) = temp_storage();
    let broker = BrokerProcess::start(&url, &[]);
    register(&broker, "auth-value");
    let mut conn = broker.connect();
    create_topic(&mut conn, "auth-dlq", 1, &[]);
    create_topic(
        &mut conn,
        "auth",
        1,
        &feed_configs("dead-letter", "auth-dlq"),
    );
    let lines = format!("{GOOD_A}\n{NOT_JSON}\n{GOOD_B}\n{WRONG}\n");
    let mut kcat = std::process::Command::new("kcat")
        .args(["-b", &broker.bootstrap(), "-t", "auth", "-p", "0", "-P"])
        .args(["-X", "enable.idempotence=true"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat (scripts/test installs it: apt-get install kcat)");
    use std::io::Write;
    kcat.stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let status = kcat.wait().unwrap();
    assert!(status.success(), "kcat: {status}");
    let landed: Vec<String> = read(&broker.bootstrap(), "auth", 0)
        .into_iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(landed, vec![GOOD_A, GOOD_B]);
    let dead = read(&broker.bootstrap(), "auth-dlq", 0);
    let reasons: Vec<&str> = dead
        .iter()
        .map(|s| s.headers["sluice.dlq.reason"].as_str())
        .collect();
    assert_eq!(reasons, vec!["not_json", "schema"]);
    assert!(
        dead[0].headers["sluice.dlq.client.id"].contains("rdkafka"),
        "{:?}",
        dead[0].headers
    );
}
