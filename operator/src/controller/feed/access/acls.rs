//! The ACLs a Feed's `spec.access` declares, and the plan that brings the cluster's ACLs
//! to them (pure). Ownership lives in `status.access.acls`: the operator removes only
//! ACLs it recorded there, so ACLs made by hand are never touched.

use std::collections::BTreeSet;

use sluice_auth::acl::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};

use crate::crd::access::{AccessSpec, AclEntry, GroupPattern};

/// The principal of a declared user.
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

fn allow(
    user: &str,
    operation: Operation,
    resource_type: ResourceType,
    pattern_type: PatternType,
    resource_name: &str,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: resource_name.to_string(),
        pattern_type,
        principal: principal(user),
        host: WILDCARD.to_string(),
        operation,
        permission: Permission::Allow,
    }
}

/// A group pattern as an ACL resource: `(pattern type, name)`.
pub fn group_resource(group: &GroupPattern) -> (PatternType, &str) {
    match (&group.name, &group.prefix) {
        (Some(name), _) => (PatternType::Literal, name),
        (None, Some(prefix)) => (PatternType::Prefixed, prefix),
        (None, None) => (PatternType::Literal, ""),
    }
}

/// Every ACL `access` declares on `topic`. Producers get WRITE and DESCRIBE on the topic
/// (Kafka lets WRITE on a topic stand for IDEMPOTENT_WRITE); consumers READ and DESCRIBE
/// on it and READ on each of their groups.
pub fn desired(topic: &str, access: Option<&AccessSpec>) -> BTreeSet<AclBinding> {
    let mut out = BTreeSet::new();
    let Some(access) = access else {
        return out;
    };
    let on_topic =
        |user: &str, op| allow(user, op, ResourceType::Topic, PatternType::Literal, topic);
    for p in &access.producers {
        out.insert(on_topic(&p.user, Operation::Write));
        out.insert(on_topic(&p.user, Operation::Describe));
    }
    for c in &access.consumers {
        out.insert(on_topic(&c.user, Operation::Read));
        out.insert(on_topic(&c.user, Operation::Describe));
        for g in &c.groups {
            let (pattern, name) = group_resource(g);
            out.insert(allow(
                &c.user,
                Operation::Read,
                ResourceType::Group,
                pattern,
                name,
            ));
        }
    }
    out
}

/// What to change on the cluster, and what to report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AclPlan {
    /// Declared and missing: created.
    pub create: Vec<AclBinding>,
    /// Made by the operator, no longer declared, still there: deleted.
    pub delete: Vec<AclBinding>,
    /// Made by the operator, still declared, but gone (removed by hand): created again.
    pub drift: Vec<AclBinding>,
    /// On the feed's topic or groups, neither declared nor made by the operator.
    pub unmanaged: Vec<AclBinding>,
    /// What the operator owns once the plan is carried out.
    pub owned: Vec<AclBinding>,
}

/// Compares the declared ACLs with the ones the operator recorded as its own and the
/// ones the cluster has. Only ACLs in `owned` are ever deleted.
pub fn plan(
    desired: &BTreeSet<AclBinding>,
    owned: &BTreeSet<AclBinding>,
    present: &[AclBinding],
    topic: &str,
    groups: &[&GroupPattern],
) -> AclPlan {
    let present: BTreeSet<&AclBinding> = present.iter().collect();
    let create: Vec<AclBinding> = desired
        .iter()
        .filter(|a| !present.contains(a))
        .cloned()
        .collect();
    let drift = create
        .iter()
        .filter(|a| owned.contains(a))
        .cloned()
        .collect();
    let delete = owned
        .iter()
        .filter(|a| !desired.contains(a) && present.contains(a))
        .cloned()
        .collect();
    let about_feed = |a: &AclBinding| {
        (a.resource_type == ResourceType::Topic && a.covers(ResourceType::Topic, topic))
            || (a.resource_type == ResourceType::Group
                && groups.iter().any(|g| {
                    let (pattern, name) = group_resource(g);
                    (a.pattern_type == pattern && a.resource_name == name)
                        || (pattern == PatternType::Literal && a.covers(ResourceType::Group, name))
                }))
    };
    let unmanaged = present
        .iter()
        .filter(|a| !desired.contains(*a) && !owned.contains(*a) && about_feed(a))
        .map(|a| (*a).clone())
        .collect();
    AclPlan {
        create,
        delete,
        drift,
        unmanaged,
        owned: desired.iter().cloned().collect(),
    }
}

/// How an ACL shows in the Feed's status.
pub fn entry(acl: &AclBinding) -> AclEntry {
    AclEntry {
        principal: acl.principal.clone(),
        operation: name_of(&acl.operation),
        resource_type: name_of(&acl.resource_type),
        pattern_type: name_of(&acl.pattern_type),
        resource_name: acl.resource_name.clone(),
    }
}

