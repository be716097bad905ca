//! A secured cluster's broker settings (`listeners.kafka.tls` and `.authentication`):
//! two named listeners, CLIENT for clients and CONTROL for the operator, the TLS Secret
//! mounted read-only, and the operator's own SCRAM user, made a super user and handed to
//! the brokers as a bootstrap user.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, SecretVolumeSource, Volume, VolumeMount};
use k8s_openapi::ByteString;

use super::ClusterModel;
use crate::crd::cluster::AuthenticationType;

/// Where `listeners.kafka.tls.secretName` is mounted in broker pods.
pub const TLS_MOUNT_PATH: &str = "/etc/sluice/tls";
/// Where the operator's credentials Secret is mounted in broker pods.
pub const OPERATOR_MOUNT_PATH: &str = "/etc/sluice/operator";
/// The operator's SCRAM user on every secured cluster.
pub const OPERATOR_USER: &str = "sluice-operator";
/// The brokers' own SCRAM user: they log in to each other with it (dead-letter batches
/// forwarded to the partition's leader) on the CONTROL listener.
pub const BROKER_USER: &str = "sluice-broker";
/// Keys of the credentials Secret: the operator's password, the brokers' password, and
/// both as `USER=PASSWORD` lines for the brokers' `--sasl-bootstrap-users-file`.
pub const PASSWORD_KEY: &str = "password";
pub const BROKER_PASSWORD_KEY: &str = "broker-password";
pub const USERS_KEY: &str = "users";

/// The passwords of a secured cluster's own users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterCredentials {
    pub operator: String,
    pub broker: String,
}
/// The mechanism of every SCRAM login on a secured cluster.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";

const CLIENT: &str = "CLIENT";
const CONTROL: &str = "CONTROL";

impl ClusterModel<'_> {
    /// Whether clients authenticate (and the brokers enforce ACLs).
    pub fn secured(&self) -> bool {
        self.cluster.spec.listeners.kafka.is_secured()
    }

    /// The Secret with the listener's certificate: the one named, or the one
    /// cert-manager writes for the operator's Certificate.
    pub fn tls_secret(&self) -> Option<String> {
        let tls = self.cluster.spec.listeners.kafka.tls.as_ref()?;
        Some(match &tls.secret_name {
            Some(name) => name.clone(),
            None => self.certificate_name(),
        })
    }

    /// The cert-manager Certificate (and its Secret) of `tls.issuerRef`.
    pub fn certificate_name(&self) -> String {
        format!("{}-kafka-tls", self.name)
    }

    pub fn control_port(&self) -> i32 {
        self.cluster.spec.listeners.control.port
    }

    /// The Secret with the operator's password for this cluster.
    pub fn operator_credentials_name(&self) -> String {
        format!("{}-operator-credentials", self.name)
    }

    /// `host:port` the operator connects to: the CONTROL listener of a secured cluster,
    /// the client listener otherwise.
    pub fn operator_bootstrap_address(&self) -> String {
        if self.secured() {
            format!(
                "{}.{}:{}",
                self.bootstrap_name(),
                self.svc_domain(),
                self.control_port()
            )
        } else {
            self.bootstrap_address()
        }
    }

    /// The Kafka security protocol clients speak to the client listener.
    pub fn client_security_protocol(&self) -> &'static str {
        let kafka = &self.cluster.spec.listeners.kafka;
        let tls = kafka.tls.is_some();
        match (kafka.authentication.as_ref().map(|a| a.type_), tls) {
            (None, false) => "PLAINTEXT",
            (None, true) | (Some(AuthenticationType::Tls), _) => "SSL",
            (Some(AuthenticationType::ScramSha512), false) => "SASL_PLAINTEXT",
            (Some(AuthenticationType::ScramSha512), true) => "SASL_SSL",
        }
    }

    /// The protocol of the operator's CONTROL listener.
    fn control_security_protocol(&self) -> &'static str {
        if self.tls_secret().is_some() {
            "SASL_SSL"
        } else {
            "SASL_PLAINTEXT"
        }
    }

    /// `--advertised-listeners` of a secured cluster with the pod name left to the
    /// kubelet's `$(POD_NAME)` expansion; `None` for the one PLAINTEXT listener.
    pub fn advertised_listeners_template(&self) -> Option<String> {
        self.secured_or_tls().then(|| {
            let host = format!("$(POD_NAME).{}.{}", self.headless_name(), self.svc_domain());
            let mut out = format!("{CLIENT}://{host}:{}", self.kafka_port());
            if self.secured() {
                out.push_str(&format!(",{CONTROL}://{host}:{}", self.control_port()));
            }
            out
        })
    }

    fn secured_or_tls(&self) -> bool {
        self.secured() || self.tls_secret().is_some()
    }
}

