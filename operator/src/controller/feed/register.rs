//! Registering a Feed's inline schema through the registry API of any live broker of its
//! cluster, before the topic configs turn validation on.

use crate::controller::cluster::broker_http_addresses;
use crate::controller::cluster::build::ClusterModel;
use crate::controller::Context;
use crate::crd::conditions::Health;
use crate::crd::{Feed, SecurityLakeCluster};
use crate::registry::RegistryError;

use super::schema::registration;

/// The registered schema's id (`None`: the Feed has no inline schema), or the health to
/// report when it could not be registered: `Stalled/SchemaRejected` when the registry
/// refused it, `Degraded/RegistryUnavailable` when no broker answered.
pub async fn register_schema(
    feed: &Feed,
    cluster: &SecurityLakeCluster,
    ctx: &Context,
) -> Result<Option<i32>, Health> {
    let Some(registration) = registration(feed) else {
        return Ok(None);
    };
    let subject = &registration.subject;
    let model = ClusterModel::new(cluster, &ctx.config)
        .ok_or_else(|| Health::degraded("RegistryUnavailable", "the cluster has no namespace"))?;
    let replicas = cluster
        .status
        .as_ref()
        .map(|s| s.replicas)
        .filter(|r| *r > 0)
        .unwrap_or(cluster.spec.replicas);
    let mut failures = Vec::new();
    for (pod, addr) in broker_http_addresses(ctx, &model, replicas).await {
        match ctx.observer.register_schema(&addr, &registration).await {
            Ok(id) => return Ok(Some(id)),
            Err(e @ RegistryError::Rejected { .. }) => {
                return Err(Health::stalled(
                    "SchemaRejected",
                    format!("schema registry refused the schema of subject {subject}: {e}"),
                ))
            }
            Err(e) => failures.push(format!("{pod}: {e}")),
        }
    }
    Err(Health::degraded(
        "RegistryUnavailable",
        format!(
            "no broker registered the schema of subject {subject}; validation settings are left as they are: {}",
            failures.join("; ")
        ),
    ))
}
