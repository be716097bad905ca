//! How the operator reaches a cluster's brokers: the address to dial and the security
//! to dial it with (the CONTROL listener of a secured cluster, as the operator's SCRAM
//! user, verifying the listener certificate against its Secret's CA), and what clients
//! of the cluster need (for the credentials Secrets of Feeds).

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::cluster::build::{ClusterModel, OPERATOR_USER, PASSWORD_KEY};
use super::cluster::secrets::secret_bytes;
use super::feed::access::credentials::ClientSettings;
use super::Context;
use crate::crd::conditions::Health;
use crate::crd::SecurityLakeCluster;
use crate::error::KubeContext;
use crate::kafka::{ClientSecurity, ScramLogin, TlsClient};
use crate::Result;

/// A cluster as the operator connects to it.
#[derive(Clone, Debug)]
pub struct ClusterClient {
    /// `host:port` to dial (resolved for this process, see [`Context::address`]).
    pub bootstrap: String,
    pub security: ClientSecurity,
    /// What clients of the cluster's kafka listener need.
    pub settings: ClientSettings,
    /// Whether the cluster authenticates clients (and so enforces ACLs).
    pub secured: bool,
}

/// The client of `cluster`, or the health to report while it cannot be made (its
/// Secrets are not there yet, or hold something unusable).
pub async fn cluster_client(
    ctx: &Context,
    cluster: &SecurityLakeCluster,
) -> Result<std::result::Result<ClusterClient, Health>> {
    let Some(model) = ClusterModel::new(cluster, &ctx.config) else {
        return Ok(Err(Health::stalled(
            "ClusterNotFound",
            "the cluster has no namespace",
        )));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &model.namespace);
    let server_name = model
        .operator_bootstrap_address()
        .rsplit_once(':')
        .map(|(host, _)| host.to_string())
        .unwrap_or_default();
    let mut security = ClientSecurity::default();
    let mut ca_pem = None;
    if let Some(name) = model.tls_secret() {
        let secret = secrets.get_opt(&name).await.kube("get", "Secret", &name)?;
        let Some(ca) = secret.and_then(|s| secret_bytes(&s, "ca.crt")) else {
            return Ok(Err(Health::progressing(
                "WaitingForCluster",
                format!("TLS Secret {name} has no ca.crt yet"),
            )));
        };
        let tls = TlsClient::from_ca_pem(&ca)
            .and_then(|t| t.with_server_name(&server_name))
            .map_err(|e| e.to_string());
        match tls {
            Ok(tls) => security.tls = Some(tls),
            Err(e) => return Ok(Err(Health::stalled("TlsSecretInvalid", e))),
        }
        ca_pem = Some(ca);
    }
    if model.secured() {
        let name = model.operator_credentials_name();
        let secret = secrets.get_opt(&name).await.kube("get", "Secret", &name)?;
        let Some(password) = secret.and_then(|s| secret_bytes(&s, PASSWORD_KEY)) else {
            return Ok(Err(Health::progressing(
                "WaitingForCluster",
                format!("the operator's credentials Secret {name} is not made yet"),
            )));
        };
        security.sasl = Some(ScramLogin {
            mechanism: sluice_auth::Mechanism::Sha512,
            user: OPERATOR_USER.to_string(),
            password: String::from_utf8_lossy(&password).into_owned(),
        });
    }
    Ok(Ok(ClusterClient {
        bootstrap: ctx.address(&operator_address(cluster, &model)).await,
        security,
        settings: ClientSettings {
            cluster: model.name.clone(),
            namespace: model.namespace.clone(),
            bootstrap: model.bootstrap_address(),
            security_protocol: model.client_security_protocol().to_string(),
            ca_pem,
            owner: model.owner_reference(),
        },
        secured: model.secured(),
    }))
}

/// Where the operator dials: the bootstrap address the cluster's status reports (what
/// the cluster reconciler wrote, so the two never disagree), on the control port when
/// the cluster is secured.
fn operator_address(cluster: &SecurityLakeCluster, model: &ClusterModel<'_>) -> String {
    let reported = cluster.status.as_ref().and_then(|s| s.bootstrap.clone());
    let Some(reported) = reported else {
        return model.operator_bootstrap_address();
    };
    match (model.secured(), reported.rsplit_once(':')) {
        (true, Some((host, _))) => format!("{host}:{}", model.control_port()),
        _ => reported,
    }
}
