//! Group administration: DescribeGroups, ListGroups and DeleteGroups.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};

use super::code;
use crate::server::handlers::str_bytes;
use crate::server::Broker;

pub fn describe(broker: &Broker, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = broker.groups();
    let described = req
        .groups
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if let Err(e) = groups.check(&id.0) {
                return d.with_error_code(e.code());
            }
            let state = groups.with_group(&id.0, |g| {
                (
                    g.state.name(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.protocol.clone().unwrap_or_default(),
                    g.describe_members(),
                )
            });
            match state {
                Some((state, ptype, proto, members)) => d
                    .with_group_state(str_bytes(state))
                    .with_protocol_type(str_bytes(ptype))
                    .with_protocol_data(str_bytes(proto))
                    .with_members(
                        members
                            .into_iter()
                            .map(|(mid, instance, client, host, metadata, assignment)| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(mid))
                                    .with_group_instance_id(instance.map(str_bytes))
                                    .with_client_id(str_bytes(client))
                                    .with_client_host(str_bytes(host))
                                    .with_member_metadata(metadata)
                                    .with_member_assignment(assignment)
                            })
                            .collect(),
                    ),
                None if groups.has_offsets(&id.0) => d
                    .with_group_state(str_bytes("Empty"))
                    .with_protocol_type(str_bytes("consumer")),
                None => d.with_group_state(str_bytes("Dead")),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

pub fn list(broker: &Broker, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let matches = |filter: &[String], v: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(v))
    };
    let groups = broker
        .groups()
        .list()
        .into_iter()
        .filter(|(_, _, state, kind)| matches(&states, state) && matches(&types, kind))
        .map(|(id, ptype, state, kind)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(ptype))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for id in req.groups_names {
        let r = broker.groups().delete_group(&id.0).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code(r)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
