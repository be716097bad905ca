//! `SecurityLakeCluster`: a fleet of stateless Sluice brokers over one object store.
//!
//! Long because: one concern, the SecurityLakeCluster resource as the API server stores it
//! (spec sections, their defaults and CEL rules, and the status); types only, each short.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DeletionPolicy;

/// A Sluice cluster: brokers (a StatefulSet), their Services, configuration and
/// storage. Brokers keep no state of their own; all data lives under `spec.storage`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "SecurityLakeCluster",
    namespaced,
    status = "SecurityLakeClusterStatus",
    shortname = "slc",
    category = "sluice",
    doc = "A Sluice broker cluster: stateless Kafka-compatible brokers whose data lives in object storage.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Brokers", type_ = "integer", json_path = ".status.readyReplicas", description = "Ready brokers"),
    printcolumn(name = "Throughput", type_ = "string", json_path = ".status.throughput", description = "Produce and fetch bytes per second"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.maxConsumerLag", description = "Largest consumer group lag, in records"),
    printcolumn(name = "Bootstrap", type_ = "string", json_path = ".status.bootstrap", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 45").message("a SecurityLakeCluster name has at most 45 characters, so its broker pod names fit in 63")
)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
#[x_kube(validation = Rule::new("self.replicas >= self.minReplicas && self.replicas <= self.maxReplicas").message("replicas must lie between minReplicas and maxReplicas"))]
#[x_kube(validation = Rule::new("(self.provider == 'aws') == has(self.aws)").message("spec.aws is required with provider aws, and only allowed with it"))]
#[x_kube(validation = Rule::new("self.provider != 'aws' || (has(self.storage.url) && has(self.storage.region))").message("provider aws needs storage.url (the bucket and prefix) and storage.region"))]
#[x_kube(validation = Rule::new("self.provider != 'aws' || !has(self.storage.credentialsSecret)").message("provider aws gives the brokers an IAM role (IRSA): storage.credentialsSecret is not used with it"))]
#[x_kube(validation = Rule::new("self.provider != 'aws' || !has(self.storage.encryptionKey) || self.storage.encryptionKey.matches('^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[^/]+$')").message("with provider aws, storage.encryptionKey is a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), so the brokers' policy can name it"))]
#[x_kube(validation = Rule::new("!has(self.lake) || !self.lake.catalog.uri.startsWith('sqlite:') || (has(self.storage.bucket) && self.lake.catalog.uri.matches('^sqlite:(//)?/var/lib/sluice/bucket/.+'))").message("a sqlite catalog needs storage.bucket and a path under /var/lib/sluice/bucket/, the one directory every broker shares"))]
#[x_kube(validation = Rule::new("self.storage.deletionPolicy == 'Retain' || has(self.storage.bucket) || (self.provider == 'aws' && has(self.aws) && self.aws.createBucket)").message("deletionPolicy Delete applies to a bucket the operator provisions; an existing url is never deleted"))]
#[serde(rename_all = "camelCase")]
pub struct SecurityLakeClusterSpec {
    /// Where the infrastructure comes from. `local`: no cloud calls; storage is an existing
    /// S3-compatible URL or a PersistentVolumeClaim the operator provisions. `aws`: the
    /// operator provisions the bucket, the brokers' IAM role and an S3 VPC endpoint
    /// (`spec.aws`). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("provider is immutable"))]
    pub provider: Provider,
    /// What the `aws` provider provisions. Required with `provider: aws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSpec>,
    /// Broker container image. Default: the operator's `--broker-image` (Helm value
    /// `brokerImage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// CPU and memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Number of brokers (the `scale` subresource writes this field).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Fewest brokers `replicas` may be set to.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most brokers `replicas` may be set to.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// The object store every broker of the cluster shares.
    pub storage: StorageSpec,
    /// Write-ahead-log batching of the brokers.
    #[serde(default)]
    pub wal: WalSpec,
    /// Ports and who may reach them.
    #[serde(default)]
    pub listeners: ListenersSpec,
    /// Scale the brokers between `minReplicas` and `maxReplicas` from throughput, consumer
    /// lag and CPU, and balance partition leadership by load. Absent: `replicas` is the
    /// broker count. Present: `replicas` is where the autoscaler starts; its choice shows
    /// in `status.autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// The Iceberg catalog the brokers register Feeds' tables in (`Feed.spec.table`).
    /// Absent: the brokers' default, a sqlite catalog in the bucket with `storage.bucket`
    /// and none (no tables are written) with an `s3://` url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lake: Option<LakeSpec>,
    /// Who may approve the replays of the cluster's Feeds (`Feed.spec.replays`). Absent:
    /// the defaults (only each Feed's own team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_policy: Option<ReplayPolicy>,
    /// Super users of a secured cluster (`listeners.kafka.authentication`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,
}

fn default_replicas() -> i32 {
    3
}
fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    10
}

