//! DescribeAcls, CreateAcls and DeleteAcls (`kafka-acls.sh`), on the ACLs kept in the
//! security document: a change is one compare-and-swap, applied by every broker within
//! one metadata poll. The model and its matching rules are `security::acl`.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::ResponseError;
use tracing::info;

use super::{str_bytes, Client};
use crate::security::acl::{
    self, AclBinding, AclFilter, InvalidAcl, Operation, PatternType, Permission, ResourceType,
};
use crate::server::Broker;
use crate::storage::StorageError;

fn disabled() -> (ResponseError, String) {
    (
        ResponseError::SecurityDisabled,
        "no authorizer: the broker has no authenticated listener (--authorizer)".into(),
    )
}

/// A filter from a request's fields; unknown codes are INVALID_REQUEST.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: Option<String>,
    pattern_type: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, InvalidAcl> {
    let unknown = |what: &str, code: i8| InvalidAcl(format!("unknown {what} {code}"));
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or(unknown("resource type", resource_type))?,
        resource_name,
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or(unknown("pattern type", pattern_type))?,
        principal,
        host,
        operation: Operation::from_code(operation).ok_or(unknown("operation", operation))?,
        permission: Permission::from_code(permission).ok_or(unknown("permission", permission))?,
    })
}

pub fn describe(broker: &Broker, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let resp = DescribeAclsResponse::default().with_error_message(None);
    if !broker.security.authorizer.enabled {
        let (code, message) = disabled();
        return resp
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
    }
    let f = match filter(
        req.resource_type_filter,
        req.resource_name_filter.map(|s| s.to_string()),
        req.pattern_type_filter,
        req.principal_filter.map(|s| s.to_string()),
        req.host_filter.map(|s| s.to_string()),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => {
            return resp
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    };
    let state = broker.security.store.current();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for a in state.acls.iter().filter(|a| f.matches(a)) {
        let description = AclDescription::default()
            .with_principal(str_bytes(&a.principal))
            .with_host(str_bytes(&a.host))
            .with_operation(a.operation.code())
            .with_permission_type(a.permission.code());
        let same = |r: &&mut DescribeAclsResource| {
            r.resource_type == a.resource_type.code()
                && r.resource_name.as_str() == a.resource_name
                && r.pattern_type == a.pattern_type.code()
        };
        match resources.iter_mut().find(same) {
            Some(r) => r.acls.push(description),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(a.resource_type.code())
                    .with_resource_name(str_bytes(&a.resource_name))
                    .with_pattern_type(a.pattern_type.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    resp.with_resources(resources)
}

pub async fn create(
    broker: &Broker,
    client: &Client,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let checked: Vec<Result<AclBinding, (ResponseError, String)>> = req
        .creations
        .iter()
        .map(|c| {
            if !broker.security.authorizer.enabled {
                return Err(disabled());
            }
            let invalid = |e: InvalidAcl| (ResponseError::InvalidRequest, e.to_string());
            let unknown = |what: &str| (ResponseError::InvalidRequest, format!("unknown {what}"));
            let acl = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)
                    .ok_or_else(|| unknown("resource type"))?,
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)
                    .ok_or_else(|| unknown("pattern type"))?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: Operation::from_code(c.operation).ok_or_else(|| unknown("operation"))?,
                permission: Permission::from_code(c.permission_type)
                    .ok_or_else(|| unknown("permission"))?,
            };
            acl.validate().map_err(invalid)?;
            Ok(acl)
        })
        .collect();
    let valid: Vec<AclBinding> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let stored = if valid.is_empty() {
        Ok(None)
    } else {
        broker
            .security
            .store
            .update_if(|s| Ok::<_, StorageError>(acl::create(&mut s.acls, &valid).then_some(())))
            .await
    };
    let results = checked
        .into_iter()
        .map(|c| {
            let outcome = match (&c, &stored) {
                (Err(e), _) => Err(e.clone()),
                (Ok(_), Err(e)) => Err((
                    ResponseError::UnknownServerError,
                    format!("the ACL store could not be updated: {e}"),
                )),
                (Ok(_), Ok(_)) => Ok(()),
            };
            if let Ok(acl) = &c {
                info!(target: "sluice::audit", event = "acl_created", principal = %client.principal,
                    source = %client.host, acl = ?acl,
                    result = %outcome.as_ref().map_or_else(|e| e.1.clone(), |()| "ok".into()));
            }
            match outcome {
                Ok(()) => AclCreationResult::default().with_error_message(None),
                Err((code, message)) => AclCreationResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn delete(
    broker: &Broker,
    client: &Client,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let filters: Vec<Result<AclFilter, InvalidAcl>> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref().map(|s| s.to_string()),
                f.pattern_type_filter,
                f.principal_filter.as_ref().map(|s| s.to_string()),
                f.host_filter.as_ref().map(|s| s.to_string()),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let mut removed: Vec<Vec<AclBinding>> = Vec::new();
    let stored = if !broker.security.authorizer.enabled || valid.is_empty() {
        Ok(None)
    } else {
        broker
            .security
            .store
            .update_if(|s| {
                removed = acl::delete(&mut s.acls, &valid);
                Ok::<_, StorageError>(removed.iter().any(|r| !r.is_empty()).then_some(()))
            })
            .await
    };
    let mut removed = removed.into_iter();
    let results = filters
        .into_iter()
        .map(|f| {
            let fail = |code: ResponseError, message: String| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            };
            if !broker.security.authorizer.enabled {
                let (code, message) = disabled();
                return fail(code, message);
            }
            let Ok(f) = f else {
                return fail(ResponseError::InvalidRequest, f.unwrap_err().to_string());
            };
            if let Err(e) = &stored {
                return fail(
                    ResponseError::UnknownServerError,
                    format!("the ACL store could not be updated: {e}"),
                );
            }
            let matched = removed.next().unwrap_or_default();
            info!(target: "sluice::audit", event = "acls_deleted", principal = %client.principal,
                source = %client.host, filter = ?f, deleted = ?matched);
            DeleteAclsFilterResult::default()
                .with_error_message(None)
                .with_matching_acls(
                    matched
                        .into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_error_message(None)
                                .with_resource_type(a.resource_type.code())
                                .with_resource_name(str_bytes(a.resource_name))
                                .with_pattern_type(a.pattern_type.code())
                                .with_principal(str_bytes(a.principal))
                                .with_host(str_bytes(a.host))
                                .with_operation(a.operation.code())
                                .with_permission_type(a.permission.code())
                        })
                        .collect(),
                )
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
