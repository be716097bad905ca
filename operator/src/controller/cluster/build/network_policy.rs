use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ClusterModel;
use crate::crd::cluster::ListenerSpec;

/// Ingress to the brokers: each listener admits its `allowFrom` peers (everyone when the
/// list is empty) and always the operator, which creates topics and reads metrics.
/// Egress is not restricted: brokers reach their object store.
pub fn network_policy(model: &ClusterModel<'_>) -> NetworkPolicy {
    let listeners = &model.cluster.spec.listeners;
    NetworkPolicy {
        metadata: model.owned_meta(model.broker_name()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(model.selector_labels()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                ingress_rule(model, &listeners.kafka),
                ingress_rule(model, &listeners.metrics),
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}

fn ingress_rule(model: &ClusterModel<'_>, listener: &ListenerSpec) -> NetworkPolicyIngressRule {
    let from = (!listener.allow_from.is_empty()).then(|| {
        let mut peers = listener.allow_from.clone();
        peers.push(operator_peer(model));
        peers
    });
    NetworkPolicyIngressRule {
        from,
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(listener.port)),
            protocol: Some("TCP".into()),
            ..NetworkPolicyPort::default()
        }]),
    }
}

fn operator_peer(model: &ClusterModel<'_>) -> NetworkPolicyPeer {
    let namespace_selector =
        LabelSelector {
            match_labels: model.config.operator_namespace.as_ref().map(|ns| {
                BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.clone())])
            }),
            ..LabelSelector::default()
        };
    NetworkPolicyPeer {
        namespace_selector: Some(namespace_selector),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "sluice-operator".to_string(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}