/// Who may approve a Feed's replay (its `approvedBy`). Never its requester: a replay
/// approved by the person or team that asked for it is refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayPolicy {
    /// Names (teams or users) that may approve the replays of any Feed of the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub approvers: Vec<String>,
    /// The Feed's own team (`spec.owner.team`) may approve its replays. Default `true`.
    #[serde(default = "default_true")]
    pub allow_feed_owner: bool,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy {
            approvers: Vec::new(),
            allow_feed_owner: true,
        }
    }
}

/// Feeds' Iceberg tables: the catalog the brokers commit them to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LakeSpec {
    pub catalog: CatalogSpec,
}

/// An Iceberg catalog: the brokers' `SLUICE_LAKE_CATALOG`, `SLUICE_LAKE_WAREHOUSE`,
/// `SLUICE_LAKE_CATALOG_PROPS` and `SLUICE_LAKE_CATALOG_PROPS_FILE`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    /// `sqlite:<path>` (a SQL catalog in a file under `/var/lib/sluice/bucket/`, the
    /// provisioned bucket every broker mounts), `http(s)://…` (an Iceberg REST catalog:
    /// Polaris, Nessie, Lakekeeper, S3 Tables), or `glue` (AWS Glue with the brokers'
    /// AWS identity; `glue:<endpoint URL>` for a Glue-compatible endpoint).
    #[schemars(
        length(max = 2048),
        regex(pattern = r"^(sqlite:\S+|https?://[^\s/]+(/\S*)?|glue|glue:https?://\S+)$")
    )]
    pub uri: String,
    /// Where new tables' files go, e.g. `s3://lake-tables/prod`. Default: `<storage
    /// url>/tables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^[a-z][a-z0-9+.-]*://\S+$"))]
    pub warehouse: Option<String>,
    /// Catalog and file-IO properties that are not secret, e.g. a REST catalog's
    /// `warehouse` or `s3.region` (`s3.*` default from the brokers' storage settings).
    /// Neither keys nor values may hold a comma; keys no `=`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 4096, "pattern": "^[^,]*$"}))]
    pub properties: BTreeMap<String, String>,
    /// A key of a Secret in the cluster's namespace holding more properties as
    /// `KEY=VALUE` lines (credentials: `credential`, `token`, `s3.secret-access-key`),
    /// mounted into the broker pods as a file. The operator never reads it; the brokers
    /// read it at start, so restart them after changing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_secret_ref: Option<SecretKeyRef>,
    /// With `uri: glue` and `provider: aws`: the Glue databases (the Iceberg namespaces
    /// of the Feeds' tables, `Feed.spec.table.namespace`) the operator creates and lets
    /// the brokers' role use. Empty: `[sluice]`, the default namespace. Glue keeps names
    /// in lower case, so these are lower case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(regex(pattern = r"^[a-z_][a-z0-9_]{0,254}$")))]
    pub glue_databases: Vec<String>,
}

