//! Cluster operations and configs: ListPartitionReassignments and DescribeAcls need
//! DESCRIBE on the cluster (DescribeCluster, like Metadata, is open to all); reassignments, credentials and ACL changes
//! ALTER; client quotas DESCRIBE_CONFIGS / ALTER_CONFIGS; an idempotent producer id
//! IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679). Topic configs need
//! DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, broker configs on the cluster.

use kafka_protocol::messages::alter_client_quotas_response::EntryData;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterClientQuotasResponse,
    AlterPartitionReassignmentsResponse, AlterUserScramCredentialsResponse, CreateAclsResponse,
    DeleteAclsResponse, DescribeAclsResponse, DescribeClientQuotasResponse,
    DescribeUserScramCredentialsResponse, InitProducerIdResponse,
    ListPartitionReassignmentsResponse, RequestKind, ResponseKind,
};
use kafka_protocol::ResponseError;

use super::{narrow, patch, refuse, take_denied, Check, Ctx};
use crate::security::acl::{Operation, ResourceType};

const CLUSTER: ResponseError = ResponseError::ClusterAuthorizationFailed;
const TOPIC_RESOURCE: i8 = 2;

pub fn check(ctx: &Ctx<'_>, request: &mut RequestKind) -> Option<Check> {
    let cluster = |op| ctx.allows_cluster(op);
    Some(match request {
        // Open to every client, like Metadata (Kafka checks nothing here either).
        RequestKind::DescribeCluster(r) => {
            if !r.include_cluster_authorized_operations {
                return Some(Check::Allow);
            }
            let ops = ctx.authorized_operations(ResourceType::Cluster, crate::security::acl::CLUSTER_NAME);
            patch!(DescribeCluster, |d| d.cluster_authorized_operations = ops)
        }
        RequestKind::ListPartitionReassignments(_) if !cluster(Operation::Describe) => {
            refuse!(ListPartitionReassignments, ListPartitionReassignmentsResponse, CLUSTER)
        }
        RequestKind::AlterPartitionReassignments(_) if !cluster(Operation::Alter) => {
            refuse!(AlterPartitionReassignments, AlterPartitionReassignmentsResponse, CLUSTER)
        }
        RequestKind::DescribeUserScramCredentials(_) if !cluster(Operation::Describe) => {
            refuse!(DescribeUserScramCredentials, DescribeUserScramCredentialsResponse, CLUSTER)
        }
        RequestKind::AlterUserScramCredentials(r) if !cluster(Operation::Alter) => {
            let mut users: Vec<String> = Vec::new();
            for u in r.deletions.iter().map(|d| &d.name).chain(r.upsertions.iter().map(|u| &u.name)) {
                if !users.iter().any(|x| x == u.as_str()) {
                    users.push(u.to_string());
                }
            }
            Check::Deny(Box::new(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .into_iter()
                        .map(|u| {
                            AlterUserScramCredentialsResult::default()
                                .with_user(u.into())
                                .with_error_code(CLUSTER.code())
                                .with_error_message(None)
                        })
                        .collect(),
                ),
            )))
        }
        RequestKind::DescribeClientQuotas(_) if !cluster(Operation::DescribeConfigs) => {
            refuse!(DescribeClientQuotas, DescribeClientQuotasResponse, CLUSTER)
        }
        RequestKind::AlterClientQuotas(r) if !cluster(Operation::AlterConfigs) => {
            Check::Deny(Box::new(ResponseKind::AlterClientQuotas(
                AlterClientQuotasResponse::default().with_entries(
                    r.entries
                        .iter()
                        .map(|e| {
                            EntryData::default()
                                .with_error_code(CLUSTER.code())
                                .with_error_message(None)
                                .with_entity(
                                    e.entity
                                        .iter()
                                        .map(|x| {
                                            kafka_protocol::messages::alter_client_quotas_response::EntityData::default()
                                                .with_entity_type(x.entity_type.clone())
                                                .with_entity_name(x.entity_name.clone())
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            )))
        }
        RequestKind::DescribeAcls(_) if !cluster(Operation::Describe) => {
            refuse!(DescribeAcls, DescribeAclsResponse, CLUSTER)
        }
        RequestKind::CreateAcls(r) if !cluster(Operation::Alter) => {
            Check::Deny(Box::new(ResponseKind::CreateAcls(
                CreateAclsResponse::default().with_results(
                    r.creations
                        .iter()
                        .map(|_| AclCreationResult::default().with_error_code(CLUSTER.code()))
                        .collect(),
                ),
            )))
        }
        RequestKind::DeleteAcls(r) if !cluster(Operation::Alter) => {
            Check::Deny(Box::new(ResponseKind::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(
                    r.filters
                        .iter()
                        .map(|_| DeleteAclsFilterResult::default().with_error_code(CLUSTER.code()))
                        .collect(),
                ),
            )))
        }
        RequestKind::InitProducerId(r) => {
            let allowed = match &r.transactional_id {
                Some(id) => ctx.allows(Operation::Write, ResourceType::TransactionalId, id),
                None => {
                    cluster(Operation::IdempotentWrite)
                        || ctx.authorizer.authorize_any(
                            &ctx.state.acls,
                            &ctx.who,
                            Operation::Write,
                            ResourceType::Topic,
                        )
                }
            };
            if allowed {
                return Some(Check::Allow);
            }
            let code = if r.transactional_id.is_some() {
                ResponseError::TransactionalIdAuthorizationFailed
            } else {
                CLUSTER
            };
            Check::Deny(Box::new(ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(code.code())
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            )))
        }
        RequestKind::DescribeConfigs(r) => {
            narrow!(&mut r.resources, |res| {
                config_allowed(ctx, res.resource_type, &res.resource_name, Operation::DescribeConfigs)
            }, DescribeConfigs.results, |res| {
                DescribeConfigsResult::default()
                    .with_error_code(config_error(res.resource_type).code())
                    .with_error_message(None)
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name)
            })
        }
        RequestKind::AlterConfigs(r) => {
            narrow!(&mut r.resources, |res| {
                config_allowed(ctx, res.resource_type, &res.resource_name, Operation::AlterConfigs)
            }, AlterConfigs.responses, |res| {
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(config_error(res.resource_type).code())
                    .with_error_message(None)
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name)
            })
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            narrow!(&mut r.resources, |res| {
                config_allowed(ctx, res.resource_type, &res.resource_name, Operation::AlterConfigs)
            }, IncrementalAlterConfigs.responses, |res| {
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(config_error(res.resource_type).code())
                    .with_error_message(None)
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name)
            })
        }
        _ => return None,
    })
}

/// Topic configs are the topic's; every other resource (brokers, groups) the cluster's.
fn config_allowed(ctx: &Ctx<'_>, resource_type: i8, name: &str, op: Operation) -> bool {
    if resource_type == TOPIC_RESOURCE {
        ctx.allows_topic(op, name)
    } else {
        ctx.allows_cluster(op)
    }
}

fn config_error(resource_type: i8) -> ResponseError {
    if resource_type == TOPIC_RESOURCE {
        ResponseError::TopicAuthorizationFailed
    } else {
        CLUSTER
    }
}
