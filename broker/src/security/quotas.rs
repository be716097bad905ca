//! Client quotas as Kafka models them (KIP-257 DescribeClientQuotas/AlterClientQuotas,
//! `kafka-configs.sh --entity-type users|clients`): entities of a user, a client id or
//! both, each named or the default, holding byte rates and a request percentage; and
//! which entity's quota applies to a connection, in Kafka's order of precedence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// The quota keys enforced. `controller_mutation_rate` and `ip` entities are refused,
/// not stored without effect.
pub const KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE];

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// A named entity, or the default for its type (`--entity-default`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityName {
    Default,
    Named(String),
}

/// Who a quota is for: a user, a client id, or a user's client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaEntry {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidQuota(pub String);

/// An entity from a request's `(type, name)` pairs; a None name is the default.
pub fn entity(parts: &[(String, Option<String>)]) -> Result<QuotaEntity, InvalidQuota> {
    let mut e = QuotaEntity {
        user: None,
        client_id: None,
    };
    if parts.is_empty() {
        return Err(InvalidQuota("the quota entity is empty".into()));
    }
    for (kind, name) in parts {
        let name = match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.clone()),
        };
        let slot = match kind.as_str() {
            USER => &mut e.user,
            CLIENT_ID => &mut e.client_id,
            "ip" => {
                return Err(InvalidQuota(
                    "ip quotas (connection_creation_rate) are not supported".into(),
                ))
            }
            other => return Err(InvalidQuota(format!("unknown entity type {other:?}"))),
        };
        if slot.replace(name).is_some() {
            return Err(InvalidQuota(format!("entity type {kind} is given twice")));
        }
    }
    Ok(e)
}

/// One change of a quota value: set, or remove with None.
pub type Op = (String, Option<f64>);

/// Checks `ops` without applying them.
pub fn validate(ops: &[Op]) -> Result<(), InvalidQuota> {
    for (key, value) in ops {
        if !KEYS.contains(&key.as_str()) {
            return Err(InvalidQuota(format!(
                "{key} is not a supported quota (supported: {})",
                KEYS.join(", ")
            )));
        }
        if let Some(v) = value {
            if !v.is_finite() || *v <= 0.0 {
                return Err(InvalidQuota(format!(
                    "{key} must be a positive number, not {v}"
                )));
            }
        }
    }
    Ok(())
}

/// Applies validated `ops` to `entity`'s quotas; returns whether anything changed.
pub fn alter(quotas: &mut Vec<QuotaEntry>, entity: &QuotaEntity, ops: &[Op]) -> bool {
    let pos = quotas.iter().position(|q| &q.entity == entity);
    let mut values = pos.map(|i| quotas[i].values.clone()).unwrap_or_default();
    for (key, value) in ops {
        match value {
            Some(v) => values.insert(key.clone(), *v),
            None => values.remove(key),
        };
    }
    let before = pos.map(|i| &quotas[i].values);
    if before == Some(&values) || (before.is_none() && values.is_empty()) {
        return false;
    }
    match (pos, values.is_empty()) {
        (Some(i), true) => {
            quotas.remove(i);
        }
        (Some(i), false) => quotas[i].values = values,
        (None, _) => quotas.push(QuotaEntry {
            entity: entity.clone(),
            values,
        }),
    }
    true
}

/// A DescribeClientQuotas filter component: an entity type and which names match.
pub struct Filter {
    pub kind: String,
    pub matching: Match,
}

pub enum Match {
    Exact(String),
    Default,
    /// Any named entity of the type (not the default).
    Specified,
}

/// The entries matching every filter; with `strict`, entries may not have entity
/// types the filters do not name.
pub fn describe<'a>(
    quotas: &'a [QuotaEntry],
    filters: &[Filter],
    strict: bool,
) -> Vec<&'a QuotaEntry> {
    quotas
        .iter()
        .filter(|q| {
            let parts = [(USER, &q.entity.user), (CLIENT_ID, &q.entity.client_id)];
            let all_match = filters.iter().all(|f| {
                let name = parts
                    .iter()
                    .find(|(k, _)| *k == f.kind)
                    .and_then(|(_, n)| n.as_ref());
                match (&f.matching, name) {
                    (Match::Exact(want), Some(EntityName::Named(n))) => want == n,
                    (Match::Default, Some(EntityName::Default)) => true,
                    (Match::Specified, Some(EntityName::Named(_))) => true,
                    _ => false,
                }
            });
            let only_named = !strict
                || parts
                    .iter()
                    .all(|(k, n)| n.is_none() || filters.iter().any(|f| f.kind == *k));
            all_match && only_named
        })
        .collect()
}

/// Whose allowance a request counts against: the user and client id of the entity
/// that matched, with the parts the entity does not name left empty. A default entity
/// gives each user (or client) an allowance of its own, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuotaKey {
    pub user: String,
    pub client_id: String,
}