/// The Glue database of the default table namespace.
pub const DEFAULT_GLUE_DATABASE: &str = "sluice";

impl CatalogSpec {
    /// `Some((endpoint))` for a Glue catalog (`glue`: None, `glue:<url>`: the URL).
    pub fn glue_endpoint(&self) -> Option<Option<&str>> {
        if self.uri == "glue" {
            Some(None)
        } else {
            self.uri.strip_prefix("glue:").map(Some)
        }
    }

    /// `glueDatabases`, or the default namespace's when empty.
    pub fn glue_databases(&self) -> Vec<String> {
        if self.glue_databases.is_empty() {
            vec![DEFAULT_GLUE_DATABASE.to_string()]
        } else {
            self.glue_databases.clone()
        }
    }
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub key: String,
}

/// Infrastructure provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// No cloud API calls: an existing bucket URL, or a PersistentVolumeClaim as the bucket.
    #[default]
    Local,
    /// Amazon Web Services: the bucket of `storage.url` (created when `aws.createBucket`),
    /// an IAM role for the brokers (IRSA) and optionally an S3 VPC endpoint.
    Aws,
}

/// What the operator provisions on AWS. Every resource is tagged
/// `sluice.dev/cluster=<namespace>/<name>` plus `tags`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsSpec {
    /// Create the bucket named in `storage.url` in `storage.region` and keep its settings:
    /// public access blocked, default encryption (SSE-KMS with `storage.encryptionKey`,
    /// else SSE-S3), a lifecycle rule aborting incomplete uploads, tags. `false`: the
    /// bucket exists and belongs to someone else; the operator only checks it is there.
    /// Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("aws.createBucket is immutable"))]
    pub create_bucket: bool,
    /// ARN of the IAM OIDC identity provider of the Kubernetes cluster, e.g.
    /// `arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC`.
    /// The brokers' role trusts tokens it issues to the broker ServiceAccount (IRSA).
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[^\s]+$"))]
    pub oidc_provider_arn: String,
    /// An S3 VPC endpoint, so broker traffic to the bucket stays in the VPC. Absent: none
    /// (one the operator made earlier is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint: Option<VpcEndpointSpec>,
    /// Tags of every resource the operator creates (for example `owner: secops`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('sluice.dev/') && !k.startsWith('aws:'))").message("tag keys starting with sluice.dev/ or aws: are reserved"))]
    pub tags: BTreeMap<String, String>,
}

/// The S3 VPC endpoint. `Gateway` (free) routes S3 traffic of the given route tables;
/// `Interface` (PrivateLink) puts network interfaces with private DNS in the subnets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type == 'Gateway' ? (has(self.routeTableIds) && size(self.routeTableIds) > 0 && !has(self.subnetIds) && !has(self.securityGroupIds)) : (has(self.subnetIds) && size(self.subnetIds) > 0 && !has(self.routeTableIds))").message("a Gateway endpoint takes routeTableIds only; an Interface endpoint takes subnetIds and optionally securityGroupIds"))]
#[serde(rename_all = "camelCase")]
pub struct VpcEndpointSpec {
    /// The VPC of the brokers' nodes. Immutable.
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]{8,17}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vpcEndpoint.vpcId is immutable"))]
    pub vpc_id: String,
    /// `Gateway` or `Interface`.
    #[serde(rename = "type", default)]
    pub type_: VpcEndpointType,
    /// Route tables of the brokers' subnets (`Gateway`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(regex(pattern = r"^rtb-[0-9a-f]{8,17}$")))]
    pub route_table_ids: Vec<String>,
    /// Subnets for the endpoint's network interfaces, one per availability zone
    /// (`Interface`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(regex(pattern = r"^subnet-[0-9a-f]{8,17}$")))]
    pub subnet_ids: Vec<String>,
    /// Security groups of the endpoint's network interfaces (`Interface`; default: the
    /// VPC's default group). They must admit HTTPS from the brokers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(regex(pattern = r"^sg-[0-9a-f]{8,17}$")))]
    pub security_group_ids: Vec<String>,
}

