//! A simulated broker host: the real `Broker` (storage engine, metadata, controller,
//! fleet loops, Kafka request handlers) started on this host's view of the bucket,
//! answering client calls through its handlers, exiting when fenced (its supervisor,
//! the driver, restarts it as a new incarnation) and on a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, FetchRequest, FindCoordinatorRequest, GroupId,
    InitProducerIdRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::config::BrokerArgs;
use sluice_broker::coordination::metadata::Endpoint;
use sluice_broker::coordination::topics::TopicError;
use sluice_broker::metrics::Metrics;
use sluice_broker::server::handlers::{self, Reply};
use sluice_broker::server::{fleet, startup, Broker};
use sluice_broker::storage::{StorageError, Store};
use tokio::sync::{mpsc, watch};

use crate::checker::Acker;
use crate::trace::Kind;
use crate::world::{Call, Request, Response, World, GROUP, TIMING, TOPIC};

pub fn host_name(node: i32) -> String {
    format!("broker-{node}")
}

fn args(node: i32, partitions: i32) -> BrokerArgs {
    let t = TIMING;
    let list = [
        "sluice-broker".to_string(),
        format!("--node-id={node}"),
        "--storage=memory://".into(),
        format!("--heartbeat-interval-ms={}", t.heartbeat_ms),
        format!("--session-timeout-ms={}", t.session_timeout_ms),
        format!("--metadata-poll-ms={}", t.metadata_poll_ms),
        "--wal-linger-ms=5".into(),
        "--wal-max-bytes=32768".into(),
        format!("--max-pending-bytes={}", t.max_pending_bytes),
        "--checkpoint-interval-ms=1500".into(),
        "--checkpoint-bytes=65536".into(),
        format!("--cache-bytes={}", t.cache_bytes),
        "--offsets-topic-partitions=2".into(),
        "--wal-gc-interval-ms=1000".into(),
        "--max-partition-moves=2".into(),
        format!("--default-partitions={partitions}"),
        "--auto-create-topics=false".into(),
    ];
    BrokerArgs::try_parse_from(list).expect("simulated broker arguments parse")
}

/// The one listener simulated brokers have.
const LISTENER: &str = "PLAINTEXT";

/// The software of broker host `node`; turmoil runs it again on every restart.
pub async fn broker(world: Arc<World>, node: i32) -> turmoil::Result {
    let boot = world.boot(node);
    let metrics = Arc::new(Metrics::new());
    let store = Store::new(
        world.bucket.view(node),
        format!("simulated bucket seen by node {node}"),
        metrics.clone(),
    )
    .with_jitter_seed(world.seed ^ ((node as u64) << 40) ^ boot);
    let args = args(node, world.shape.partitions);
    let main = Endpoint {
        host: host_name(node),
        port: 9092,
    };
    let listeners = vec![(LISTENER.to_string(), main)];
    let broker = match startup::start_with_store(args, listeners, metrics, store).await {
        Ok(b) => b,
        Err(e) => {
            world
                .trace
                .record(Kind::Fault, format!("broker {node} failed to start: {e:#}"));
            world.want_restart(node);
            return Ok(());
        }
    };
    let incarnation = broker.engine.incarnation();
    world.trace.record(
        Kind::Fault,
        format!("broker {node} started as incarnation {incarnation}"),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tasks, mut fenced) = fleet::start(broker.clone(), stop_rx);
    let (tx, mut calls) = mpsc::unbounded_channel::<Call>();
    world.set_endpoint(node, Some(tx));
    let me = Acker { node, incarnation };
    // Outside the loop: a sleep made anew each round would never fire while calls
    // keep arriving.
    let mut chores = tokio::time::interval(Duration::from_millis(50));
    chores.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            reason = &mut fenced => {
                let reason = reason.unwrap_or_else(|_| "fencing watch ended".into());
                world.trace.record(Kind::Fault, format!("broker {node} incarnation {incarnation} exits (75): {reason}"));
                world.set_endpoint(node, None);
                world.want_restart(node);
                return Ok(());
            }
            call = calls.recv() => {
                let Some(call) = call else { continue };
                let broker = broker.clone();
                let world = world.clone();
                tokio::spawn(async move {
                    let r = serve(&world, &broker, me, call.request).await;
                    let _ = call.reply.send(r);
                });
            }
            _ = chores.tick() => {
                check_memory(&world, &broker, node);
                if let Some(ms) = world.take_clock_jump(node) {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                }
                if world.take_graceful(node) {
                    world.set_endpoint(node, None);
                    stop_tx.send_replace(true);
                    for t in tasks {
                        let _ = t.await;
                    }
                    let handed = fleet::hand_over_all(&broker).await;
                    let shut = broker.engine.shutdown().await;
                    world.trace.record(Kind::Fault, format!(
                        "broker {node} incarnation {incarnation} stopped cleanly (hand-over: {}, shutdown: {})",
                        handed.map_or_else(|e| format!("{e:#}"), |_| "ok".into()),
                        shut.map_or_else(|e| e.to_string(), |_| "ok".into()),
                    ));
                    world.want_restart(node);
                    return Ok(());
                }
            }
        }
    }
}

/// The largest batch the simulated producers send (4 records of 8 KiB).
const MAX_BATCH_BYTES: usize = 34 * 1024;

