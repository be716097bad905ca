use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ClusterModel;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        app_protocol: None,
        ..ServicePort::default()
    }
}

/// The kafka port, the operator's control port on a secured cluster, and `extra`.
fn kafka_ports(model: &ClusterModel<'_>, extra: Option<ServicePort>) -> Vec<ServicePort> {
    let mut ports = vec![port("kafka", model.kafka_port())];
    ports.extend(extra);
    if model.secured() {
        ports.push(port("control", model.control_port()));
    }
    ports
}

/// The headless Service: one DNS name per broker (`<pod>.<cluster>-brokers`), which each
/// broker advertises. Addresses are published before readiness so a starting broker's
/// name resolves as soon as clients can learn it.
pub fn headless_service(model: &ClusterModel<'_>) -> Service {
    let mut metadata = model.owned_meta(model.headless_name());
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("sluice.dev/service".into(), "brokers".into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(model.selector_labels()),
            ports: Some(kafka_ports(
                model,
                Some(port("metrics", model.metrics_port())),
            )),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The bootstrap Service: one stable address in front of the ready brokers.
pub fn bootstrap_service(model: &ClusterModel<'_>) -> Service {
    let mut metadata = model.owned_meta(model.bootstrap_name());
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("sluice.dev/service".into(), "bootstrap".into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(model.selector_labels()),
            ports: Some(kafka_ports(model, None)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
