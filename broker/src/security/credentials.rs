//! SCRAM credential administration as Kafka's DescribeUserScramCredentials and
//! AlterUserScramCredentials define it (KIP-554): pure functions over the
//! [`SecurityState`], so the handlers only translate and the store only swaps.

use std::collections::{BTreeMap, BTreeSet};

use sluice_auth::scram::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use thiserror::Error;

use super::store::SecurityState;

/// Why a user's part of a request was refused (Kafka's error code in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialError {
    /// UNACCEPTABLE_CREDENTIAL
    #[error("{0}")]
    Unacceptable(&'static str),
    /// UNSUPPORTED_SASL_MECHANISM
    #[error("Unknown SCRAM mechanism")]
    UnknownMechanism,
    /// RESOURCE_NOT_FOUND
    #[error("{0}")]
    NotFound(&'static str),
    /// DUPLICATE_RESOURCE
    #[error("{0}")]
    Duplicate(&'static str),
}

pub struct Deletion {
    pub user: String,
    pub mechanism: i8,
}

pub struct Upsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// The outcome per user, in the order users first appear in the request.
pub type UserResults = Vec<(String, Result<(), CredentialError>)>;

/// Applies a request to `state`. A user's changes apply all together or not at all;
/// other users are unaffected by one user's error (Kafka's rule). Returns whether
/// anything changed and each user's result.
pub fn alter(
    state: &mut SecurityState,
    deletions: &[Deletion],
    upsertions: &[Upsertion],
) -> (bool, UserResults) {
    let mut order: Vec<String> = Vec::new();
    let mut errors: BTreeMap<String, CredentialError> = BTreeMap::new();
    let mut seen: BTreeSet<(String, i8)> = BTreeSet::new();
    let fail = |errors: &mut BTreeMap<String, CredentialError>, user: &str, e| {
        errors.entry(user.to_string()).or_insert(e);
    };
    let changes = deletions
        .iter()
        .map(|d| (&d.user, d.mechanism, None))
        .chain(upsertions.iter().map(|u| (&u.user, u.mechanism, Some(u))));
    let mut valid: Vec<(String, Mechanism, Option<&Upsertion>)> = Vec::new();
    for (user, mechanism, upsert) in changes {
        if !order.contains(user) {
            order.push(user.clone());
        }
        if !seen.insert((user.clone(), mechanism)) {
            fail(
                &mut errors,
                user,
                CredentialError::Duplicate(
                    "A user credential cannot be altered twice in the same request",
                ),
            );
            continue;
        }
        if user.is_empty() {
            fail(
                &mut errors,
                user,
                CredentialError::Unacceptable("Username must not be empty"),
            );
            continue;
        }
        let Some(mech) = Mechanism::from_kafka_type(mechanism) else {
            fail(&mut errors, user, CredentialError::UnknownMechanism);
            continue;
        };
        match upsert {
            Some(u) if u.iterations < MIN_ITERATIONS => fail(
                &mut errors,
                user,
                CredentialError::Unacceptable("Too few iterations"),
            ),
            Some(u) if u.iterations > MAX_ITERATIONS => fail(
                &mut errors,
                user,
                CredentialError::Unacceptable("Too many iterations"),
            ),
            Some(u) if u.salt.is_empty() || u.salted_password.is_empty() => fail(
                &mut errors,
                user,
                CredentialError::Unacceptable("Salt and salted password must not be empty"),
            ),
            None if state.scram_credential(user, mech).is_none() => fail(
                &mut errors,
                user,
                CredentialError::NotFound(
                    "Attempt to delete a user credential that does not exist",
                ),
            ),
            _ => valid.push((user.clone(), mech, upsert)),
        }
    }
    let mut changed = false;
    for (user, mech, upsert) in valid {
        if errors.contains_key(&user) {
            continue;
        }
        let creds = state.scram.entry(user.clone()).or_default();
        creds.retain(|c| c.mechanism != mech);
        if let Some(u) = upsert {
            creds.push(ScramCredential::from_salted_password(
                mech,
                &u.salted_password,
                u.salt.clone(),
                u.iterations as u32,
            ));
        }
        if creds.is_empty() {
            state.scram.remove(&user);
        }
        changed = true;
    }
    let results = order
        .into_iter()
        .map(|u| {
            let r = errors.remove(&u).map_or(Ok(()), Err);
            (u, r)
        })
        .collect();
    (changed, results)
}

/// A user's credentials as DescribeUserScramCredentials shows them: mechanism and
/// iteration count, never the keys.
pub type CredentialInfos = Vec<(Mechanism, u32)>;

/// Each asked-for user's mechanisms and iteration counts; every user with credentials
/// when `users` is None.
pub fn describe(
    state: &SecurityState,
    users: Option<&[String]>,
) -> Vec<(String, Result<CredentialInfos, CredentialError>)> {
    let infos = |creds: &Vec<ScramCredential>| -> CredentialInfos {
        creds.iter().map(|c| (c.mechanism, c.iterations)).collect()
    };
    let Some(users) = users else {
        return state
            .scram
            .iter()
            .map(|(u, c)| (u.clone(), Ok(infos(c))))
            .collect();
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for u in users {
        *counts.entry(u).or_default() += 1;
    }
    let mut out = Vec::new();
    for user in users {
        if out.iter().any(|(u, _)| u == user) {
            continue;
        }
        let result = if counts[user.as_str()] > 1 {
            Err(CredentialError::Duplicate(
                "Cannot describe SCRAM credentials for the same user twice in a single request",
            ))
        } else {
            match state.scram.get(user) {
                Some(c) => Ok(infos(c)),
                None => Err(CredentialError::NotFound(
                    "Attempt to describe a user credential that does not exist",
                )),
            }
        };
        out.push((user.clone(), result));
    }
    out
}

/// Credentials for `user=password` pairs whose user has none yet (the first login of a
/// new cluster needs someone to exist): both SCRAM mechanisms, Kafka's minimum
/// iterations. Returns whether anything was added.
pub fn bootstrap(state: &mut SecurityState, users: &[(String, String)]) -> bool {
    let mut changed = false;
    for (user, password) in users {
        if state.scram.contains_key(user) {
            continue;
        }
        let creds = Mechanism::ALL
            .into_iter()
            .map(|m| ScramCredential::generate(m, password, MIN_ITERATIONS as u32))
            .collect();
        state.scram.insert(user.clone(), creds);
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> Upsertion {
        Upsertion {
            user: user.into(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: vec![7; 32],
        }
    }

    fn delete(user: &str, mechanism: i8) -> Deletion {
        Deletion {
            user: user.into(),
            mechanism,
        }
    }

    #[test]
    fn upsert_describe_delete() {
        let mut s = SecurityState::default();
        let (changed, r) = alter(
            &mut s,
            &[],
            &[upsert("alice", 1, 8192), upsert("bob", 2, 4096)],
        );
        assert!(changed);
        assert_eq!(r, vec![("alice".into(), Ok(())), ("bob".into(), Ok(()))]);
        let all = describe(&s, None);
        assert_eq!(
            all[0],
            ("alice".into(), Ok(vec![(Mechanism::Sha256, 8192)]))
        );
        let (changed, r) = alter(&mut s, &[delete("alice", 1)], &[]);
        assert!(changed && r[0].1.is_ok());
        assert!(!s.scram.contains_key("alice"));
        let r = describe(&s, Some(&["alice".into(), "bob".into()]));
        assert!(matches!(r[0].1, Err(CredentialError::NotFound(_))));
        assert!(r[1].1.is_ok());
    }

    #[test]
    fn one_users_error_leaves_the_others() {
        let mut s = SecurityState::default();
        let (_, r) = alter(
            &mut s,
            &[delete("ghost", 1)],
            &[
                upsert("alice", 1, 100),
                upsert("alice", 2, 4096),
                upsert("bob", 1, 4096),
                upsert("", 1, 4096),
                upsert("carol", 9, 4096),
            ],
        );
        assert!(matches!(r[0].1, Err(CredentialError::NotFound(_))));
        assert_eq!(
            r[1].1,
            Err(CredentialError::Unacceptable("Too few iterations"))
        );
        assert_eq!(r[2].1, Ok(()));
        assert!(matches!(r[3].1, Err(CredentialError::Unacceptable(_))));
        assert_eq!(r[4].1, Err(CredentialError::UnknownMechanism));
        // alice's valid SHA-512 upsert did not apply either: all or nothing per user.
        assert_eq!(s.scram.keys().collect::<Vec<_>>(), vec!["bob"]);
        let (_, r) = alter(&mut s, &[delete("bob", 1)], &[upsert("bob", 1, 4096)]);
        assert!(matches!(r[0].1, Err(CredentialError::Duplicate(_))));
        assert!(s.scram_credential("bob", Mechanism::Sha256).is_some());
        let r = describe(&s, Some(&["bob".into(), "bob".into()]));
        assert_eq!(r.len(), 1);
        assert!(matches!(r[0].1, Err(CredentialError::Duplicate(_))));
    }

    #[test]
    fn bootstrap_adds_only_missing_users() {
        let mut s = SecurityState::default();
        assert!(bootstrap(&mut s, &[("admin".into(), "secret".into())]));
        let c = s
            .scram_credential("admin", Mechanism::Sha512)
            .unwrap()
            .clone();
        assert!(c.verify_password("secret") && !c.verify_password("wrong"));
        assert!(!bootstrap(&mut s, &[("admin".into(), "other".into())]));
        assert!(s
            .scram_credential("admin", Mechanism::Sha512)
            .unwrap()
            .verify_password("secret"));
    }
}