/// Kind of S3 VPC endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VpcEndpointType {
    #[default]
    Gateway,
    Interface,
}

impl VpcEndpointType {
    pub fn as_str(self) -> &'static str {
        match self {
            VpcEndpointType::Gateway => "Gateway",
            VpcEndpointType::Interface => "Interface",
        }
    }
}

/// The cluster's object store: exactly one of `url` (an existing bucket) or `bucket` (one
/// the operator provisions).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.bucket)").message("set exactly one of storage.url (an existing bucket) or storage.bucket (one the operator provisions)"))]
#[x_kube(validation = Rule::new("has(self.url) || !(has(self.region) || has(self.endpoint) || has(self.credentialsSecret) || has(self.encryptionKey))").message("region, endpoint, credentialsSecret and encryptionKey apply to an s3:// url only"))]
#[x_kube(validation = Rule::new("has(self.url) == has(oldSelf.url)").message("storage cannot switch between url and bucket: the brokers would lose their data"))]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// An existing S3 or S3-compatible bucket and optional prefix, `s3://BUCKET[/PREFIX]`.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage.url is immutable: the brokers would lose their data"))]
    pub url: Option<String>,
    /// A bucket the operator provisions. With the `local` provider: a PersistentVolumeClaim
    /// mounted by every broker and used as a `file://` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketSpec>,
    /// AWS region of the bucket (`AWS_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. `http://minio.storage:9000`
    /// (`AWS_ENDPOINT_URL`; plain http is allowed when given here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub endpoint: Option<String>,
    /// Name of a Secret in the cluster's namespace whose keys (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`) become the brokers'
    /// environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
    /// KMS key id or ARN: objects are written with SSE-KMS under this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub encryption_key: Option<String>,
    /// What happens to a provisioned bucket (a claim, or an S3 bucket the `aws` provider
    /// created) when the cluster is deleted. Default `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// A bucket the operator provisions. With the `local` provider it is a
/// PersistentVolumeClaim named `<cluster>-bucket`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Requested size, e.g. `100Gi`. May grow when the storage class allows expansion.
    pub size: Quantity,
    /// Storage class of the claim (default: the cluster's default class). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bucket.storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
    /// `ReadWriteMany` lets brokers on any node share the bucket; `ReadWriteOnce` suits a
    /// single-node cluster. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bucket.accessMode is immutable"))]
    pub access_mode: AccessMode,
}

/// Access mode of the provisioned claim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccessMode {
    #[default]
    ReadWriteMany,
    ReadWriteOnce,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
        }
    }
}

/// Write-ahead-log batching: a produce is acknowledged once the WAL object holding it is
/// durable, so these trade latency against object-store requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalSpec {
    /// Longest a produce waits for its WAL object to fill (`--wal-linger-ms`).
    #[serde(default = "default_linger_ms")]
    #[schemars(range(min = 1, max = 1000))]
    pub linger_ms: i32,
    /// WAL object size that triggers a write before the linger ends (`--wal-max-bytes`).
    #[serde(default = "default_wal_max_bytes")]
    #[schemars(range(min = 65536, max = 268435456))]
    pub max_bytes: i64,
}

fn default_linger_ms() -> i32 {
    10
}
fn default_wal_max_bytes() -> i64 {
    8 * 1024 * 1024
}

impl Default for WalSpec {
    fn default() -> Self {
        WalSpec {
            linger_ms: default_linger_ms(),
            max_bytes: default_wal_max_bytes(),
        }
    }
}

