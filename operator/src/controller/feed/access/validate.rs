//! Checks of `spec.access` with no client: principal names that cannot widen access by
//! accident (`*`, `ANONYMOUS`), credential user names that make valid Secret names, and
//! consumer groups that belong to one Feed of a cluster.

use crate::controller::feed::plan::earlier_claimant_by;
use crate::crd::access::{AccessSpec, Credentials, GroupPattern};
use crate::crd::cluster::AuthenticationType;
use crate::crd::Feed;

/// Longest user name with `credentials: scram` (it ends the Secret's name).
const MAX_CREDENTIAL_USER: usize = 63;

/// Every problem with `access` on a cluster authenticating with `authentication`.
pub fn check(
    access: &AccessSpec,
    authentication: Option<AuthenticationType>,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let users = access
        .producers
        .iter()
        .map(|p| (&p.user, p.credentials))
        .chain(access.consumers.iter().map(|c| (&c.user, c.credentials)));
    for (user, credentials) in users {
        if let Err(why) = principal_name(user) {
            problems.push(format!("user {user:?}: {why}"));
        }
        if credentials == Some(Credentials::Scram) {
            if !credential_user(user) {
                problems.push(format!(
                    "user {user:?} with credentials: scram needs a lower-case name of letters, digits, '-' and '.' (at most {MAX_CREDENTIAL_USER}), as it names a Secret"
                ));
            }
            if authentication != Some(AuthenticationType::ScramSha512) {
                problems.push(format!(
                    "user {user:?} has credentials: scram, but the cluster's kafka listener does not authenticate with scram-sha-512"
                ));
            }
        }
    }
    for group in access.consumers.iter().flat_map(|c| &c.groups) {
        if group.name.as_deref() == Some("*") {
            problems.push(
                "group name \"*\" would match every group: name the groups, or use a prefix".into(),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A principal name the operator will write into ACLs.
fn principal_name(user: &str) -> Result<(), &'static str> {
    if user.trim() != user || user.is_empty() {
        return Err("a principal name has no leading or trailing spaces");
    }
    if user == "*" {
        return Err("\"*\" is every principal: name them");
    }
    if user == "ANONYMOUS" {
        return Err("ANONYMOUS is every client that did not authenticate");
    }
    if user.chars().any(|c| c.is_control() || c == ';') {
        return Err("a principal name has no control characters or ';'");
    }
    Ok(())
}

/// A user name that fits a Secret name (`<cluster>-user-<user>`): a DNS subdomain.
fn credential_user(user: &str) -> bool {
    let bytes = user.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_CREDENTIAL_USER
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Whether two group patterns can name the same group.
pub fn groups_overlap(a: &GroupPattern, b: &GroupPattern) -> bool {
    match (&a.name, &a.prefix, &b.name, &b.prefix) {
        (Some(x), _, Some(y), _) => x == y,
        (Some(name), _, None, Some(prefix)) | (None, Some(prefix), Some(name), _) => {
            name.starts_with(prefix.as_str())
        }
        (None, Some(p), None, Some(q)) => p.starts_with(q.as_str()) || q.starts_with(p.as_str()),
        _ => false,
    }
}

fn groups(feed: &Feed) -> impl Iterator<Item = &GroupPattern> {
    feed.spec
        .access
        .iter()
        .flat_map(|a| &a.consumers)
        .flat_map(|c| &c.groups)
}

/// The Feed of the same cluster, created earlier, that already claims a group `me`
/// declares.
pub fn earlier_group_claimant(feeds: &[Feed], me: &Feed) -> Option<String> {
    earlier_claimant_by(feeds, me, |other| {
        groups(other).any(|g| groups(me).any(|mine| groups_overlap(g, mine)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::access::{Consumer, Producer};

    fn name(n: &str) -> GroupPattern {
        GroupPattern {
            name: Some(n.into()),
            prefix: None,
        }
    }
    fn prefix(p: &str) -> GroupPattern {
        GroupPattern {
            name: None,
            prefix: Some(p.into()),
        }
    }

    #[test]
    fn group_patterns_overlap_as_kafka_would_match_them() {
        assert!(groups_overlap(&name("siem"), &name("siem")));
        assert!(!groups_overlap(&name("siem"), &name("siem-2")));
        assert!(groups_overlap(&name("siem-2"), &prefix("siem-")));
        assert!(groups_overlap(&prefix("siem-"), &name("siem-2")));
        assert!(!groups_overlap(&prefix("siem-"), &name("soar")));
        assert!(groups_overlap(&prefix("siem-"), &prefix("siem-adhoc-")));
        assert!(!groups_overlap(&prefix("siem-"), &prefix("soar-")));
    }

    #[test]
    fn names_that_would_widen_access_are_refused() {
        let access = |user: &str, credentials| AccessSpec {
            producers: vec![Producer {
                user: user.into(),
                credentials,
            }],
            consumers: vec![Consumer {
                user: "siem".into(),
                credentials: None,
                groups: vec![name("*")],
            }],
        };
        let scram = Some(AuthenticationType::ScramSha512);
        for bad in ["*", "ANONYMOUS", " alice", "al;ice", "a\u{7}b", ""] {
            let problems = check(&access(bad, None), scram).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(&format!("{bad:?}"))),
                "{bad:?}: {problems:?}"
            );
        }
        let problems = check(&access("alice", None), scram).unwrap_err();
        assert_eq!(problems.len(), 1, "the * group: {problems:?}");
        let ok = AccessSpec {
            producers: vec![Producer {
                user: "CN=collector,O=soc".into(),
                credentials: None,
            }],
            consumers: vec![],
        };
        assert_eq!(check(&ok, Some(AuthenticationType::Tls)), Ok(()));
    }

    #[test]
    fn scram_credentials_need_a_secret_name_and_a_scram_cluster() {
        let access = |user: &str| AccessSpec {
            producers: vec![Producer {
                user: user.into(),
                credentials: Some(Credentials::Scram),
            }],
            consumers: vec![],
        };
        let scram = Some(AuthenticationType::ScramSha512);
        assert_eq!(check(&access("collector-1"), scram), Ok(()));
        assert!(check(&access("Collector"), scram).is_err());
        assert!(check(&access("collector@soc"), scram).is_err());
        assert!(check(&access(&"a".repeat(64)), scram).is_err());
        let problems = check(&access("collector"), Some(AuthenticationType::Tls)).unwrap_err();
        assert!(problems[0].contains("scram-sha-512"), "{problems:?}");
    }
}
