//! Pure builders: a `SecurityLakeCluster` (plus operator settings) in, Kubernetes objects
//! out. No client, no clock; tested from YAML fixtures.

mod certificate;
mod config_map;
mod network_policy;
mod pdb;
mod pvc;
mod security;
mod service;
mod service_account;
mod service_monitor;
mod statefulset;

pub use certificate::{certificate, certificate_pending, certificate_resource};
pub use config_map::config_map;
pub use network_policy::network_policy;
pub use pdb::pod_disruption_budget;
pub use pvc::bucket_claim;
pub use security::{
    operator_credentials, ClusterCredentials, BROKER_PASSWORD_KEY, BROKER_USER, OPERATOR_USER,
    PASSWORD_KEY, SCRAM_MECHANISM, TLS_MOUNT_PATH,
};
pub use service::{bootstrap_service, headless_service};
pub use service_account::service_account;
pub use service_monitor::{service_monitor, service_monitor_resource};
pub use statefulset::stateful_set;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};

use crate::controller::OperatorConfig;
use crate::crd::SecurityLakeCluster;

/// Where a provisioned bucket (PersistentVolumeClaim) is mounted in broker pods.
pub const BUCKET_MOUNT_PATH: &str = "/var/lib/sluice/bucket";
/// Where the key of `lake.catalog.propertiesSecretRef` is mounted in broker pods, as
/// [`LAKE_SECRET_FILE`].
pub const LAKE_SECRET_MOUNT_PATH: &str = "/etc/sluice/lake";
pub const LAKE_SECRET_FILE: &str = "catalog.properties";
/// Pod template annotation holding a hash of the broker configuration: a change of the
/// configuration changes the template, so the StatefulSet rolls the brokers.
pub const CONFIG_HASH_ANNOTATION: &str = "sluice.dev/config-hash";
/// The label StatefulSet pods carry with their ordinal (Kubernetes 1.28+).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Names the container in broker pods.
pub const BROKER_CONTAINER: &str = "broker";

/// Everything the builders derive from one cluster: names, labels, addresses.
#[derive(Clone, Debug)]
pub struct ClusterModel<'a> {
    pub cluster: &'a SecurityLakeCluster,
    pub config: &'a OperatorConfig,
    pub name: String,
    pub namespace: String,
    /// Annotations of the broker ServiceAccount from the cloud provider (the IAM role).
    pub service_account_annotations: BTreeMap<String, String>,
    /// Brokers the StatefulSet runs: `spec.replicas`, or the autoscaler's choice.
    pub replicas: i32,
    /// The SCRAM passwords of a secured cluster's own users: read from their Secret, or
    /// generated for a new one.
    pub credentials: Option<ClusterCredentials>,
}

impl<'a> ClusterModel<'a> {
    /// `None` when the cluster has no namespace (never true for a stored object).
    pub fn new(cluster: &'a SecurityLakeCluster, config: &'a OperatorConfig) -> Option<Self> {
        Some(ClusterModel {
            cluster,
            config,
            name: cluster.name_any(),
            namespace: cluster.namespace()?,
            service_account_annotations: BTreeMap::new(),
            replicas: cluster.spec.replicas,
            credentials: None,
        })
    }