/// How the operator sizes and balances the fleet. Desired brokers = the largest of:
/// produce+fetch throughput against `targetBytesPerSecondPerBroker`, consumer lag against
/// `lagThreshold` (KEDA's Kafka-scaler semantics) and CPU against `cpuTargetPercent`;
/// then HPA's behaviour: tolerance, bounded scale-up steps, scale-down only after the
/// stabilisation window. Brokers are drained (their partitions moved, metadata only)
/// before they are removed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Produce + fetch bytes per second one broker should carry.
    #[serde(default = "default_target_bytes")]
    #[schemars(range(min = 1024))]
    pub target_bytes_per_second_per_broker: i64,
    /// Consumer lag (records) one broker's worth of catch-up handles (KEDA
    /// `lagThreshold`). 0: lag does not scale.
    #[serde(default = "default_lag_threshold")]
    #[schemars(range(min = 0))]
    pub lag_threshold: i64,
    /// Total lag at or below which lag asks for nothing (KEDA `activationLagThreshold`).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub activation_lag_threshold: i64,
    /// Leave out partitions whose consumer made no progress since the last sample (KEDA
    /// `excludePersistentLag`): more brokers do not help a stuck consumer.
    #[serde(default = "default_true")]
    pub exclude_persistent_lag: bool,
    /// Target CPU use of a broker, percent of its CPU request (or limit). Absent: CPU does
    /// not scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub cpu_target_percent: Option<i32>,
    /// No change while the ratio to a target is within this many percent (HPA: 10).
    #[serde(default = "default_tolerance")]
    #[schemars(range(min = 0, max = 100))]
    pub tolerance_percent: i32,
    /// Most brokers added in one step: the larger of `scaleUpMaxBrokers` and
    /// `scaleUpMaxPercent` of the current fleet (HPA: 4 and 100).
    #[serde(default = "default_scale_up_brokers")]
    #[schemars(range(min = 1, max = 1000))]
    pub scale_up_max_brokers: i32,
    #[serde(default = "default_scale_up_percent")]
    #[schemars(range(min = 1, max = 1000))]
    pub scale_up_max_percent: i32,
    /// A scale-in takes the largest recommendation of this window (HPA: 300).
    #[serde(default = "default_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
    /// How often the signals are read and a decision is made (HPA: 15).
    #[serde(default = "default_interval")]
    #[schemars(range(min = 1, max = 600))]
    pub interval_seconds: i32,
    /// Leadership moves that even out broker load.
    #[serde(default)]
    pub balancer: BalancerSpec,
}

/// Moves partition leadership (metadata only, no data copied) until broker load —
/// produce bytes per second, not partition counts — is within tolerance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalancerSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The busiest broker may carry this many percent more than the mean.
    #[serde(default = "default_tolerance")]
    #[schemars(range(min = 1, max = 1000))]
    pub tolerance_percent: i32,
    /// Most partition moves in flight at once.
    #[serde(default = "default_max_moves")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent_moves: i32,
}

impl Default for BalancerSpec {
    fn default() -> Self {
        BalancerSpec {
            enabled: true,
            tolerance_percent: default_tolerance(),
            max_concurrent_moves: default_max_moves(),
        }
    }
}

fn default_target_bytes() -> i64 {
    50 * 1024 * 1024
}
fn default_lag_threshold() -> i64 {
    100_000
}
fn default_true() -> bool {
    true
}
fn default_tolerance() -> i32 {
    10
}
fn default_scale_up_brokers() -> i32 {
    4
}
fn default_scale_up_percent() -> i32 {
    100
}
fn default_stabilization() -> i32 {
    300
}
fn default_interval() -> i32 {
    15
}
fn default_max_moves() -> i32 {
    8
}

/// The brokers' listeners.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.kafka.port != self.metrics.port && self.control.port != self.kafka.port && self.control.port != self.metrics.port").message("the kafka, control and metrics listeners need different ports"))]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    /// The Kafka protocol listener clients use.
    #[serde(default = "default_kafka_listener")]
    pub kafka: KafkaListenerSpec,
    /// `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "default_metrics_listener")]
    pub metrics: ListenerSpec,
    /// The operator's own Kafka listener, opened only when `kafka.authentication` is
    /// set: SASL (SCRAM-SHA-512) as the operator's generated user, over TLS when
    /// `kafka.tls` is set. Reachable from the operator only.
    #[serde(default = "default_control_listener")]
    pub control: ControlListenerSpec,
}

