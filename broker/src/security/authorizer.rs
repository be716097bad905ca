//! Whether a principal may do an operation on a resource, as Kafka's
//! `StandardAuthorizer` decides: super users may do anything; a matching DENY wins over
//! any ALLOW; an ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE, and of
//! ALTER_CONFIGS implies DESCRIBE_CONFIGS; a resource no ACL names is open only when
//! `allow.everyone.if.no.acl.found` is set.

use std::net::IpAddr;

use super::acl::{AclBinding, Operation, Permission, ResourceType, WILDCARD, WILDCARD_PRINCIPAL};
use super::Principal;

#[derive(Debug, Clone)]
pub struct Authorizer {
    /// Off: every request is allowed (no authentication configured, Kafka without an
    /// authorizer).
    pub enabled: bool,
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// Who is asking and from where.
pub struct Requester<'a> {
    pub principal: &'a Principal,
    pub host: IpAddr,
}

impl Authorizer {
    pub fn is_super_user(&self, principal: &Principal) -> bool {
        let name = principal.to_string();
        self.super_users.iter().any(|s| s == &name)
    }

    pub fn authorize(
        &self,
        acls: &[AclBinding],
        who: &Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.is_super_user(who.principal) {
            return true;
        }
        let principal = who.principal.to_string();
        let host = who.host.to_string();
        let mut any_for_resource = false;
        let mut allowed = false;
        for acl in acls.iter().filter(|a| a.covers(resource_type, name)) {
            any_for_resource = true;
            let applies = (acl.principal == principal || acl.principal == WILDCARD_PRINCIPAL)
                && (acl.host == WILDCARD || acl.host == host);
            if !applies {
                continue;
            }
            match acl.permission {
                Permission::Deny
                    if acl.operation == operation || acl.operation == Operation::All =>
                {
                    return false
                }
                Permission::Allow if grants(acl.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_for_resource && self.allow_everyone_if_no_acl_found)
    }

    /// Whether the principal may do `operation` on at least one resource of the type,
    /// as Kafka's `authorizeByResourceType` (idempotent producers need WRITE on some
    /// topic, KIP-679).
    pub fn authorize_any(
        &self,
        acls: &[AclBinding],
        who: &Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled || self.is_super_user(who.principal) {
            return true;
        }
        let principal = who.principal.to_string();
        let host = who.host.to_string();
        let applies = |a: &&AclBinding| {
            a.resource_type == resource_type
                && (a.principal == principal || a.principal == WILDCARD_PRINCIPAL)
                && (a.host == WILDCARD || a.host == host)
        };
        let denied_everywhere = acls.iter().filter(applies).any(|a| {
            a.permission == Permission::Deny
                && a.resource_name == WILDCARD
                && (a.operation == operation || a.operation == Operation::All)
        });
        let allowed_somewhere = acls
            .iter()
            .filter(applies)
            .any(|a| a.permission == Permission::Allow && grants(a.operation, operation));
        !denied_everywhere
            && (allowed_somewhere
                || (self.allow_everyone_if_no_acl_found
                    && !acls.iter().any(|a| a.resource_type == resource_type)))
    }
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn grants(granted: Operation, wanted: Operation) -> bool {
    use Operation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

#[cfg(test)]
mod tests {
    use super::super::acl::PatternType;
    use super::*;

    fn acl(name: &str, pt: PatternType, who: &str, op: Operation, perm: Permission) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: WILDCARD.into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn kafkas_rules() {
        let z = Authorizer {
            enabled: true,
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: false,
        };
        let alice = Principal::user("alice");
        let who = Requester {
            principal: &alice,
            host: "10.0.0.1".parse().unwrap(),
        };
        let acls = vec![
            acl(
                "logs-",
                PatternType::Prefixed,
                "User:alice",
                Operation::Read,
                Permission::Allow,
            ),
            acl(
                "logs-secret",
                PatternType::Literal,
                "User:*",
                Operation::Read,
                Permission::Deny,
            ),
            acl(
                "audit",
                PatternType::Literal,
                "User:alice",
                Operation::All,
                Permission::Allow,
            ),
        ];
        let t = |op, name| z.authorize(&acls, &who, op, ResourceType::Topic, name);
        assert!(t(Operation::Read, "logs-a"));
        assert!(t(Operation::Describe, "logs-a"), "READ implies DESCRIBE");
        assert!(!t(Operation::Write, "logs-a"));
        assert!(!t(Operation::Read, "logs-secret"), "DENY wins");
        assert!(
            t(Operation::Describe, "logs-secret"),
            "a DENY of READ leaves DESCRIBE"
        );
        assert!(t(Operation::Delete, "audit"));
        assert!(!t(Operation::Read, "other"), "no ACL: closed by default");
        let admin = Principal::user("admin");
        let root = Requester {
            principal: &admin,
            host: "10.0.0.1".parse().unwrap(),
        };
        assert!(z.authorize(
            &acls,
            &root,
            Operation::Alter,
            ResourceType::Cluster,
            "kafka-cluster"
        ));
        let open = Authorizer {
            allow_everyone_if_no_acl_found: true,
            ..z.clone()
        };
        assert!(open.authorize(&acls, &who, Operation::Write, ResourceType::Topic, "other"));
        assert!(!open.authorize(&acls, &who, Operation::Write, ResourceType::Topic, "logs-a"));
        // WRITE somewhere: alice may do ALL on `audit`; bob has no ACL at all.
        assert!(z.authorize_any(&acls, &who, Operation::Write, ResourceType::Topic));
        let bob = Principal::user("bob");
        let nobody = Requester {
            principal: &bob,
            host: "10.0.0.1".parse().unwrap(),
        };
        assert!(!z.authorize_any(&acls, &nobody, Operation::Write, ResourceType::Topic));
        let mut host_bound = acl(
            "h",
            PatternType::Literal,
            "User:alice",
            Operation::Read,
            Permission::Allow,
        );
        host_bound.host = "10.0.0.2".into();
        assert!(!z.authorize(
            &[host_bound],
            &who,
            Operation::Read,
            ResourceType::Topic,
            "h"
        ));
    }
}
