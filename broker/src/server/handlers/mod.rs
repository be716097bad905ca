//! One module per Kafka API or family of APIs ([`groups`]). Handlers see decoded
//! requests and build responses; they never touch sockets or codec details.

pub mod acls;
pub mod api_versions;
pub mod client_quotas;
pub mod cluster;
pub mod configs;
pub mod delete_records;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod leader_epochs;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassignments;
pub mod scram_credentials;
pub mod topics;

#[cfg(test)]
mod dispatch_tests;

use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_protocol::DecodedRequest;

use super::Broker;
use crate::coordination::TopicMetadata;
use crate::security::Principal;
use crate::storage::PartitionLog;

/// What a connection does once a request is handled.
#[derive(Debug)]
pub enum Reply {
    Send(Box<ResponseKind>),
    /// acks=0 produce: no response.
    Silent,
    /// Close the connection (acks=0 produce that failed: the client learns it must
    /// refresh metadata, as with Kafka).
    Close,
}

/// A response to send.
pub fn reply(response: ResponseKind) -> Reply {
    Reply::Send(Box::new(response))
}

/// A reply still being worked out.
pub type PendingResponse = BoxFuture<'static, Reply>;

/// Routes a request to its handler. Produce does its ordering-sensitive part (offset
/// assignment) before this returns; everything else runs inside the returned future.
/// Who sent a request: client id and `/ip` as group APIs report them (like Kafka), the
/// authenticated principal, and the listener it came through.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub host: String,
    pub principal: Principal,
    pub listener: String,
    /// The client's address, as ACL hosts name it.
    pub address: std::net::IpAddr,
}

