//! A Feed, named as in `kubectl get feeds`, resolved through the Kubernetes API to what
//! a report needs: the Feed's topic and the HTTP address of its cluster's brokers.
//!
//! The objects are read as `DynamicObject`s, not the operator's types, so this crate
//! does not build the operator; the rules below repeat the operator's and name where
//! they come from.

use anyhow::{anyhow, Context};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client, ResourceExt};

/// `sluice.dev/v1alpha1` (operator/src/crd/feed.rs, cluster.rs).
const GROUP: &str = "sluice.dev";
const VERSION: &str = "v1alpha1";
/// The brokers' HTTP listener when `spec.listeners.metrics.port` is unset
/// (operator/src/crd/cluster.rs, `default_metrics_listener`).
const DEFAULT_HTTP_PORT: u64 = 9644;

/// What `sluice evidence` asks, and whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub topic: String,
    /// `http://host:port` of a broker's HTTP listener.
    pub broker: String,
}

pub fn feed_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, "Feed"), "feeds")
}

pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "SecurityLakeCluster"),
        "securitylakeclusters",
    )
}

/// `spec.topicName`, else the Feed's name (the operator's `Feed::topic_name`).
pub fn topic_of(feed: &DynamicObject) -> String {
    feed.data["spec"]["topicName"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| feed.name_any())
}

/// `spec.clusterRef.name`: the SecurityLakeCluster in the Feed's namespace.
pub fn cluster_of(feed: &DynamicObject) -> anyhow::Result<String> {
    feed.data["spec"]["clusterRef"]["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("Feed {} has no spec.clusterRef.name", feed.name_any()))
}

/// `http://<cluster>-brokers.<namespace>.svc:<port>`: the headless Service the operator
/// creates for every cluster (operator/src/controller/cluster/build/service.rs); of the
/// cluster's Services it is the one that carries the HTTP (`metrics`) port, and its name
/// resolves to the brokers themselves. The name resolves inside the cluster only.
pub fn broker_url_of(cluster: &DynamicObject, namespace: &str) -> String {
    let port = cluster.data["spec"]["listeners"]["metrics"]["port"]
        .as_u64()
        .unwrap_or(DEFAULT_HTTP_PORT);
    format!(
        "http://{}-brokers.{namespace}.svc:{port}",
        cluster.name_any()
    )
}

/// Reads Feed `namespace/feed` and, unless `broker` is given, its cluster.
pub async fn resolve(
    client: Client,
    namespace: &str,
    feed: &str,
    broker: Option<&str>,
) -> anyhow::Result<Target> {
    let feeds: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &feed_resource());
    let object = feeds
        .get(feed)
        .await
        .map_err(|e| describe("Feed", namespace, feed, e))?;
    let topic = topic_of(&object);
    let broker = match broker {
        Some(b) => b.to_string(),
        None => {
            let cluster = cluster_of(&object)?;
            let clusters: Api<DynamicObject> =
                Api::namespaced_with(client, namespace, &cluster_resource());
            let cluster_object = clusters
                .get(&cluster)
                .await
                .map_err(|e| describe("SecurityLakeCluster", namespace, &cluster, e))
                .with_context(|| format!("the cluster of Feed {namespace}/{feed}"))?;
            broker_url_of(&cluster_object, namespace)
        }
    };
    Ok(Target { topic, broker })
}

/// The API server's own message, without kube's debug dump of the whole `Status`.
fn describe(kind: &str, namespace: &str, name: &str, error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) if status.code == 404 => anyhow!(
            "{kind} {namespace}/{name} not found ({})",
            status.message.trim()
        ),
        kube::Error::Api(status) => anyhow!(
            "reading {kind} {namespace}/{name}: {} {}: {}",
            status.code,
            status.reason,
            status.message.trim()
        ),
        other => anyhow!(other).context(format!("reading {kind} {namespace}/{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(resource: &ApiResource, name: &str, spec: serde_json::Value) -> DynamicObject {
        let mut o = DynamicObject::new(name, resource).within("security");
        o.data = json!({ "spec": spec });
        o
    }

    #[test]
    fn the_topic_is_spec_topic_name_or_the_feed_name() {
        let named = object(&feed_resource(), "dns", json!({"topicName": "dns-events"}));
        assert_eq!(topic_of(&named), "dns-events");
        let unnamed = object(
            &feed_resource(),
            "dns",
            json!({"clusterRef": {"name": "lake"}}),
        );
        assert_eq!(topic_of(&unnamed), "dns");
        assert_eq!(cluster_of(&unnamed).unwrap(), "lake");
        let err = cluster_of(&named).unwrap_err().to_string();
        assert_eq!(err, "Feed dns has no spec.clusterRef.name");
    }

    #[test]
    fn the_broker_is_the_headless_service_on_the_http_port() {
        let default_port = object(&cluster_resource(), "lake", json!({}));
        assert_eq!(
            broker_url_of(&default_port, "security"),
            "http://lake-brokers.security.svc:9644"
        );
        let custom = object(
            &cluster_resource(),
            "lake",
            json!({"listeners": {"metrics": {"port": 9100}}}),
        );
        assert_eq!(
            broker_url_of(&custom, "security"),
            "http://lake-brokers.security.svc:9100"
        );
    }

    #[test]
    fn the_resources_are_the_operators_crds() {
        let feed = feed_resource();
        assert_eq!(
            (
                feed.api_version.as_str(),
                feed.kind.as_str(),
                feed.plural.as_str()
            ),
            ("sluice.dev/v1alpha1", "Feed", "feeds")
        );
        assert_eq!(cluster_resource().plural, "securitylakeclusters");
        // The generated CRDs (`sluice-operator crd`) name the same group, version and plurals.
        let crds = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/sluice.dev.yaml"),
        )
        .unwrap();
        for expected in [
            "group: sluice.dev",
            "name: v1alpha1",
            "plural: feeds",
            "plural: securitylakeclusters",
        ] {
            assert!(
                crds.contains(expected),
                "crds/sluice.dev.yaml: no {expected:?}"
            );
        }
    }
}