/// The produce buffer and the block cache stay within their configured bounds. A
/// batch larger than the whole buffer still goes through, alone (its reservation is
/// the whole buffer), so the bound is the larger of the two (seeds 1068, 1465, 1552
/// and 1741 sent 4 × 8 KiB batches through a 32 KiB buffer).
fn check_memory(world: &World, broker: &Broker, node: i32) {
    let pending = broker.metrics.wal_pending_bytes.get();
    let bound = TIMING.max_pending_bytes.max(MAX_BATCH_BYTES);
    if pending > bound as i64 {
        world.checker.violation(format!(
            "broker {node}: {pending} bytes wait for the WAL, over the bound of {bound}"
        ));
    }
    let cached = broker.engine.cache_bytes();
    if cached > TIMING.cache_bytes {
        world.checker.violation(format!(
            "broker {node}: block cache holds {cached} bytes, over its {} bytes",
            TIMING.cache_bytes
        ));
    }
}

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

/// Answers one client request with the broker's own handlers.
async fn serve(world: &World, broker: &Arc<Broker>, me: Acker, request: Request) -> Response {
    match request {
        Request::CreateTopic => {
            let r = broker
                .topics
                .create(
                    TOPIC,
                    world.topic_id,
                    world.shape.partitions,
                    Default::default(),
                    fleet::lead_new_topic(broker, TOPIC),
                )
                .await;
            Response::Done(match r {
                Ok(_) | Err(TopicError::Exists) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        }
        Request::Leader { partition } => {
            let meta = broker.metadata.current();
            let leader = meta
                .topics
                .get(TOPIC)
                .and_then(|t| t.partitions.get(partition as usize))
                .and_then(|p| meta.live_leader(p))
                .map(|(id, _)| id);
            Response::Leader(leader)
        }
        Request::InitProducerId => {
            let r = handlers::init_producer_id::handle(
                broker,
                InitProducerIdRequest::default().with_transactional_id(None),
            )
            .await;
            Response::ProducerId((r.error_code == 0).then_some(r.producer_id.0))
        }
        Request::Produce { partition, batch } => {
            // Read the epoch with no await before the handler takes the same partition.
            let epoch = broker
                .metadata
                .current()
                .topics
                .get(TOPIC)
                .and_then(|t| broker.engine.partition(t.id, partition))
                .map_or(-1, |p| p.offsets().leader_epoch);
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(3_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])]);
            let pending = handlers::produce::handle(broker.clone(), 9, req, "sim").await;
            match pending.await {
                Reply::Send(r) => match *r {
                    ResponseKind::Produce(r) => {
                        let p = &r.responses[0].partition_responses[0];
                        Response::Produce {
                            error: p.error_code,
                            base_offset: p.base_offset,
                            epoch,
                            by: me,
                        }
                    }
                    other => Response::Done(Err(format!("unexpected answer {other:?}"))),
                },
                other => Response::Done(Err(format!("unexpected reply {other:?}"))),
            }
        }
        Request::Fetch { partition, offset } => {
            let req = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(256 * 1024)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(-1)
                        .with_partition_max_bytes(64 * 1024)])]);
            let r = handlers::fetch::handle(broker, 12, req).await;
            let p = &r.responses[0].partitions[0];
            Response::Fetch {
                error: p.error_code,
                high_watermark: p.high_watermark,
                records: p.records.clone().unwrap_or_default(),
            }
        }
        Request::FindCoordinator => {
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str(GROUP))
                .with_key_type(0);
            let r = handlers::groups::coordinator::find(broker, 3, LISTENER, req).await;
            Response::Coordinator((r.error_code == 0).then_some(r.node_id.0))
        }
        Request::Commit { offsets } => {
            let req = OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name())
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|(p, o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_leader_epoch(-1)
                            })
                            .collect(),
                    )]);
            let r = handlers::groups::offsets::commit(broker, req).await;
            Response::Commit(
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| (p.partition_index, p.error_code))
                    .collect(),
            )
        }
        Request::FetchCommitted { partitions } => {
            let req = OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(name())
                    .with_partition_indexes(partitions)]));
            let r = handlers::groups::offsets::fetch(broker, 7, req).await;
            if r.error_code != 0 {
                return Response::Committed(Err(r.error_code));
            }
            let mut out = Vec::new();
            for p in r.topics.iter().flat_map(|t| &t.partitions) {
                if p.error_code != 0 {
                    return Response::Committed(Err(p.error_code));
                }
                out.push((p.partition_index, p.committed_offset));
            }
            Response::Committed(Ok(out))
        }
        Request::Move { partition, to } => {
            let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
                ReassignableTopic::default()
                    .with_name(name())
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(Some(vec![BrokerId(to)]))]),
            ]);
            let r = handlers::reassignments::alter(broker, req).await;
            let code = r
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code)
                .find(|c| *c != 0)
                .unwrap_or(r.error_code);
            Response::Done(if code == 0 {
                Ok(())
            } else {
                Err(format!("error {code}"))
            })
        }
        Request::Drain { node, on } => {
            let r = broker
                .metadata
                .update_if(|m| {
                    let Some(n) = m.nodes.get_mut(&node) else {
                        return Ok::<_, StorageError>(None);
                    };
                    if n.draining == on {
                        return Ok(None);
                    }
                    n.draining = on;
                    Ok(Some(()))
                })
                .await;
            Response::Done(r.map(|_| ()).map_err(|e| e.to_string()))
        }
    }
}
