//! `spec.access` → Kafka ACLs and SCRAM credentials, on a cluster whose kafka listener
//! authenticates clients. Removals go first, so a failure half-way never leaves access
//! wider than declared; ownership is `status.access.acls` ([`acls`]).

pub mod acls;
pub mod credentials;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use sluice_auth::acl::AclFilter;

use self::credentials::{ClientSettings, CredentialError, Outcome};
use crate::crd::access::{AccessStatus, CredentialStatus, Credentials, GroupPattern};
use crate::crd::Feed;
use crate::kafka::AdminClient;

/// What one sync of a Feed's access did, for its status and Events.
#[derive(Debug, Default)]
pub struct AccessReport {
    pub status: AccessStatus,
    /// Changes made, one line each.
    pub done: Vec<String>,
}

/// The users with `credentials: scram` that `feed` declares.
pub fn credential_users(feed: &Feed) -> BTreeSet<String> {
    let Some(access) = &feed.spec.access else {
        return BTreeSet::new();
    };
    let scram = |c: Option<Credentials>| c == Some(Credentials::Scram);
    access
        .producers
        .iter()
        .filter(|p| scram(p.credentials))
        .map(|p| p.user.clone())
        .chain(
            access
                .consumers
                .iter()
                .filter(|c| scram(c.credentials))
                .map(|c| c.user.clone()),
        )
        .collect()
}

/// Brings the cluster's ACLs and credentials to `feed`'s `spec.access` (`None`
/// access: removes what the operator made for it). `others`: the other Feeds of the
/// cluster, whose credential users are kept.
pub async fn sync(
    admin: &mut AdminClient,
    secrets: &Api<Secret>,
    feed: &Feed,
    settings: &ClientSettings,
    others: &[&Feed],
) -> Result<AccessReport, CredentialError> {
    let topic = feed.topic_name();
    let previous = feed
        .status
        .as_ref()
        .and_then(|s| s.access.clone())
        .unwrap_or_default();
    let mut report = AccessReport::default();

    // ACLs.
    let desired = acls::desired(&topic, feed.spec.access.as_ref());
    let owned: BTreeSet<_> = previous.acls.iter().filter_map(acls::binding).collect();
    let present = admin.describe_acls(&AclFilter::every()).await?;
    let groups: Vec<&GroupPattern> = feed
        .spec
        .access
        .iter()
        .flat_map(|a| &a.consumers)
        .flat_map(|c| &c.groups)
        .collect();
    let plan = acls::plan(&desired, &owned, &present, &topic, &groups);
    if !plan.delete.is_empty() {
        admin.delete_acls(&plan.delete).await?;
        report.done.extend(
            plan.delete
                .iter()
                .map(|a| format!("removed ACL {}", line(a))),
        );
    }
    if !plan.create.is_empty() {
        admin.create_acls(&plan.create).await?;
        report.done.extend(
            plan.create
                .iter()
                .filter(|a| !plan.drift.contains(a))
                .map(|a| format!("added ACL {}", line(a))),
        );
    }
    report.status.acls = plan.owned.iter().map(acls::entry).collect();
    report.status.unmanaged_acls = plan.unmanaged.iter().map(acls::entry).collect();
    report.status.drift = plan.drift.iter().map(acls::entry).collect();

    // Credentials.
    let users = credential_users(feed);
    let on_cluster: BTreeMap<String, bool> = if users.is_empty() {
        BTreeMap::new()
    } else {
        let listed: Vec<String> = users.iter().cloned().collect();
        admin
            .describe_scram_users(&listed)
            .await?
            .into_iter()
            .map(|(user, mechanisms)| {
                let has = mechanisms.contains(&sluice_auth::Mechanism::Sha512);
                (user, has)
            })
            .collect()
    };
    for user in &users {
        let has = on_cluster.get(user).copied().unwrap_or(false);
        match credentials::ensure(admin, secrets, settings, user, has).await? {
            Outcome::Unchanged => {}
            Outcome::Created => report.done.push(format!("created credentials of {user}")),
            Outcome::Rotated => report.done.push(format!("rotated the password of {user}")),
            Outcome::Restored => report
                .done
                .push(format!("restored the cluster's credential of {user}")),
        }
        report.status.credentials.push(CredentialStatus {
            user: user.clone(),
            secret_name: credentials::secret_name(&settings.cluster, user),
        });
    }
    let kept: BTreeSet<String> = others.iter().flat_map(|f| credential_users(f)).collect();
    for gone in previous
        .credentials
        .iter()
        .filter(|c| !users.contains(&c.user) && !kept.contains(&c.user))
    {
        credentials::remove(admin, secrets, &settings.cluster, &gone.user).await?;
        report
            .done
            .push(format!("removed credentials of {}", gone.user));
    }
    Ok(report)
}

/// `User:x WRITE TOPIC:LITERAL:edr`, as Events show an ACL.
pub fn line(acl: &sluice_auth::acl::AclBinding) -> String {
    let e = acls::entry(acl);
    format!(
        "{} {} {}:{}:{}",
        e.principal, e.operation, e.resource_type, e.pattern_type, e.resource_name
    )
}
