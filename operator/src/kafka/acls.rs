//! ACLs through DescribeAcls, CreateAcls and DeleteAcls (`kafka-acls.sh`), in the model
//! of `sluice_auth::acl`, the one the broker enforces. Any broker serves them; the
//! bootstrap connection is used, so a change reads back at once.

use std::collections::BTreeSet;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::ResponseError;
use sluice_auth::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};

use super::admin::{str_bytes, AdminClient};
use super::AdminError;

/// DescribeAclsRequest and DeleteAclsFilter spell a filter with the same fields.
macro_rules! filter_message {
    ($message:ty, $filter:expr) => {{
        let f: &AclFilter = $filter;
        <$message>::default()
            .with_resource_type_filter(f.resource_type.code())
            .with_resource_name_filter(f.resource_name.as_deref().map(str_bytes))
            .with_pattern_type_filter(f.pattern_type.code())
            .with_principal_filter(f.principal.as_deref().map(str_bytes))
            .with_host_filter(f.host.as_deref().map(str_bytes))
            .with_operation(f.operation.code())
            .with_permission_type(f.permission.code())
    }};
}

impl AdminClient {
    /// The ACLs `filter` matches.
    pub async fn describe_acls(
        &mut self,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, AdminError> {
        let request = filter_message!(DescribeAclsRequest, filter);
        let (response, _) = self.bootstrap.call(&request).await?;
        if response.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::DescribeAcls,
                "ACLs",
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        response
            .resources
            .iter()
            .flat_map(|r| r.acls.iter().map(move |a| binding(r, a)))
            .collect()
    }

    /// Creates `acls` (one already there stays as it is). The first one refused is the
    /// error; the others may have been created.
    pub async fn create_acls(&mut self, acls: &[AclBinding]) -> Result<(), AdminError> {
        let acls = checked(ApiKey::CreateAcls, acls)?;
        if acls.is_empty() {
            return Ok(());
        }
        let request = CreateAclsRequest::default().with_creations(
            acls.iter()
                .map(|a| {
                    AclCreation::default()
                        .with_resource_type(a.resource_type.code())
                        .with_resource_name(str_bytes(&a.resource_name))
                        .with_resource_pattern_type(a.pattern_type.code())
                        .with_principal(str_bytes(&a.principal))
                        .with_host(str_bytes(&a.host))
                        .with_operation(a.operation.code())
                        .with_permission_type(a.permission.code())
                })
                .collect(),
        );
        let (response, _) = self.bootstrap.call(&request).await?;
        if response.results.len() != acls.len() {
            return Err(AdminError::Metadata(format!(
                "CreateAcls of {} ACLs returned {} results",
                acls.len(),
                response.results.len()
            )));
        }
        for (acl, result) in acls.iter().zip(response.results) {
            if result.error_code != 0 {
                return Err(AdminError::kafka(
                    ApiKey::CreateAcls,
                    &show(acl),
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Deletes exactly `acls` (one filter per binding, nothing wider); returns how many
    /// there were. One already gone is not an error.
    pub async fn delete_acls(&mut self, acls: &[AclBinding]) -> Result<usize, AdminError> {
        let acls = checked(ApiKey::DeleteAcls, acls)?;
        if acls.is_empty() {
            return Ok(0);
        }
        let request = DeleteAclsRequest::default().with_filters(
            acls.iter()
                .map(|a| filter_message!(DeleteAclsFilter, &AclFilter::from(*a)))
                .collect(),
        );
        let (response, _) = self.bootstrap.call(&request).await?;
        if response.filter_results.len() != acls.len() {
            return Err(AdminError::Metadata(format!(
                "DeleteAcls of {} ACLs returned {} results",
                acls.len(),
                response.filter_results.len()
            )));
        }
        let mut deleted = 0;
        for (acl, result) in acls.iter().zip(response.filter_results) {
            let refusal = std::iter::once((result.error_code, result.error_message)).chain(
                result
                    .matching_acls
                    .iter()
                    .map(|m| (m.error_code, m.error_message.clone())),
            );
            for (code, message) in refusal {
                if code != 0 {
                    return Err(AdminError::kafka(
                        ApiKey::DeleteAcls,
                        &show(acl),
                        code,
                        message.map(|m| m.to_string()),
                    ));
                }
            }
            deleted += result.matching_acls.len();
        }
        Ok(deleted)
    }
}

/// `acls` without duplicates (a binding deleted twice would count twice), each valid
/// (a binding with ANY in it would delete as a wildcard): checked before anything is
/// sent.
fn checked(api: ApiKey, acls: &[AclBinding]) -> Result<Vec<&AclBinding>, AdminError> {
    let unique: BTreeSet<&AclBinding> = acls.iter().collect();
    for acl in &unique {
        acl.validate().map_err(|e| {
            AdminError::kafka(
                api,
                &show(acl),
                ResponseError::InvalidRequest.code(),
                Some(e.to_string()),
            )
        })?;
    }
    Ok(unique.into_iter().collect())
}

/// One described ACL in the model; a code this client does not know is an error rather
/// than an ACL silently left out.
fn binding(
    resource: &DescribeAclsResource,
    acl: &AclDescription,
) -> Result<AclBinding, AdminError> {
    let known = |what: &str, code: i8| {
        AdminError::Metadata(format!(
            "DescribeAcls returned an unknown {what} code {code}"
        ))
    };
    Ok(AclBinding {
        resource_type: ResourceType::from_code(resource.resource_type)
            .ok_or_else(|| known("resource type", resource.resource_type))?,
        resource_name: resource.resource_name.to_string(),
        pattern_type: PatternType::from_code(resource.pattern_type)
            .ok_or_else(|| known("pattern type", resource.pattern_type))?,
        principal: acl.principal.to_string(),
        host: acl.host.to_string(),
        operation: Operation::from_code(acl.operation)
            .ok_or_else(|| known("operation", acl.operation))?,
        permission: Permission::from_code(acl.permission_type)
            .ok_or_else(|| known("permission", acl.permission_type))?,
    })
}

/// An ACL as errors name it: `Allow User:alice Read on Topic logs (Literal) from *`.
fn show(acl: &AclBinding) -> String {
    format!(
        "{:?} {} {:?} on {:?} {} ({:?}) from {}",
        acl.permission,
        acl.principal,
        acl.operation,
        acl.resource_type,
        acl.resource_name,
        acl.pattern_type,
        acl.host
    )
}
