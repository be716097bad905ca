use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ClusterModel;

/// Ingress to the brokers: each listener admits its `allowFrom` peers (everyone when the
/// list is empty) and always the operator, which creates topics and reads metrics; the
/// control listener of a secured cluster admits the operator and the brokers only.
/// Egress is not restricted: brokers reach their object store.
pub fn network_policy(model: &ClusterModel<'_>) -> NetworkPolicy {
    NetworkPolicy {
        metadata: model.owned_meta(model.broker_name()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(model.selector_labels()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress_rules(model)),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// The kafka and metrics listeners for their `allowFrom` peers; a secured cluster's
/// control listener for the operator and the brokers themselves (dead-letter forwards).
fn ingress_rules(model: &ClusterModel<'_>) -> Vec<NetworkPolicyIngressRule> {
    let listeners = &model.cluster.spec.listeners;
    let mut rules = vec![
        ingress_rule(model, listeners.kafka.port, &listeners.kafka.allow_from),
        ingress_rule(model, listeners.metrics.port, &listeners.metrics.allow_from),
    ];
    if model.secured() {
        let brokers = NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(model.selector_labels()),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        };
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![operator_peer(model), brokers]),
            ports: Some(vec![tcp_port(listeners.control.port)]),
        });
    }
    rules
}

fn ingress_rule(
    model: &ClusterModel<'_>,
    port: i32,
    allow_from: &[NetworkPolicyPeer],
) -> NetworkPolicyIngressRule {
    let from = (!allow_from.is_empty()).then(|| {
        let mut peers = allow_from.to_vec();
        peers.push(operator_peer(model));
        peers
    });
    NetworkPolicyIngressRule {
        from,
        ports: Some(vec![tcp_port(port)]),
    }
}

fn tcp_port(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
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
