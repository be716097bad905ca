//! The custom resources: types only (group `sluice.dev`, version `v1alpha1`).
//!
//! Every field here has a behaviour in the operator; a field is added only together with
//! the code that honours it. Cross-field rules are CEL (`x-kubernetes-validations`), so the
//! API server refuses bad input before the operator sees it.

pub mod access;
pub mod cluster;
pub mod conditions;
pub mod feed;

pub use cluster::{SecurityLakeCluster, SecurityLakeClusterSpec, SecurityLakeClusterStatus};
pub use feed::{Feed, FeedSpec, FeedStatus};

use kube::CustomResourceExt;

/// API group of every Sluice kind.
pub const GROUP: &str = "sluice.dev";

/// The CRDs as one multi-document YAML stream, as `sluice-operator crd` prints it and as
/// `crds/` and the chart hold it.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in [SecurityLakeCluster::crd(), Feed::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD serializes to YAML"));
    }
    out
}

/// What happens to data the operator created when the object that asked for it is
/// deleted. `Retain` is the default everywhere: security evidence is never deleted by
/// accident.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Keep the data; the operator forgets it.
    #[default]
    Retain,
    /// Delete the data together with the object.
    Delete,
}
