use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::ClusterModel;
use crate::crd::cluster::IssuerKind;

/// cert-manager's Certificate kind.
pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
}

/// The listener's Certificate, with `tls.issuerRef`: every name a client reaches a broker
/// by (the bootstrap Service, each broker through the headless Service, short and with
/// the cluster domain), issued into the Secret the brokers mount. cert-manager renews
/// it in place; the brokers reload it.
pub fn certificate(model: &ClusterModel<'_>) -> Option<DynamicObject> {
    let tls = model.cluster.spec.listeners.kafka.tls.as_ref()?;
    let issuer = tls.issuer_ref.as_ref()?;
    let namespace = &model.namespace;
    let domain = &model.config.cluster_domain;
    let bootstrap = model.bootstrap_name();
    let headless = model.headless_name();
    let dns_names = [
        format!("{bootstrap}.{namespace}.svc.{domain}"),
        format!("{bootstrap}.{namespace}.svc"),
        format!("*.{headless}.{namespace}.svc.{domain}"),
        format!("*.{headless}.{namespace}.svc"),
    ];
    let kind = match issuer.kind {
        IssuerKind::Issuer => "Issuer",
        IssuerKind::ClusterIssuer => "ClusterIssuer",
    };
    let name = model.certificate_name();
    let mut obj = DynamicObject::new(&name, &certificate_resource())
        .within(namespace)
        .data(serde_json::json!({
            "spec": {
                "secretName": name,
                "dnsNames": dns_names,
                "issuerRef": { "name": issuer.name, "kind": kind, "group": issuer.group },
                "usages": ["server auth", "digital signature", "key encipherment"],
                "privateKey": { "rotationPolicy": "Always" },
            }
        }));
    let meta = model.owned_meta(name);
    obj.metadata.labels = meta.labels;
    obj.metadata.owner_references = meta.owner_references;
    Some(obj)
}

/// Why a Certificate is not issued yet, from its `Ready` condition.
pub fn certificate_pending(certificate: &DynamicObject) -> Option<String> {
    let conditions = certificate
        .data
        .get("status")?
        .get("conditions")?
        .as_array()?;
    let ready = conditions
        .iter()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some("Ready"))?;
    if ready.get("status").and_then(|s| s.as_str()) == Some("True") {
        return None;
    }
    let reason = ready.get("reason").and_then(|r| r.as_str()).unwrap_or("");
    let message = ready.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{reason}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: serde_json::Value) -> DynamicObject {
        DynamicObject::new("vault-kafka-tls", &certificate_resource())
            .data(serde_json::json!({ "status": status }))
    }

    #[test]
    fn a_pending_certificate_says_why_in_cert_managers_words() {
        let pending = with_status(serde_json::json!({"conditions": [
            {"type": "Issuing", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "DoesNotExist",
             "message": "Issuer soc-ca not found"}
        ]}));
        assert_eq!(
            certificate_pending(&pending).as_deref(),
            Some("DoesNotExist: Issuer soc-ca not found")
        );
        let ready = with_status(serde_json::json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready"}
        ]}));
        assert_eq!(certificate_pending(&ready), None);
        // Not looked at by cert-manager yet: nothing to say.
        assert_eq!(
            certificate_pending(&with_status(serde_json::json!({}))),
            None
        );
    }
}
