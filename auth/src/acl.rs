//! Kafka's ACL model (KIP-11, KIP-290 prefixed patterns): bindings of a resource pattern
//! to an entry (principal, host, operation, permission), and the filters that
//! DescribeAcls and DeleteAcls match them with. Codes are Kafka's wire values.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal wildcard resource, principal or host.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! codes {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }
    };
}

codes!(
    /// What kind of thing an ACL is about.
    ResourceType { Any = 1, Topic = 2, Group = 3, Cluster = 4, TransactionalId = 5, DelegationToken = 6, User = 7 }
);
codes!(
    /// How an ACL's resource name matches (`Any` and `Match` only in filters).
    PatternType { Any = 1, Match = 2, Literal = 3, Prefixed = 4 }
);
codes!(
    Operation {
        Any = 1, All = 2, Read = 3, Write = 4, Create = 5, Delete = 6, Alter = 7, Describe = 8,
        ClusterAction = 9, DescribeConfigs = 10, AlterConfigs = 11, IdempotentWrite = 12,
        CreateTokens = 13, DescribeTokens = 14,
    }
);
codes!(Permission { Any = 1, Deny = 2, Allow = 3 });

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// A DescribeAcls or DeleteAcls filter; None matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// Kafka's checks of an ACL to create.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let bad = |m: &str| Err(InvalidAcl(m.to_string()));
        if self.resource_type == ResourceType::Any {
            return bad("an ACL needs a resource type, not ANY");
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return bad("an ACL's pattern type must be LITERAL or PREFIXED");
        }
        if self.operation == Operation::Any || self.permission == Permission::Any {
            return bad("an ACL needs an operation and a permission, not ANY");
        }
        if self.resource_name.is_empty() {
            return bad("an ACL's resource name must not be empty");
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return bad("the cluster resource is named kafka-cluster");
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return bad("an ACL's principal must be TYPE:NAME, e.g. User:alice"),
        }
        if self.host.is_empty() {
            return bad("an ACL's host must be * or an address");
        }
        Ok(())
    }

    /// Whether this ACL is about the resource `name` of `resource_type`.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

impl AclFilter {
    /// Matches every ACL (`kafka-acls.sh --list` with no options).
    pub fn every() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let resource = (self.resource_type == ResourceType::Any
            || self.resource_type == acl.resource_type)
            && match (self.pattern_type, &self.resource_name) {
                (PatternType::Any, None) => true,
                (PatternType::Any, Some(n)) => &acl.resource_name == n,
                (PatternType::Match, None) => true,
                (PatternType::Match, Some(n)) => match acl.pattern_type {
                    PatternType::Literal => {
                        &acl.resource_name == n || acl.resource_name == WILDCARD
                    }
                    PatternType::Prefixed => n.starts_with(&acl.resource_name),
                    _ => false,
                },
                (p, name) => {
                    p == acl.pattern_type && name.as_ref().is_none_or(|n| n == &acl.resource_name)
                }
            };
        resource
            && self.principal.as_ref().is_none_or(|p| p == &acl.principal)
            && self.host.as_ref().is_none_or(|h| h == &acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}

/// The filter that matches `acl` and nothing else, when `acl` is valid (a binding with
/// ANY or MATCH in it would be a wildcard): DeleteAcls of exactly one binding.
impl From<&AclBinding> for AclFilter {
    fn from(acl: &AclBinding) -> Self {
        AclFilter {
            resource_type: acl.resource_type,
            resource_name: Some(acl.resource_name.clone()),
            pattern_type: acl.pattern_type,
            principal: Some(acl.principal.clone()),
            host: Some(acl.host.clone()),
            operation: acl.operation,
            permission: acl.permission,
        }
    }
}

/// Adds `acls` to `all` (an ACL already there is not added twice); returns whether
/// anything changed.
pub fn create(all: &mut Vec<AclBinding>, acls: &[AclBinding]) -> bool {
    let mut changed = false;
    for acl in acls {
        if !all.contains(acl) {
            all.push(acl.clone());
            changed = true;
        }
    }
    changed
}

/// Removes the ACLs each filter matches; returns them per filter.
pub fn delete(all: &mut Vec<AclBinding>, filters: &[AclFilter]) -> Vec<Vec<AclBinding>> {
    let matched: Vec<Vec<AclBinding>> = filters
        .iter()
        .map(|f| all.iter().filter(|a| f.matches(a)).cloned().collect())
        .collect();
    all.retain(|a| !filters.iter().any(|f| f.matches(a)));
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn codes_are_kafkas() {
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(PatternType::from_code(4), Some(PatternType::Prefixed));
        assert_eq!(Operation::IdempotentWrite.code(), 12);
        assert_eq!(Permission::from_code(0), None);
    }

    #[test]
    fn filters_match_as_kafka() {
        let lit = acl(
            ResourceType::Topic,
            "logs",
            PatternType::Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let pre = acl(
            ResourceType::Topic,
            "lo",
            PatternType::Prefixed,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let star = acl(
            ResourceType::Topic,
            "*",
            PatternType::Literal,
            "User:b",
            Operation::Write,
            Permission::Deny,
        );
        let f = |pt, name: Option<&str>| AclFilter {
            resource_type: ResourceType::Any,
            resource_name: name.map(str::to_string),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        };
        let matching = f(PatternType::Match, Some("logs"));
        assert!(matching.matches(&lit) && matching.matches(&pre) && matching.matches(&star));
        let literal = f(PatternType::Literal, Some("logs"));
        assert!(literal.matches(&lit) && !literal.matches(&pre) && !literal.matches(&star));
        assert!(f(PatternType::Any, None).matches(&pre));
        assert!(
            f(PatternType::Prefixed, None).matches(&pre)
                && !f(PatternType::Prefixed, None).matches(&lit)
        );
        let mut all = vec![];
        assert!(create(&mut all, &[lit.clone(), pre.clone(), lit.clone()]));
        assert_eq!(all.len(), 2);
        let removed = delete(&mut all, &[literal]);
        assert_eq!(removed, vec![vec![lit]]);
        assert_eq!(all, vec![pre]);
    }

    #[test]
    fn a_bindings_own_filter_matches_it_alone() {
        let lit = acl(
            ResourceType::Topic,
            "*",
            PatternType::Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let exact = AclFilter::from(&lit);
        assert!(exact.matches(&lit));
        let others = [
            AclBinding {
                pattern_type: PatternType::Prefixed,
                ..lit.clone()
            },
            AclBinding {
                resource_name: "logs".into(),
                ..lit.clone()
            },
            AclBinding {
                host: "10.0.0.1".into(),
                ..lit.clone()
            },
            AclBinding {
                operation: Operation::Write,
                ..lit.clone()
            },
            AclBinding {
                permission: Permission::Deny,
                ..lit.clone()
            },
        ];
        for other in &others {
            assert!(!exact.matches(other), "{other:?}");
        }
    }

    #[test]
    fn invalid_acls() {
        let mut a = acl(
            ResourceType::Cluster,
            "c",
            PatternType::Literal,
            "User:a",
            Operation::Alter,
            Permission::Allow,
        );
        assert!(a.validate().is_err());
        a.resource_name = CLUSTER_NAME.into();
        assert!(a.validate().is_ok());
        a.principal = "alice".into();
        assert!(a.validate().is_err());
        a.principal = "User:alice".into();
        a.pattern_type = PatternType::Match;
        assert!(a.validate().is_err());
    }
}