impl Default for ListenersSpec {
    fn default() -> Self {
        ListenersSpec {
            kafka: default_kafka_listener(),
            metrics: default_metrics_listener(),
            control: default_control_listener(),
        }
    }
}

fn default_kafka_listener() -> KafkaListenerSpec {
    KafkaListenerSpec {
        port: 9092,
        allow_from: Vec::new(),
        tls: None,
        authentication: None,
    }
}
fn default_metrics_listener() -> ListenerSpec {
    ListenerSpec {
        port: 9644,
        allow_from: Vec::new(),
    }
}
fn default_control_listener() -> ControlListenerSpec {
    ControlListenerSpec { port: 9093 }
}

/// One listener: its port and the NetworkPolicy peers allowed to reach it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Container and Service port.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
    /// Who may connect (NetworkPolicy `from` peers). Empty: everyone. The operator is
    /// always allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<NetworkPolicyPeer>,
}

/// The client listener: a port, who may reach it, and how it is secured. Neither `tls`
/// nor `authentication`: PLAINTEXT with no ACLs, the local default.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.authentication) || self.authentication.type != 'tls' || has(self.tls)").message("authentication type tls needs listeners.kafka.tls: client certificates are checked in the TLS handshake"))]
#[serde(rename_all = "camelCase")]
pub struct KafkaListenerSpec {
    /// Container and Service port.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
    /// Who may connect (NetworkPolicy `from` peers). Empty: everyone. The operator is
    /// always allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<NetworkPolicyPeer>,
    /// TLS on the listener, with the certificate of a Secret. A renewed certificate is
    /// picked up by the running brokers (no restart, no dropped connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// How clients prove who they are. Set: the brokers check every request against
    /// ACLs (Feeds' `spec.access` and the ones made by hand) and only
    /// `authorization.superUsers` and the operator bypass them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,
}

impl KafkaListenerSpec {
    /// Whether clients authenticate (and so the brokers enforce ACLs).
    pub fn is_secured(&self) -> bool {
        self.authentication.is_some()
    }
}

/// The listener's certificate: a Secret, or one cert-manager issues.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.issuerRef)").message("tls takes exactly one of secretName or issuerRef"))]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// A Secret in the cluster's namespace with `tls.crt` (the chain), `tls.key` and
    /// `ca.crt` (the CA clients verify it with, and that signs client certificates with
    /// `authentication.type: tls`), as cert-manager and `kubectl create secret tls`
    /// write them. The certificate names the bootstrap Service and
    /// `*.<cluster>-brokers.<namespace>.svc[.<domain>]` (each broker's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// A cert-manager Issuer or ClusterIssuer: the operator makes a Certificate
    /// `<cluster>-kafka-tls` naming the bootstrap Service and every broker, and the
    /// brokers use the Secret cert-manager writes (and renews) for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
}

/// A cert-manager issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (in the cluster's namespace) or `ClusterIssuer`.
    #[serde(default = "default_issuer_kind")]
    pub kind: IssuerKind,
    /// The issuer's API group (external issuers have their own).
    #[serde(default = "default_issuer_group")]
    #[schemars(length(min = 1, max = 253))]
    pub group: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IssuerKind {
    Issuer,
    ClusterIssuer,
}

fn default_issuer_kind() -> IssuerKind {
    IssuerKind::Issuer
}
fn default_issuer_group() -> String {
    "cert-manager.io".into()
}

/// The client authentication of the kafka listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerAuthentication {
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
}

/// How clients authenticate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthenticationType {
    /// SASL SCRAM-SHA-512: users with passwords (Feeds' `access` with
    /// `credentials: scram` get a generated one in a Secret).
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// TLS client certificates signed by the `ca.crt` of `tls.secretName`; the principal
    /// is the certificate's subject (`User:CN=…,O=…`). A client without one is
    /// `User:ANONYMOUS`, which no ACL names.
    #[serde(rename = "tls")]
    Tls,
}