/// The brokers' security settings (`SLUICE_*` variables of the ConfigMap).
pub fn security_env(model: &ClusterModel<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if !model.secured_or_tls() {
        return env;
    }
    let mut listeners = format!("{CLIENT}://0.0.0.0:{}", model.kafka_port());
    let mut protocols = format!("{CLIENT}:{}", model.client_security_protocol());
    if model.secured() {
        listeners.push_str(&format!(",{CONTROL}://0.0.0.0:{}", model.control_port()));
        protocols.push_str(&format!(",{CONTROL}:{}", model.control_security_protocol()));
    }
    env.insert("SLUICE_LISTENERS".into(), listeners);
    env.insert("SLUICE_LISTENER_SECURITY_PROTOCOL_MAP".into(), protocols);
    if model.tls_secret().is_some() {
        env.insert(
            "SLUICE_SSL_CERTIFICATE_FILE".into(),
            format!("{TLS_MOUNT_PATH}/tls.crt"),
        );
        env.insert(
            "SLUICE_SSL_KEY_FILE".into(),
            format!("{TLS_MOUNT_PATH}/tls.key"),
        );
        // Brokers forward to each other over TLS too (CONTROL when secured, else
        // CLIENT), trusting the listener's own CA.
        env.insert(
            "SLUICE_INTER_BROKER_SSL_CA_FILE".into(),
            format!("{TLS_MOUNT_PATH}/ca.crt"),
        );
    }
    let spec = &model.cluster.spec;
    let kafka = &spec.listeners.kafka;
    if kafka.authentication.as_ref().map(|a| a.type_) == Some(AuthenticationType::Tls) {
        // `requested`, not `required`: the CONTROL listener shares the TLS settings and
        // the operator logs in there with SCRAM. A client without a certificate is
        // User:ANONYMOUS, which no ACL names, so it is refused all the same.
        env.insert("SLUICE_SSL_CLIENT_AUTH".into(), "requested".into());
        env.insert(
            "SLUICE_SSL_CLIENT_CA_FILE".into(),
            format!("{TLS_MOUNT_PATH}/ca.crt"),
        );
    }
    if model.secured() {
        env.insert(
            "SLUICE_SASL_ENABLED_MECHANISMS".into(),
            SCRAM_MECHANISM.into(),
        );
        env.insert(
            "SLUICE_SASL_BOOTSTRAP_USERS_FILE".into(),
            format!("{OPERATOR_MOUNT_PATH}/{USERS_KEY}"),
        );
        env.insert("SLUICE_AUTHORIZER".into(), "on".into());
        // Brokers forward to each other on CONTROL, as their own user.
        env.insert("SLUICE_INTER_BROKER_LISTENER_NAME".into(), CONTROL.into());
        env.insert("SLUICE_INTER_BROKER_USER".into(), BROKER_USER.into());
        let mut super_users = vec![
            format!("User:{OPERATOR_USER}"),
            format!("User:{BROKER_USER}"),
        ];
        super_users.extend(
            spec.authorization
                .iter()
                .flat_map(|a| a.super_users.iter().cloned()),
        );
        env.insert("SLUICE_SUPER_USERS".into(), super_users.join(";"));
    }
    env
}

/// The credentials Secret of the cluster's own users (with the passwords the reconciler
/// read or generated); `None` on a cluster that does not authenticate clients.
pub fn operator_credentials(model: &ClusterModel<'_>) -> Option<Secret> {
    let credentials = model.credentials.as_ref().filter(|_| model.secured())?;
    let users = format!(
        "{OPERATOR_USER}={}\n{BROKER_USER}={}\n",
        credentials.operator, credentials.broker
    );
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Some(Secret {
        metadata: model.owned_meta(model.operator_credentials_name()),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (PASSWORD_KEY.to_string(), bytes(&credentials.operator)),
            (BROKER_PASSWORD_KEY.to_string(), bytes(&credentials.broker)),
            (USERS_KEY.to_string(), bytes(&users)),
        ])),
        ..Secret::default()
    })
}

/// The read-only Secret volumes of a secured cluster's broker pods, with their mounts.
pub fn security_volumes(model: &ClusterModel<'_>) -> Vec<(Volume, VolumeMount)> {
    let secret_volume = |name: &str, secret: String, path: &str| {
        (
            Volume {
                name: name.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret),
                    // Readable by the broker's group (fsGroup) only.
                    default_mode: Some(0o440),
                    optional: Some(false),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            VolumeMount {
                name: name.into(),
                mount_path: path.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        )
    };
    let mut out = Vec::new();
    if let Some(secret) = model.tls_secret() {
        out.push(secret_volume("tls", secret, TLS_MOUNT_PATH));
    }
    if model.secured() {
        out.push(secret_volume(
            "operator-credentials",
            model.operator_credentials_name(),
            OPERATOR_MOUNT_PATH,
        ));
    }
    out
}