pub async fn dispatch(
    broker: Arc<Broker>,
    request: DecodedRequest,
    client: Client,
) -> PendingResponse {
    let v = request.version;
    let ready = |r: ResponseKind| -> PendingResponse { Box::pin(async move { reply(r) }) };
    match request.body {
        RequestKind::Produce(r) => produce::handle(broker, v, r, &client.id).await,
        RequestKind::Fetch(r) => {
            Box::pin(async move { reply(ResponseKind::Fetch(fetch::handle(&broker, v, r).await)) })
        }
        RequestKind::ApiVersions(_) => ready(ResponseKind::ApiVersions(api_versions::handle())),
        RequestKind::Metadata(r) => Box::pin(async move {
            reply(ResponseKind::Metadata(
                metadata::handle(&broker, v, &client.listener, r).await,
            ))
        }),
        RequestKind::ListOffsets(r) => Box::pin(async move {
            reply(ResponseKind::ListOffsets(
                list_offsets::handle(&broker, v, r).await,
            ))
        }),
        RequestKind::CreateTopics(r) => {
            Box::pin(
                async move { reply(ResponseKind::CreateTopics(topics::create(&broker, r).await)) },
            )
        }
        RequestKind::DeleteTopics(r) => {
            Box::pin(
                async move { reply(ResponseKind::DeleteTopics(topics::delete(&broker, r).await)) },
            )
        }
        RequestKind::CreatePartitions(r) => Box::pin(async move {
            reply(ResponseKind::CreatePartitions(
                topics::create_partitions(&broker, r).await,
            ))
        }),
        RequestKind::DescribeConfigs(r) => {
            ready(ResponseKind::DescribeConfigs(configs::describe(&broker, r)))
        }
        RequestKind::AlterConfigs(r) => Box::pin(async move {
            reply(ResponseKind::AlterConfigs(
                configs::alter_legacy(&broker, r).await,
            ))
        }),
        RequestKind::IncrementalAlterConfigs(r) => Box::pin(async move {
            reply(ResponseKind::IncrementalAlterConfigs(
                configs::alter(&broker, r).await,
            ))
        }),
        RequestKind::DescribeCluster(r) => ready(ResponseKind::DescribeCluster(cluster::describe(
            &broker,
            &client.listener,
            r,
        ))),
        RequestKind::DeleteRecords(r) => Box::pin(async move {
            reply(ResponseKind::DeleteRecords(
                delete_records::handle(&broker, r).await,
            ))
        }),
        RequestKind::InitProducerId(r) => Box::pin(async move {
            reply(ResponseKind::InitProducerId(
                init_producer_id::handle(&broker, r).await,
            ))
        }),
        RequestKind::FindCoordinator(r) => Box::pin(async move {
            reply(ResponseKind::FindCoordinator(
                groups::coordinator::find(&broker, v, &client.listener, r).await,
            ))
        }),
        RequestKind::JoinGroup(r) => Box::pin(async move {
            reply(ResponseKind::JoinGroup(
                groups::classic::join(&broker, v, client, r).await,
            ))
        }),
        RequestKind::SyncGroup(r) => Box::pin(async move {
            reply(ResponseKind::SyncGroup(
                groups::classic::sync(&broker, r).await,
            ))
        }),
        RequestKind::Heartbeat(r) => ready(ResponseKind::Heartbeat(groups::classic::heartbeat(
            &broker, r,
        ))),
        RequestKind::LeaveGroup(r) => ready(ResponseKind::LeaveGroup(groups::classic::leave(
            &broker, v, r,
        ))),
        RequestKind::OffsetCommit(r) => Box::pin(async move {
            reply(ResponseKind::OffsetCommit(
                groups::offsets::commit(&broker, r).await,
            ))
        }),
        RequestKind::OffsetFetch(r) => Box::pin(async move {
            reply(ResponseKind::OffsetFetch(
                groups::offsets::fetch(&broker, v, r).await,
            ))
        }),
        RequestKind::OffsetDelete(r) => Box::pin(async move {
            reply(ResponseKind::OffsetDelete(
                groups::offsets::delete(&broker, r).await,
            ))
        }),
        RequestKind::DescribeGroups(r) => ready(ResponseKind::DescribeGroups(
            groups::admin::describe(&broker, r),
        )),
        RequestKind::ListGroups(r) => {
            ready(ResponseKind::ListGroups(groups::admin::list(&broker, r)))
        }
        RequestKind::DeleteGroups(r) => Box::pin(async move {
            reply(ResponseKind::DeleteGroups(
                groups::admin::delete(&broker, r).await,
            ))
        }),
        RequestKind::ConsumerGroupHeartbeat(r) => ready(ResponseKind::ConsumerGroupHeartbeat(
            groups::kip848::heartbeat(&broker, client, r),
        )),
        RequestKind::ConsumerGroupDescribe(r) => ready(ResponseKind::ConsumerGroupDescribe(
            groups::kip848::describe(&broker, r),
        )),
        RequestKind::OffsetForLeaderEpoch(r) => ready(ResponseKind::OffsetForLeaderEpoch(
            leader_epochs::handle(&broker, r),
        )),
        RequestKind::AlterPartitionReassignments(r) => Box::pin(async move {
            reply(ResponseKind::AlterPartitionReassignments(
                reassignments::alter(&broker, r).await,
            ))
        }),
        RequestKind::ListPartitionReassignments(r) => ready(
            ResponseKind::ListPartitionReassignments(reassignments::list(&broker, r)),
        ),
        // A SASL listener's connection handles its own login; anywhere else there is
        // none to do (Kafka answers ILLEGAL_SASL_STATE too).
        RequestKind::SaslHandshake(_) => ready(ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        )),
        RequestKind::SaslAuthenticate(_) => ready(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(str_bytes("this listener does not use SASL"))),
        )),
        RequestKind::DescribeUserScramCredentials(r) => ready(
            ResponseKind::DescribeUserScramCredentials(scram_credentials::describe(&broker, r)),
        ),
        RequestKind::AlterUserScramCredentials(r) => Box::pin(async move {
            reply(ResponseKind::AlterUserScramCredentials(
                scram_credentials::alter(&broker, &client, r).await,
            ))
        }),
        RequestKind::DescribeAcls(r) => {
            ready(ResponseKind::DescribeAcls(acls::describe(&broker, r)))
        }
        RequestKind::CreateAcls(r) => Box::pin(async move {
            reply(ResponseKind::CreateAcls(
                acls::create(&broker, &client, r).await,
            ))
        }),
        RequestKind::DeleteAcls(r) => Box::pin(async move {
            reply(ResponseKind::DeleteAcls(
                acls::delete(&broker, &client, r).await,
            ))
        }),
        RequestKind::DescribeClientQuotas(r) => ready(ResponseKind::DescribeClientQuotas(
            client_quotas::describe(&broker, r),
        )),
        RequestKind::AlterClientQuotas(r) => Box::pin(async move {
            reply(ResponseKind::AlterClientQuotas(
                client_quotas::alter(&broker, &client, r).await,
            ))
        }),
        other => {
            // decode_request only lets through the APIs in sluice_protocol's table of
            // supported APIs; dispatch_tests checks each of them has an arm here.
            unreachable!("no handler for {other:?}")
        }
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

/// Partition `index` of `topic` as led here: UNKNOWN_TOPIC_OR_PARTITION when the topic
/// or index does not exist, NOT_LEADER_OR_FOLLOWER when another broker leads it or it
/// is being moved (clients refresh metadata and retry).
pub(crate) fn led_partition(
    broker: &Broker,
    topic: Option<&TopicMetadata>,
    index: i32,
) -> Result<Arc<PartitionLog>, ResponseError> {
    let topic = topic.ok_or(ResponseError::UnknownTopicOrPartition)?;
    if index < 0 || index as usize >= topic.partitions.len() {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    match broker.engine.partition(topic.id, index) {
        Some(p) if !p.is_closed() => Ok(p),
        _ => Err(ResponseError::NotLeaderOrFollower),
    }
}

/// Kafka's leader epoch check: a client's epoch older than ours is fenced, newer is
/// unknown to us; -1 skips the check.
pub(crate) fn check_leader_epoch(requested: i32, current: i32) -> Option<ResponseError> {
    match requested {
        e if e < 0 || e == current => None,
        e if e < current => Some(ResponseError::FencedLeaderEpoch),
        _ => Some(ResponseError::UnknownLeaderEpoch),
    }
}