    /// The StatefulSet, PodDisruptionBudget and NetworkPolicy: `<cluster>-broker`.
    pub fn broker_name(&self) -> String {
        format!("{}-broker", self.name)
    }
    /// The headless Service that gives each broker its DNS name.
    pub fn headless_name(&self) -> String {
        format!("{}-brokers", self.name)
    }
    pub fn bootstrap_name(&self) -> String {
        format!("{}-bootstrap", self.name)
    }
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }
    pub fn bucket_claim_name(&self) -> String {
        format!("{}-bucket", self.name)
    }

    pub fn kafka_port(&self) -> i32 {
        self.cluster.spec.listeners.kafka.port
    }
    pub fn metrics_port(&self) -> i32 {
        self.cluster.spec.listeners.metrics.port
    }

    /// `svc.<domain>` suffix of in-cluster names.
    pub(crate) fn svc_domain(&self) -> String {
        format!("{}.svc.{}", self.namespace, self.config.cluster_domain)
    }

    /// `host:port` clients bootstrap from.
    pub fn bootstrap_address(&self) -> String {
        format!(
            "{}.{}:{}",
            self.bootstrap_name(),
            self.svc_domain(),
            self.kafka_port()
        )
    }

    /// DNS name of broker `ordinal` (through the headless Service).
    pub fn pod_host(&self, ordinal: i32) -> String {
        format!(
            "{}-{ordinal}.{}.{}",
            self.broker_name(),
            self.headless_name(),
            self.svc_domain()
        )
    }

    /// The advertised address with the pod name left to the kubelet's `$(POD_NAME)`
    /// expansion.
    pub fn advertise_template(&self) -> String {
        format!(
            "$(POD_NAME).{}.{}:{}",
            self.headless_name(),
            self.svc_domain(),
            self.kafka_port()
        )
    }

    /// The `--storage` URL brokers get.
    pub fn storage_url(&self) -> String {
        match &self.cluster.spec.storage.url {
            Some(url) => url.clone(),
            None => format!("file://{BUCKET_MOUNT_PATH}"),
        }
    }

    pub fn image(&self) -> String {
        self.cluster
            .spec
            .image
            .clone()
            .unwrap_or_else(|| self.config.broker_image.clone())
    }

    /// Labels that select this cluster's broker pods.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "sluice-broker".to_string(),
            ),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
        ])
    }

    /// `app.kubernetes.io/name=sluice-broker,app.kubernetes.io/instance=<cluster>`.
    pub fn selector_string(&self) -> String {
        self.selector_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Labels of every object the operator makes for this cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/component".into(), "broker".into());
        labels.insert(
            "app.kubernetes.io/managed-by".into(),
            "sluice-operator".into(),
        );
        labels.insert("app.kubernetes.io/part-of".into(), "sluice".into());
        labels
    }

    /// The owner reference that makes the cluster the controller of an object, so
    /// deleting the cluster deletes it and changes to it wake the reconciler.
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        self.cluster.controller_owner_ref(&())
    }

    /// Metadata of an owned object called `name`.
    pub fn owned_meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: self.owner_reference().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

/// Every object the cluster needs, in apply order: configuration and addressing before
/// the workload, so brokers do not start twice.
#[derive(Clone, Debug)]
pub struct ClusterObjects {
    pub service_account: ServiceAccount,
    /// Only on a secured cluster: the operator's SCRAM user, a bootstrap user of the
    /// brokers.
    pub operator_credentials: Option<Secret>,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub bootstrap_service: Service,
    /// Only when the cluster asks for a provisioned bucket.
    pub bucket_claim: Option<PersistentVolumeClaim>,
    pub stateful_set: StatefulSet,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub network_policy: NetworkPolicy,
    /// Only when the ServiceMonitor CRD exists.
    pub service_monitor: Option<DynamicObject>,
}

/// Builds every object of `model`'s cluster.
pub fn build(model: &ClusterModel<'_>, service_monitor_crd: bool) -> ClusterObjects {
    let config_map = config_map(model);
    ClusterObjects {
        service_account: service_account(model),
        operator_credentials: operator_credentials(model),
        headless_service: headless_service(model),
        bootstrap_service: bootstrap_service(model),
        bucket_claim: bucket_claim(model),
        stateful_set: stateful_set(model, &config_map),
        config_map,
        pod_disruption_budget: pod_disruption_budget(model),
        network_policy: network_policy(model),
        service_monitor: service_monitor_crd.then(|| service_monitor(model)),
    }
}

/// FNV-1a, 64 bit: a hash that stays the same across Rust releases, so operator upgrades
/// do not roll brokers for nothing.
pub fn stable_hash(data: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for (k, v) in data {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}
