//! AlterPartitionReassignments and ListPartitionReassignments, so
//! `kafka-reassign-partitions` drives moves. The bucket is every partition's only
//! replica, so a replica list names one broker: the partition's next leader. A move is
//! metadata only: the leader releases the partition (its tail becomes a segment) and the
//! target takes it over at the next leader epoch. A null replica list cancels a move
//! that has not happened yet.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::ResponseError;
use tracing::info;

use super::{str_bytes, topic_name};
use crate::coordination::ClusterMetadata;
use crate::server::Broker;
use crate::storage::StorageError;

/// An error answering one partition, with its message.
type Refusal = (ResponseError, String);
type Parsed = Result<Wanted, Refusal>;
type Answer = Result<(), Refusal>;

/// What one partition of the request asks for.
enum Wanted {
    Cancel,
    MoveTo(i32),
}

/// Validates one partition's request against `meta` and applies it; the error answers
/// that partition.
fn apply(meta: &mut ClusterMetadata, topic: &str, partition: i32, wanted: &Parsed) -> Answer {
    let wanted = wanted.as_ref().map_err(Clone::clone)?;
    let eligible = |m: &ClusterMetadata, n: i32| m.nodes.get(&n).is_some_and(|i| i.is_eligible());
    let target_ok = match wanted {
        Wanted::MoveTo(n) => eligible(meta, *n),
        Wanted::Cancel => true,
    };
    let p = meta
        .topics
        .get_mut(topic)
        .and_then(|t| t.partitions.get_mut(partition.max(0) as usize))
        .filter(|_| partition >= 0)
        .ok_or((
            ResponseError::UnknownTopicOrPartition,
            format!("{topic}-{partition} does not exist"),
        ))?;
    match wanted {
        Wanted::Cancel if p.target.is_none() => Err((
            ResponseError::NoReassignmentInProgress,
            format!("{topic}-{partition} is not being moved"),
        )),
        Wanted::Cancel => {
            p.target = None;
            Ok(())
        }
        Wanted::MoveTo(n) if *n == p.leader => {
            p.target = None;
            Ok(())
        }
        Wanted::MoveTo(n) if !target_ok => Err((
            ResponseError::InvalidReplicaAssignment,
            format!("broker {n} is not a live broker that takes partitions"),
        )),
        Wanted::MoveTo(n) => {
            p.target = Some(*n);
            Ok(())
        }
    }
}

fn parse(replicas: &Option<Vec<kafka_protocol::messages::BrokerId>>) -> Parsed {
    let Some(replicas) = replicas else {
        return Ok(Wanted::Cancel);
    };
    let mut ids: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    ids.dedup();
    match ids.as_slice() {
        [one] => Ok(Wanted::MoveTo(*one)),
        [] => Err((
            ResponseError::InvalidReplicaAssignment,
            "an empty replica list".into(),
        )),
        _ => Err((
            ResponseError::InvalidReplicationFactor,
            "the bucket is the only replica: name one broker, the next leader".into(),
        )),
    }
}

pub async fn alter(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let requests: Vec<(String, i32, Parsed)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, parse(&p.replicas)))
        })
        .collect();
    // The answers of the attempt that was written (or of the last read, when nothing
    // needed writing).
    let mut results: Vec<Answer> = Vec::new();
    let outcome = broker
        .metadata
        .update_if(|m| {
            results = requests
                .iter()
                .map(|(t, p, w)| apply(m, t, *p, w))
                .collect();
            Ok::<_, StorageError>(results.iter().any(Result::is_ok).then_some(()))
        })
        .await;
    if let Err(e) = outcome {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(e.kafka_error().code())
            .with_error_message(Some(str_bytes(e.to_string())));
    }
    let moves = results.iter().filter(|r| r.is_ok()).count();
    if moves > 0 {
        info!(moves, "partition reassignments accepted");
    }
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for ((topic, partition, _), r) in requests.into_iter().zip(results) {
        let pr = ReassignablePartitionResponse::default().with_partition_index(partition);
        let pr = match r {
            Ok(()) => pr,
            Err((e, msg)) => pr
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(msg))),
        };
        match responses.last_mut() {
            Some(t) if t.name.0.as_str() == topic => t.partitions.push(pr),
            _ => responses.push(
                ReassignableTopicResponse::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![pr]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

pub fn list(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let meta = broker.metadata.current();
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&partition)),
    };
    let topics = meta
        .topics
        .iter()
        .filter_map(|(name, t)| {
            let partitions: Vec<OngoingPartitionReassignment> = t
                .partitions
                .iter()
                .enumerate()
                .filter(|(i, p)| p.target.is_some() && wanted(name, *i as i32))
                .map(|(i, p)| {
                    let to = p.target.expect("filtered");
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i as i32)
                        .with_replicas(vec![p.leader.into(), to.into()])
                        .with_adding_replicas(vec![to.into()])
                        .with_removing_replicas(vec![p.leader.into()])
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(name.clone()))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
