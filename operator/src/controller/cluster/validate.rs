//! Checks of a cluster's spec the operator makes itself, with no client. The CRD's schema
//! and CEL rules refuse most of these at the API server already; an API server without
//! CEL, or an object stored before a rule existed, still gets a clear condition here.

use crate::crd::cluster::SecurityLakeClusterSpec;
use crate::crd::DeletionPolicy;

/// Longest cluster name: `<name>-broker-<ordinal>` pods and their
/// `controller-revision-hash` label must stay within 63 characters.
pub const MAX_CLUSTER_NAME: usize = 45;

/// Every problem with the spec, for a condition message.
pub fn validate(name: &str, spec: &SecurityLakeClusterSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if name.len() > MAX_CLUSTER_NAME {
        problems.push(format!(
            "the cluster name is {} characters; at most {MAX_CLUSTER_NAME} fit the broker pod names",
            name.len()
        ));
    }
    if spec.min_replicas > spec.max_replicas {
        problems.push(format!(
            "minReplicas {} exceeds maxReplicas {}",
            spec.min_replicas, spec.max_replicas
        ));
    }
    if spec.replicas < spec.min_replicas || spec.replicas > spec.max_replicas {
        problems.push(format!(
            "replicas {} is outside {}..={}",
            spec.replicas, spec.min_replicas, spec.max_replicas
        ));
    }
    let storage = &spec.storage;
    match (&storage.url, &storage.bucket) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push("set exactly one of storage.url or storage.bucket".into())
        }
        (Some(url), None) if !url.starts_with("s3://") => {
            problems.push(format!("storage.url {url:?} is not an s3:// URL"))
        }
        _ => {}
    }
    if storage.bucket.is_some()
        && (storage.region.is_some()
            || storage.endpoint.is_some()
            || storage.credentials_secret.is_some()
            || storage.encryption_key.is_some())
    {
        problems.push(
            "region, endpoint, credentialsSecret and encryptionKey apply to an s3:// url only"
                .into(),
        );
    }
    if storage.deletion_policy == DeletionPolicy::Delete && storage.bucket.is_none() {
        problems.push("deletionPolicy Delete applies to a provisioned bucket only; an existing url is never deleted".into());
    }
    if spec.listeners.kafka.port == spec.listeners.metrics.port {
        problems.push(format!(
            "the kafka and metrics listeners share port {}",
            spec.listeners.kafka.port
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