/// The operator's listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlListenerSpec {
    /// Container and Service port.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
}

/// Who may do what on a secured cluster, beyond the ACLs of Feeds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// Principals allowed everything (Kafka's `super.users`), e.g. `User:admin`. The
    /// operator's own user is always one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(regex(pattern = r"^User:[^;\s]{1,256}$")))]
    pub super_users: Vec<String>,
}

/// Observed state, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityLakeClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, and kstatus' `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Broker pods that exist (`scale` subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Broker pods that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the broker pods (`scale` subresource, for autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// `host:port` Kafka clients bootstrap from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// The `--storage` URL the brokers use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// Acknowledged produce bytes per second, all brokers (from their `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produce_bytes_per_second: Option<i64>,
    /// Fetched bytes per second, all brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_bytes_per_second: Option<i64>,
    /// Both rates for people, e.g. `1.2MiB/s in, 3.4MiB/s out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<String>,
    /// Largest lag of any consumer group on any topic, in records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consumer_lag: Option<i64>,
    /// The last change of `spec.replicas` the operator carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_event: Option<ScaleEvent>,
    /// What the `aws` provider provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsStatus>,
    /// The autoscaler's last decision and the balancer's work (with `spec.autoscaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingStatus>,
}

/// What the autoscaler decided and the balancer did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingStatus {
    /// Brokers the autoscaler wants now (after step limits and stabilisation).
    pub desired_replicas: i32,
    /// Its recommendation before step limits and stabilisation.
    pub recommended_replicas: i32,
    /// The signal with the largest recommendation: Throughput, Lag, Cpu or Minimum.
    pub signal: String,
    /// Why `desiredReplicas` differs from the recommendation, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<String>,
    /// `Stable`, `ScalingOut`, `Draining` (brokers to be removed hand their partitions
    /// over first) or `Balancing`.
    pub phase: String,
    /// Brokers (node ids) the operator is draining before a scale-in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining_brokers: Vec<i32>,
    /// Partition moves in flight.
    #[serde(default)]
    pub moves_in_progress: i32,
    /// The balancer's last moves, `topic-partition: from→to`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_moves: Vec<String>,
    /// Produce bytes per second each broker leads, by node id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_load: BTreeMap<String, i64>,
    /// Observed signals of the decision, e.g. `throughput 12MiB/s, lag 3400, cpu 41%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<String>,
    /// When the decision was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision_time: Option<Time>,
}

/// ARNs and ids of the AWS resources of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsStatus {
    /// `arn:aws:s3:::<bucket>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_arn: Option<String>,
    /// True when the operator manages the bucket's settings (`createBucket`).
    #[serde(default)]
    pub bucket_managed: bool,
    /// The brokers' IAM role (the ServiceAccount's `eks.amazonaws.com/role-arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Name of the role's inline policy (inline policies have no ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_policy_name: Option<String>,
    /// Id of the S3 VPC endpoint (`vpce-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_id: Option<String>,
    /// Glue databases of the Feeds' tables (with `lake.catalog.uri: glue`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub glue_databases: Vec<GlueDatabaseStatus>,
    /// AWS calls of the last reconcile that changed something, e.g. `s3:PutBucketEncryption`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_changes: Vec<String>,
}

/// A Glue database the brokers' role may use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlueDatabaseStatus {
    pub name: String,
    /// `arn:aws:glue:<region>:<account>:database/<name>`.
    pub arn: String,
    /// True when the operator created it (it carries the `sluice.dev/cluster`
    /// parameter); false for a database that was there already, which it never changes.
    #[serde(default)]
    pub managed: bool,
}

/// A change of the broker count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub time: Time,
    pub from_replicas: i32,
    pub to_replicas: i32,
}