/// The quota of `key` for a connection of `user` with `client_id`, in Kafka's order:
/// user+client, user+default client, user, default user+client, default user+default
/// client, default user, client, default client.
pub fn applicable(
    quotas: &[QuotaEntry],
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(f64, QuotaKey)> {
    use EntityName::{Default, Named};
    let (u, c) = (Named(user.to_string()), Named(client_id.to_string()));
    let order = [
        (Some(&u), Some(&c)),
        (Some(&u), Some(&Default)),
        (Some(&u), None),
        (Some(&Default), Some(&c)),
        (Some(&Default), Some(&Default)),
        (Some(&Default), None),
        (None, Some(&c)),
        (None, Some(&Default)),
    ];
    let found = order.into_iter().find_map(|(eu, ec)| {
        let entry = quotas
            .iter()
            .find(|q| q.entity.user.as_ref() == eu && q.entity.client_id.as_ref() == ec)?;
        let quota = *entry.values.get(key)?;
        Some((
            quota,
            QuotaKey {
                user: eu.map_or(String::new(), |_| user.to_string()),
                client_id: ec.map_or(String::new(), |_| client_id.to_string()),
            },
        ))
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(state: &mut Vec<QuotaEntry>, parts: &[(&str, Option<&str>)], key: &str, v: f64) {
        let parts: Vec<(String, Option<String>)> = parts
            .iter()
            .map(|(k, n)| (k.to_string(), n.map(str::to_string)))
            .collect();
        let e = entity(&parts).unwrap();
        let ops = vec![(key.to_string(), Some(v))];
        validate(&ops).unwrap();
        assert!(alter(state, &e, &ops));
    }

    #[test]
    fn precedence_follows_kafka() {
        let mut s: Vec<QuotaEntry> = Vec::new();
        set(&mut s, &[("client-id", None)], PRODUCER_BYTE_RATE, 1.0);
        let q = applicable(&s, "alice", "app", PRODUCER_BYTE_RATE).unwrap();
        assert_eq!(q.0, 1.0);
        assert_eq!((q.1.user.as_str(), q.1.client_id.as_str()), ("", "app"));
        set(&mut s, &[("user", None)], PRODUCER_BYTE_RATE, 2.0);
        assert_eq!(
            applicable(&s, "alice", "app", PRODUCER_BYTE_RATE)
                .unwrap()
                .0,
            2.0
        );
        set(&mut s, &[("user", Some("alice"))], PRODUCER_BYTE_RATE, 3.0);
        set(
            &mut s,
            &[("user", Some("alice")), ("client-id", Some("app"))],
            PRODUCER_BYTE_RATE,
            4.0,
        );
        let q = applicable(&s, "alice", "app", PRODUCER_BYTE_RATE).unwrap();
        assert_eq!(q.0, 4.0);
        assert_eq!(
            applicable(&s, "alice", "other", PRODUCER_BYTE_RATE)
                .unwrap()
                .0,
            3.0
        );
        let bob = applicable(&s, "bob", "x", PRODUCER_BYTE_RATE).unwrap();
        assert_eq!(
            (bob.0, bob.1.user.as_str(), bob.1.client_id.as_str()),
            (2.0, "bob", "")
        );
        assert!(applicable(&s, "bob", "x", CONSUMER_BYTE_RATE).is_none());
    }

    #[test]
    fn alter_validate_and_describe() {
        let mut s: Vec<QuotaEntry> = Vec::new();
        assert!(validate(&[("controller_mutation_rate".into(), Some(1.0))]).is_err());
        assert!(validate(&[(PRODUCER_BYTE_RATE.into(), Some(-1.0))]).is_err());
        assert!(entity(&[("ip".into(), None)]).is_err());
        assert!(entity(&[("user".into(), None), ("user".into(), None)]).is_err());
        set(&mut s, &[("user", Some("alice"))], PRODUCER_BYTE_RATE, 10.0);
        set(
            &mut s,
            &[("user", Some("alice")), ("client-id", None)],
            CONSUMER_BYTE_RATE,
            5.0,
        );
        let alice = Filter {
            kind: USER.into(),
            matching: Match::Exact("alice".into()),
        };
        assert_eq!(describe(&s, std::slice::from_ref(&alice), false).len(), 2);
        assert_eq!(describe(&s, &[alice], true).len(), 1);
        let e = s[0].entity.clone();
        assert!(alter(&mut s, &e, &[(PRODUCER_BYTE_RATE.into(), None)]));
        assert_eq!(s.len(), 1, "an entity without values is removed");
        assert!(!alter(&mut s, &e, &[(PRODUCER_BYTE_RATE.into(), None)]));
    }
}
