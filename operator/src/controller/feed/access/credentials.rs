//! Generated SCRAM credentials of the principals a Feed declares with `credentials:
//! scram`: the password lives in a Secret of the Feed's namespace, the only copy, and
//! the cluster holds the SCRAM credential derived from it. A producer Deployment mounts
//! the Secret; annotating it with `sluice.dev/rotate` asks for a new password.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use sluice_auth::Mechanism;

use crate::controller::cluster::secrets::{generate_password, secret_text};
use crate::controller::MANAGER;
use crate::error::KubeContext;
use crate::kafka::{AdminClient, AdminError};

/// Annotate a credentials Secret with a new value of this to rotate its password.
pub const ROTATE_ANNOTATION: &str = "sluice.dev/rotate";
/// The value of [`ROTATE_ANNOTATION`] the current password answers.
pub const ROTATED_ANNOTATION: &str = "sluice.dev/rotated";
const USER_LABEL: &str = "sluice.dev/user";
const CLUSTER_LABEL: &str = "sluice.dev/cluster";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sluice-operator");
/// Kafka's default SCRAM iteration count (`kafka-configs.sh`).
pub const SCRAM_ITERATIONS: i32 = 4096;
const MECHANISM: Mechanism = Mechanism::Sha512;

/// How clients of a cluster connect, for the Secrets' client settings.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub cluster: String,
    pub namespace: String,
    pub bootstrap: String,
    pub security_protocol: String,
    /// The CA of the listener's certificate (`ca.crt` of its TLS Secret).
    pub ca_pem: Option<Vec<u8>>,
    /// The cluster owns the Secrets: they go with it.
    pub owner: Option<OwnerReference>,
}

/// The Secret holding `user`'s credential on `cluster`.
pub fn secret_name(cluster: &str, user: &str) -> String {
    format!("{cluster}-user-{user}")
}

/// The credentials Secret (pure): everything a Kafka client needs to log in as `user`.
pub fn credentials_secret(
    settings: &ClientSettings,
    user: &str,
    password: &str,
    rotated: Option<&str>,
) -> Secret {
    let jaas = format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";"
    );
    let mut data: BTreeMap<String, ByteString> = [
        ("username", user.to_string()),
        ("password", password.to_string()),
        ("sasl.mechanism", MECHANISM.name().to_string()),
        ("security.protocol", settings.security_protocol.clone()),
        ("bootstrap.servers", settings.bootstrap.clone()),
        ("sasl.jaas.config", jaas),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    if let Some(ca) = &settings.ca_pem {
        data.insert("ca.crt".into(), ByteString(ca.clone()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&settings.cluster, user)),
            namespace: Some(settings.namespace.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                (CLUSTER_LABEL.to_string(), settings.cluster.clone()),
                (USER_LABEL.to_string(), user.to_string()),
            ])),
            annotations: rotated
                .map(|r| BTreeMap::from([(ROTATED_ANNOTATION.to_string(), r.to_string())])),
            owner_references: settings.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// What [`ensure`] did for one user.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Created,
    Rotated,
    /// The cluster had lost the credential (a new bucket): set again from the Secret.
    Restored,
}

/// Why a user's credential was not made.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "Secret {0} exists and was not made by the operator: rename the user or remove the Secret"
    )]
    NotOurs(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Kube(#[from] crate::Error),
}

/// Brings `user`'s credential and Secret to life, rotated when asked. `on_cluster`: the
/// cluster already has a SCRAM-SHA-512 credential for the user.
pub async fn ensure(
    admin: &mut AdminClient,
    secrets: &Api<Secret>,
    settings: &ClientSettings,
    user: &str,
    on_cluster: bool,
) -> std::result::Result<Outcome, CredentialError> {
    let name = secret_name(&settings.cluster, user);
    let existing = secrets.get_opt(&name).await.kube("get", "Secret", &name)?;
    let (password, rotated, outcome) = match &existing {
        Some(s) if s.labels().get(MANAGED_BY.0).map(String::as_str) != Some(MANAGED_BY.1) => {
            return Err(CredentialError::NotOurs(name));
        }
        Some(s) => {
            let asked = s.annotations().get(ROTATE_ANNOTATION).cloned();
            let answered = s.annotations().get(ROTATED_ANNOTATION).cloned();
            let current = secret_text(s, "password").filter(|p| !p.is_empty());
            match current {
                Some(password) if asked.is_none() || asked == answered => {
                    let outcome = if on_cluster {
                        Outcome::Unchanged
                    } else {
                        Outcome::Restored
                    };
                    (password, answered, outcome)
                }
                _ => (generate_password(), asked, Outcome::Rotated),
            }
        }
        None => (generate_password(), None, Outcome::Created),
    };
    // The cluster first: a Secret never holds a password the cluster would refuse for
    // longer than this reconcile.
    if outcome != Outcome::Unchanged {
        admin
            .upsert_scram(user, MECHANISM, &password, SCRAM_ITERATIONS)
            .await?;
    }
    let secret = credentials_secret(settings, user, &password, rotated.as_deref());
    secrets
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .kube("apply", "Secret", &name)?;
    Ok(outcome)
}

/// Removes `user`'s credential from the cluster and its Secret (no Feed declares it any
/// more). A Secret the operator did not make is left alone.
pub async fn remove(
    admin: &mut AdminClient,
    secrets: &Api<Secret>,
    cluster: &str,
    user: &str,
) -> std::result::Result<(), CredentialError> {
    admin.delete_scram(user, MECHANISM).await?;
    let name = secret_name(cluster, user);
    let existing = secrets.get_opt(&name).await.kube("get", "Secret", &name)?;
    if existing
        .is_some_and(|s| s.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1))
    {
        secrets
            .delete(&name, &DeleteParams::default())
            .await
            .kube("delete", "Secret", &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_what_a_kafka_client_needs() {
        let settings = ClientSettings {
            cluster: "lake".into(),
            namespace: "soc".into(),
            bootstrap: "lake-bootstrap.soc.svc.cluster.local:9092".into(),
            security_protocol: "SASL_SSL".into(),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
            owner: None,
        };
        let secret = credentials_secret(&settings, "collector", "pw", Some("1"));
        assert_eq!(secret.name_any(), "lake-user-collector");
        let text = |k: &str| secret_text(&secret, k).unwrap();
        assert_eq!(text("username"), "collector");
        assert_eq!(text("password"), "pw");
        assert_eq!(text("sasl.mechanism"), "SCRAM-SHA-512");
        assert_eq!(text("security.protocol"), "SASL_SSL");
        assert_eq!(text("bootstrap.servers"), settings.bootstrap);
        assert_eq!(
            text("sasl.jaas.config"),
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"collector\" password=\"pw\";"
        );
        assert!(text("ca.crt").starts_with("-----BEGIN"));
        assert_eq!(secret.annotations()[ROTATED_ANNOTATION], "1");
        assert_eq!(secret.labels()[MANAGED_BY.0], MANAGED_BY.1);
    }
}
