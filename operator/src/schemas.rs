//! JSON schemas for `kubeconform`: our kinds from the CRDs' openAPIV3Schema, and the
//! built-in kinds the Helm chart renders from k8s-openapi's schemas. Every object schema
//! that lists its properties refuses others (`additionalProperties: false`), which is what
//! `kubeconform -strict` expects of a schema.
//!
//! Files are named `<kind>_<group>_<version>.json` (kind in lower case; the core group's
//! `<group>` is `v1`, as kubeconform derives it),
//! for `-schema-location '<dir>/{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json'`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd::{Feed, SecurityLakeCluster};

/// File name → schema.
pub fn kubeconform_schemas() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for crd in [SecurityLakeCluster::crd(), Feed::crd()] {
        for version in &crd.spec.versions {
            let mut schema = serde_json::to_value(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("derived CRDs carry a schema"),
            )
            .expect("schema serializes");
            // metadata is checked by the API server, not described in a CRD schema.
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("metadata".into(), serde_json::json!({"type": "object"}));
                props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
                props.insert("kind".into(), serde_json::json!({"type": "string"}));
            }
            strict(&mut schema);
            out.insert(
                file_name(&crd.spec.names.kind, &crd.spec.group, &version.name),
                schema,
            );
        }
    }
    builtin::<Deployment>(&mut out, "Deployment", "apps", "v1");
    builtin::<Service>(&mut out, "Service", "", "v1");
    builtin::<ServiceAccount>(&mut out, "ServiceAccount", "", "v1");
    builtin::<ClusterRole>(&mut out, "ClusterRole", "rbac.authorization.k8s.io", "v1");
    builtin::<ClusterRoleBinding>(
        &mut out,
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
    );
    out
}

fn file_name(kind: &str, group: &str, version: &str) -> String {
    // kubeconform's `.Group` is the part of apiVersion before the `/`: for the core group
    // (`apiVersion: v1`) that is the version itself.
    let group = if group.is_empty() { version } else { group };
    format!("{}_{group}_{version}.json", kind.to_lowercase())
}

fn builtin<K: schemars::JsonSchema>(
    out: &mut BTreeMap<String, Value>,
    kind: &str,
    group: &str,
    version: &str,
) {
    let generator = schemars::generate::SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema =
        serde_json::to_value(generator.into_root_schema_for::<K>()).expect("schema serializes");
    strict(&mut schema);
    out.insert(file_name(kind, group, version), schema);
}

/// `additionalProperties: false` on every object schema that lists properties and says
/// nothing about others.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserves = map
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    // Property name → schema: the names are not schemas (a field may be
                    // called `properties`), their values are.
                    ("properties", Value::Object(named)) => named.values_mut().for_each(strict),
                    (_, v) => strict(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_called_properties_is_a_field_not_a_schema() {
        // The shape of `lake.catalog`: a field `properties` holding a string map.
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "uri": {"type": "string"},
                "properties": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        });
        strict(&mut schema);
        assert_eq!(schema["additionalProperties"], false);
        let fields = schema["properties"].as_object().unwrap();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["properties", "uri"],
            "no field is added"
        );
        assert_eq!(
            fields["properties"]["additionalProperties"],
            serde_json::json!({"type": "string"})
        );
    }
}
