//! Cloud provisioning: what a cluster needs outside Kubernetes (a bucket, an identity for
//! the brokers, a private path to the bucket), behind one interface with one
//! implementation per `spec.provider`.
//!
//! - [`local`]: no cloud calls at all (an existing bucket URL, or a claim the cluster
//!   reconciler makes as a Kubernetes object).
//! - [`aws`]: an S3 bucket, an IAM role for the broker ServiceAccount (IRSA) and an S3
//!   VPC endpoint, through the official AWS SDK: observe → plan (pure) → apply.
//!
//! The cluster reconciler calls [`CloudProvider::ensure`] before it builds the brokers'
//! objects (the ServiceAccount carries the role), and [`CloudProvider::release`] from its
//! finalizer once the brokers are gone.

pub mod aws;
pub mod local;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use kube::ResourceExt;

use crate::crd::cluster::{AwsSpec, AwsStatus, CatalogSpec, Provider};
use crate::crd::{DeletionPolicy, SecurityLakeCluster};

/// Creates and removes a cluster's cloud resources. Every call is idempotent: it observes
/// what exists, changes only what differs from the spec, and after a failure the next
/// call resumes where the previous one stopped.
pub trait CloudProvider: Send + Sync {
    /// Makes the cloud resources match the spec (creating, correcting drift).
    fn ensure<'a>(
        &'a self,
        req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Provisioned, ProvisionError>>;
    /// Removes what `ensure` created, as `deletionPolicy` says. Called only when no broker
    /// runs any more.
    fn release<'a>(
        &'a self,
        req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Released, ProvisionError>>;
}

/// What a provider needs to know about one cluster: a pure function of the object.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudRequest {
    pub provider: Provider,
    pub namespace: String,
    pub name: String,
    /// The broker ServiceAccount (`<cluster>-broker`), for the role's trust policy.
    pub service_account: String,
    /// Bucket and prefix (no leading or trailing `/`; empty: the whole bucket) of
    /// `storage.url`, when it is an `s3://` URL.
    pub bucket: Option<String>,
    pub prefix: String,
    pub region: Option<String>,
    pub kms_key_arn: Option<String>,
    pub deletion_policy: DeletionPolicy,
    pub aws: Option<AwsSpec>,
    /// `lake.catalog`, when the cluster has one.
    pub catalog: Option<CatalogSpec>,
}

impl CloudRequest {
    /// `None` for an object without a namespace (never true for a stored one).
    pub fn from_cluster(cluster: &SecurityLakeCluster) -> Option<CloudRequest> {
        let storage = &cluster.spec.storage;
        let (bucket, prefix) = match storage.url.as_deref().and_then(parse_s3_url) {
            Some((b, p)) => (Some(b), p),
            None => (None, String::new()),
        };
        Some(CloudRequest {
            provider: cluster.spec.provider,
            namespace: cluster.namespace()?,
            name: cluster.name_any(),
            service_account: format!("{}-broker", cluster.name_any()),
            bucket,
            prefix,
            region: storage.region.clone(),
            kms_key_arn: storage.encryption_key.clone(),
            deletion_policy: storage.deletion_policy,
            aws: cluster.spec.aws.clone(),
            catalog: cluster.spec.lake.as_ref().map(|l| l.catalog.clone()),
        })
    }

    /// `<namespace>/<name>`: the value of the `sluice.dev/cluster` tag.
    pub fn cluster_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `s3://bucket/a/b/` → (`bucket`, `a/b`).
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// What the rest of the reconcile needs from the provider.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provisioned {
    /// Annotations of the broker ServiceAccount (`eks.amazonaws.com/role-arn`).
    pub service_account_annotations: BTreeMap<String, String>,
    /// For `status.aws`.
    pub aws: Option<AwsStatus>,
    /// The changing calls this `ensure` made (`service:Operation resource`), empty when
    /// everything already matched.
    pub changes: Vec<String>,
}

/// What `release` did, for Events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Released {
    /// Resources deleted (`kind name`).
    pub deleted: Vec<String>,
    /// Resources kept on purpose (`kind name`, e.g. a bucket under `Retain`).
    pub retained: Vec<String>,
}

/// A failed provisioning step: which call, on which resource, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProvisionError {
    /// A cloud API call failed.
    #[error("{call} on {resource}: {message}")]
    Call {
        /// `service:Operation`, e.g. `s3:PutBucketEncryption`.
        call: &'static str,
        resource: String,
        message: String,
    },
    /// The cloud holds something the operator must not touch (a bucket of another
    /// cluster, a bucket in another region): a person has to decide.
    #[error("{resource}: {message}")]
    Conflict { resource: String, message: String },
    /// The spec lacks what the provider needs (CEL normally refuses it first).
    #[error("{0}")]
    Spec(String),
}

impl ProvisionError {
    /// True when retrying cannot help until someone changes the spec or the cloud.
    pub fn needs_a_person(&self) -> bool {
        matches!(
            self,
            ProvisionError::Conflict { .. } | ProvisionError::Spec(_)
        )
    }
}

/// The provider of each `spec.provider`.
#[derive(Clone)]
pub struct Providers {
    pub local: std::sync::Arc<dyn CloudProvider>,
    pub aws: std::sync::Arc<dyn CloudProvider>,
}

impl Providers {
    pub fn get(&self, provider: Provider) -> &dyn CloudProvider {
        match provider {
            Provider::Local => self.local.as_ref(),
            Provider::Aws => self.aws.as_ref(),
        }
    }
}

impl Providers {
    /// `local`, and `aws` with the operator's own AWS configuration (environment,
    /// IRSA), loaded at its first use; AWS calls are counted in `metrics`.
    pub fn new(metrics: &crate::metrics::Metrics) -> Self {
        Providers {
            local: std::sync::Arc::new(local::LocalProvider),
            aws: std::sync::Arc::new(aws::AwsProvider::from_environment(
                aws::calls::CallLog::with_metric(metrics.cloud_calls.clone()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://lake/prod/a/"),
            Some(("lake".into(), "prod/a".into()))
        );
        assert_eq!(parse_s3_url("s3://lake"), Some(("lake".into(), "".into())));
        assert_eq!(parse_s3_url("s3://lake/"), Some(("lake".into(), "".into())));
        assert_eq!(parse_s3_url("file:///x"), None);
    }
}