/// The ACL a status entry records (`None` for one this operator cannot have written).
pub fn binding(entry: &AclEntry) -> Option<AclBinding> {
    Some(AclBinding {
        resource_type: parse(&entry.resource_type)?,
        resource_name: entry.resource_name.clone(),
        pattern_type: parse(&entry.pattern_type)?,
        principal: entry.principal.clone(),
        host: WILDCARD.to_string(),
        operation: parse(&entry.operation)?,
        permission: Permission::Allow,
    })
}

/// The wire enums' Kafka names (`READ`, `TOPIC`, `LITERAL`), through their serde form.
fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::access::{Consumer, Producer};

    fn access() -> AccessSpec {
        AccessSpec {
            producers: vec![Producer {
                user: "collector".into(),
                credentials: None,
            }],
            consumers: vec![Consumer {
                user: "siem".into(),
                credentials: None,
                groups: vec![
                    GroupPattern {
                        name: Some("siem-main".into()),
                        prefix: None,
                    },
                    GroupPattern {
                        name: None,
                        prefix: Some("siem-adhoc-".into()),
                    },
                ],
            }],
        }
    }

    #[test]
    fn producers_write_and_consumers_read_their_topic_and_groups() {
        let acls = desired("edr", Some(&access()));
        let described: BTreeSet<String> = acls
            .iter()
            .map(|a| {
                let e = entry(a);
                format!(
                    "{} {} {}:{}:{}",
                    e.principal, e.operation, e.resource_type, e.pattern_type, e.resource_name
                )
            })
            .collect();
        let expected: BTreeSet<String> = [
            "User:collector WRITE TOPIC:LITERAL:edr",
            "User:collector DESCRIBE TOPIC:LITERAL:edr",
            "User:siem READ TOPIC:LITERAL:edr",
            "User:siem DESCRIBE TOPIC:LITERAL:edr",
            "User:siem READ GROUP:LITERAL:siem-main",
            "User:siem READ GROUP:PREFIXED:siem-adhoc-",
        ]
        .map(String::from)
        .into();
        assert_eq!(described, expected);
        assert_eq!(acls.len(), 6);
        assert!(desired("edr", None).is_empty());
    }

    #[test]
    fn status_entries_round_trip() {
        for acl in desired("edr", Some(&access())) {
            assert_eq!(binding(&entry(&acl)), Some(acl));
        }
        let mut bad = entry(&desired("edr", Some(&access())).into_iter().next().unwrap());
        bad.operation = "FLY".into();
        assert_eq!(binding(&bad), None);
    }

    #[test]
    fn only_owned_acls_are_deleted_and_hand_made_ones_are_reported() {
        let want = desired("edr", Some(&access()));
        let gone = allow(
            "old-reader",
            Operation::Read,
            ResourceType::Topic,
            PatternType::Literal,
            "edr",
        );
        let by_hand = allow(
            "auditor",
            Operation::Read,
            ResourceType::Topic,
            PatternType::Literal,
            "edr",
        );
        let elsewhere = allow(
            "x",
            Operation::Read,
            ResourceType::Topic,
            PatternType::Literal,
            "other",
        );
        let removed_by_hand = allow(
            "collector",
            Operation::Write,
            ResourceType::Topic,
            PatternType::Literal,
            "edr",
        );
        let mut owned: BTreeSet<AclBinding> = want.clone();
        owned.insert(gone.clone());
        let present: Vec<AclBinding> = want
            .iter()
            .filter(|a| **a != removed_by_hand)
            .cloned()
            .chain([gone.clone(), by_hand.clone(), elsewhere])
            .collect();
        let access = access();
        let groups: Vec<&GroupPattern> = access.consumers.iter().flat_map(|c| &c.groups).collect();
        let p = plan(&want, &owned, &present, "edr", &groups);
        assert_eq!(p.create, vec![removed_by_hand.clone()]);
        assert_eq!(p.drift, vec![removed_by_hand]);
        assert_eq!(p.delete, vec![gone]);
        assert_eq!(p.unmanaged, vec![by_hand]);
        assert_eq!(p.owned.len(), 6);
    }

    #[test]
    fn a_first_reconcile_creates_everything_and_owns_nothing_else() {
        let want = desired("edr", Some(&access()));
        let p = plan(&want, &BTreeSet::new(), &[], "edr", &[]);
        assert_eq!(p.create.len(), 6);
        assert!(p.drift.is_empty() && p.delete.is_empty() && p.unmanaged.is_empty());
        // Access removed: everything owned goes, nothing else.
        let p = plan(
            &BTreeSet::new(),
            &want,
            &want.iter().cloned().collect::<Vec<_>>(),
            "edr",
            &[],
        );
        assert_eq!(p.delete.len(), 6);
        assert!(p.create.is_empty() && p.owned.is_empty());
    }
}
