use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::ClusterModel;

/// The Prometheus Operator's ServiceMonitor kind.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// Scrapes every broker's `/metrics` through the headless Service. Built only when the
/// ServiceMonitor CRD is installed.
pub fn service_monitor(model: &ClusterModel<'_>) -> DynamicObject {
    let mut obj = DynamicObject::new(&model.broker_name(), &service_monitor_resource())
        .within(&model.namespace)
        .data(serde_json::json!({
            "spec": {
                "selector": {
                    "matchLabels": {
                        "app.kubernetes.io/instance": model.name,
                        "app.kubernetes.io/name": "sluice-broker",
                        "sluice.dev/service": "brokers",
                    }
                },
                "endpoints": [{ "port": "metrics", "path": "/metrics", "interval": "30s" }],
            }
        }));
    let meta = model.owned_meta(model.broker_name());
    obj.metadata.labels = meta.labels;
    obj.metadata.owner_references = meta.owner_references;
    obj
}
