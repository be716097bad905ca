//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::{code, opt_string};
use crate::coordination::groups::classic::JoinRequest;
use crate::server::handlers::{str_bytes, Client};
use crate::server::Broker;

/// JoinGroup v4 asks new members to rejoin with the id it hands out (KIP-394).
const MEMBER_ID_REQUIRED_VERSION: i16 = 4;

pub async fn join(
    broker: &Broker,
    version: i16,
    client: Client,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    // Before v1 there is no rebalance timeout: Kafka uses the session timeout.
    let rebalance_ms = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let outcome = broker
        .groups()
        .join(
            &req.group_id.0,
            JoinRequest {
                member_id: req.member_id.to_string(),
                instance_id: opt_string(&req.group_instance_id),
                client_id: client.id,
                client_host: client.host,
                session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
                rebalance_timeout: Duration::from_millis(rebalance_ms.max(0) as u64),
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
            },
            version >= MEMBER_ID_REQUIRED_VERSION,
        )
        .await;
    JoinGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |e| e.code()))
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        // Before v7 the name is not nullable: Kafka sends "" when there is none.
        .with_protocol_name(match outcome.protocol {
            None if version < 7 => Some(str_bytes("")),
            p => p.map(str_bytes),
        })
        .with_leader(str_bytes(outcome.leader))
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

pub async fn sync(broker: &Broker, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let group = req.group_id.0.to_string();
    let result = broker
        .groups()
        .sync(
            &group,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            assignments,
        )
        .await;
    let (protocol_type, protocol_name) = broker
        .groups()
        .with_group(&group, |g| (g.protocol_type.clone(), g.protocol.clone()))
        .unwrap_or_default();
    let resp = SyncGroupResponse::default()
        .with_protocol_type(protocol_type.map(str_bytes))
        .with_protocol_name(protocol_name.map(str_bytes));
    match result {
        Ok(assignment) => resp.with_assignment(assignment),
        Err(e) => resp.with_error_code(e.code()),
    }
}

pub fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code(broker.groups().heartbeat(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    )))
}

pub fn leave(broker: &Broker, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let groups = broker.groups();
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(code(groups.leave(
            &req.group_id.0,
            &req.member_id,
            None,
        )));
    }
    let members = req
        .members
        .iter()
        .map(|m| {
            let r = groups.leave(
                &req.group_id.0,
                &m.member_id,
                m.group_instance_id.as_deref(),
            );
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code(r))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
