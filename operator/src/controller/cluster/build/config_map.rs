use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::security::security_env;
use super::{ClusterModel, LAKE_SECRET_FILE, LAKE_SECRET_MOUNT_PATH};

/// The brokers' settings as environment variables (`envFrom`): every flag of
/// `sluice-broker` has a `SLUICE_*` variable, and the S3 client reads `AWS_*`.
/// Per-pod values (node id, advertised address) are set on the container instead.
pub fn config_map(model: &ClusterModel<'_>) -> ConfigMap {
    let spec = &model.cluster.spec;
    let mut data = BTreeMap::from([
        ("SLUICE_STORAGE".to_string(), model.storage_url()),
        (
            "SLUICE_LISTEN".to_string(),
            format!("0.0.0.0:{}", model.kafka_port()),
        ),
        (
            "SLUICE_METRICS_LISTEN".to_string(),
            format!("0.0.0.0:{}", model.metrics_port()),
        ),
        // Topics are created by Feeds, never by a client's first Metadata request.
        ("SLUICE_AUTO_CREATE_TOPICS".to_string(), "false".to_string()),
        (
            "SLUICE_WAL_LINGER_MS".to_string(),
            spec.wal.linger_ms.to_string(),
        ),
        (
            "SLUICE_WAL_MAX_BYTES".to_string(),
            spec.wal.max_bytes.to_string(),
        ),
        ("SLUICE_LOG_FORMAT".to_string(), "json".to_string()),
    ]);
    let storage = &spec.storage;
    if let Some(region) = &storage.region {
        data.insert("AWS_REGION".into(), region.clone());
    }
    if let Some(endpoint) = &storage.endpoint {
        data.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
        if endpoint.starts_with("http://") {
            data.insert("AWS_ALLOW_HTTP".into(), "true".into());
        }
    }
    if let Some(key) = &storage.encryption_key {
        data.insert("AWS_SERVER_SIDE_ENCRYPTION".into(), "aws:kms".into());
        data.insert("AWS_SSE_KMS_KEY_ID".into(), key.clone());
    }
    if let Some(lake) = &spec.lake {
        let catalog = &lake.catalog;
        data.insert("SLUICE_LAKE_CATALOG".into(), catalog.uri.clone());
        if let Some(warehouse) = &catalog.warehouse {
            data.insert("SLUICE_LAKE_WAREHOUSE".into(), warehouse.clone());
        }
        if !catalog.properties.is_empty() {
            let props: Vec<String> = catalog
                .properties
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            data.insert("SLUICE_LAKE_CATALOG_PROPS".into(), props.join(","));
        }
        if catalog.properties_secret_ref.is_some() {
            data.insert(
                "SLUICE_LAKE_CATALOG_PROPS_FILE".into(),
                format!("{LAKE_SECRET_MOUNT_PATH}/{LAKE_SECRET_FILE}"),
            );
        }
    }
    data.extend(security_env(model));
    ConfigMap {
        metadata: model.owned_meta(model.config_map_name()),
        data: Some(data),
        ..ConfigMap::default()
    }
}
