//! The `SecurityLakeCluster` reconciler: validate → dereference → provision → observe →
//! autoscale ([`apply_autoscale`]) → build → apply → status, inside the shared reconcile
//! wrapper ([`super::reconcile`]); cleanup decides the fate of a provisioned bucket.

pub mod apply_autoscale;
pub mod build;
mod observe;
pub mod secrets;
pub mod status;
pub mod validate;

pub use crate::autoscale::{FleetNode, FleetView};
pub use observe::{
    broker_http_addresses, max_consumer_lag, monotonic_ms, BrokerObserver, ClusterObserver,
    Observation, ObserveTarget,
};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::Event;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, instrument, warn};

use self::build::{ClusterModel, ClusterObjects};
use self::status::{cluster_status, scale_event, workload_health, Figures};
use super::cluster_client::{cluster_client, ClusterClient};
use super::reconcile::Reconciled;
use super::{apply_status, object_key, Context, Samples, MANAGER};
use crate::crd::cluster::Provider;
use crate::crd::conditions::{self, Health};
use crate::crd::{DeletionPolicy, SecurityLakeCluster};
use crate::error::KubeContext;
use crate::metrics::counter_rate;
use crate::provision::{CloudRequest, Provisioned};
use crate::{Error, Result};

/// Finalizer that lets the operator decide about the provisioned bucket before the
/// cluster goes away.
pub const FINALIZER: &str = "sluice.dev/cluster-cleanup";
const CONTROLLER: &str = "cluster";
const KIND: &str = "SecurityLakeCluster";

/// One reconcile of one cluster ([`super::reconcile`]).
#[instrument(skip_all, fields(cluster = %object_key(cluster.as_ref())))]
pub async fn reconcile(cluster: Arc<SecurityLakeCluster>, ctx: Arc<Context>) -> Result<Action> {
    super::reconcile::reconcile(cluster, ctx).await
}

impl Reconciled for SecurityLakeCluster {
    const CONTROLLER: &'static str = CONTROLLER;
    const FINALIZER: &'static str = FINALIZER;

    async fn on_event<'a>(
        event: Event<Self>,
        api: &'a Api<Self>,
        _namespace: &'a str,
        ctx: &'a Context,
    ) -> Result<Action> {
        match event {
            Event::Apply(cluster) => apply(&cluster, api, ctx).await,
            Event::Cleanup(cluster) => cleanup(&cluster, ctx).await,
        }
    }
}

async fn apply(
    cluster: &SecurityLakeCluster,
    api: &Api<SecurityLakeCluster>,
    ctx: &Context,
) -> Result<Action> {
    let key = object_key(cluster);
    let mut model = ClusterModel::new(cluster, &ctx.config).ok_or_else(|| {
        Error::MissingField(format!("SecurityLakeCluster {key} has no namespace"))
    })?;
    let now = Time(Timestamp::now());
    let previous = cluster.status.as_ref();
    let generation = cluster.metadata.generation;

    // Validate: an invalid spec stalls until the spec changes; nothing is applied.
    if let Err(problems) = validate::validate(&model.name, &cluster.spec) {
        let health = Health::stalled("InvalidSpec", problems.join("; "));
        stall(ctx, api, &model, &health, &now).await?;
        return Ok(Action::await_change());
    }

    // Dereference: the workload as it is now (for scale events) and whether the
    // Prometheus Operator is installed.
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &model.namespace);
    let before = statefulsets.get_opt(&model.broker_name()).await.kube(
        "get",
        "StatefulSet",
        &model.broker_name(),
    )?;
    let monitor_crd = service_monitor_crd_installed(&ctx.client).await?;

    // Cloud resources (bucket, IAM role, private endpoint) before the brokers need them.
    let cloud = match provision(ctx, cluster).await {
        Ok(cloud) => cloud,
        Err(failure) => {
            let (health, result) = failure;
            announce(ctx, cluster, &health).await;
            let mut status = cluster_status(
                generation,
                &health,
                before.as_ref(),
                model.selector_string(),
                model.bootstrap_address(),
                model.storage_url(),
                &Figures::default(),
                None,
                previous,
                &now,
            );
            status.aws = previous.and_then(|p| p.aws.clone());
            apply_status(api, cluster, KIND, &status).await?;
            return result;
        }
    };
    model.service_account_annotations = cloud.service_account_annotations.clone();

    // The Secrets of a secured cluster: a missing or broken TLS Secret stalls before any
    // broker mounts it (Secrets are not watched: look again in a minute).
    match secrets::dereference(&ctx.client, &model).await? {
        Ok(credentials) => model.credentials = credentials,
        Err(health) => {
            stall(ctx, api, &model, &health, &now).await?;
            let wait = if health.is_stalled() { 60 } else { 15 };
            return Ok(Action::requeue(Duration::from_secs(wait)));
        }
    }

    // Observe the brokers as they run now; with autoscaling, decide how many to run.
    let current = before
        .as_ref()
        .and_then(|sts| sts.spec.as_ref()?.replicas)
        .unwrap_or(cluster.spec.replicas);
    let ready_now = before
        .as_ref()
        .and_then(|sts| sts.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    let autoscaling_spec = cluster.spec.autoscaling.as_ref();
    // How the operator reaches the brokers, once for this reconcile: observing and
    // balancing both use it. A secured cluster whose Secrets cannot be read yet is
    // observed without Kafka.
    let kafka = cluster_client(ctx, cluster).await.ok().and_then(Result::ok);
    let observation = observe(
        ctx,
        &model,
        kafka.as_ref(),
        (current, ready_now),
        autoscaling_spec.is_some(),
    )
    .await;
    let figures = figures(ctx, &key, &observation);
    let autoscaled = match autoscaling_spec {
        Some(spec) => Some(
            apply_autoscale::autoscale(
                ctx,
                cluster,
                &model,
                spec,
                (current, ready_now),
                (&observation, kafka.as_ref()),
                &now,
            )
            .await,
        ),
        None => None,
    };
    if let Some(outcome) = &autoscaled {
        model.replicas = outcome.replicas;
    }

    // Build (pure) and apply: configuration and addressing before the workload.
    let objects = build::build(&model, monitor_crd);
    let sts = apply_objects(&ctx.client, &model, objects).await?;

    // Status.
    let scale = scale_event(before.as_ref(), model.replicas, &now);
    if let Some(event) = &scale {
        info!(from = event.from_replicas, to = event.to_replicas, "scaled");
        ctx.event(
            cluster,
            EventType::Normal,
            "Scaled",
            format!("brokers {} → {}", event.from_replicas, event.to_replicas),
        )
        .await;
    }
    let health = workload_health(model.replicas, &sts, previous, &now);
    announce(ctx, cluster, &health).await;
    let mut status = cluster_status(
        generation,
        &health,
        Some(&sts),
        model.selector_string(),
        model.bootstrap_address(),
        model.storage_url(),
        &figures,
        ctx.scale_event(&key, scale),
        previous,
        &now,
    );
    status.autoscaling = autoscaled.map(|o| o.status);
    status.aws = cloud.aws.map(|mut aws| {
        aws.last_changes = if cloud.changes.is_empty() {
            previous
                .and_then(|p| p.aws.as_ref())
                .map(|a| a.last_changes.clone())
                .unwrap_or_default()
        } else {
            cloud.changes.clone()
        };
        aws
    });
    apply_status(api, cluster, KIND, &status).await?;
    let mut next = if health.is_ready() {
        ctx.config.refresh_interval
    } else {
        Duration::from_secs(10)
    };
    if let Some(spec) = autoscaling_spec {
        next = next.min(Duration::from_secs(spec.interval_seconds.max(1) as u64));
    }
    Ok(Action::requeue(next))
}

/// Reports a cluster that cannot progress (until a person acts, or cert-manager issues
/// its certificate); nothing but the Certificate is applied.
async fn stall(
    ctx: &Context,
    api: &Api<SecurityLakeCluster>,
    model: &ClusterModel<'_>,
    health: &Health,
    now: &Time,
) -> Result<()> {
    let cluster = model.cluster;
    announce(ctx, cluster, health).await;
    let status = cluster_status(
        cluster.metadata.generation,
        health,
        None,
        model.selector_string(),
        model.bootstrap_address(),
        model.storage_url(),
        &Figures::default(),
        None,
        cluster.status.as_ref(),
        now,
    );
    apply_status(api, cluster, KIND, &status).await
}

/// Runs the cluster's cloud provider. On failure: the health to report and what the
/// reconcile returns (an error to back off and retry, or a long wait when a person must
/// act first).
async fn provision(
    ctx: &Context,
    cluster: &SecurityLakeCluster,
) -> std::result::Result<Provisioned, (Health, Result<Action>)> {
    let key = object_key(cluster);
    let Some(request) = CloudRequest::from_cluster(cluster) else {
        return Ok(Provisioned::default());
    };
    match ctx
        .providers
        .get(cluster.spec.provider)
        .ensure(&request)
        .await
    {
        Ok(cloud) => {
            ctx.event_list(cluster, "CloudResourcesChanged", &cloud.changes)
                .await;
            Ok(cloud)
        }
        Err(e) if e.needs_a_person() => {
            warn!(error = %e, "cloud provisioning needs a person");
            Err((
                Health::stalled("ProvisioningConflict", e.to_string()),
                Ok(Action::requeue(Duration::from_secs(300))),
            ))
        }
        Err(e) => Err((
            Health::degraded("ProvisioningFailed", e.to_string()),
            Err(Error::Provision {
                cluster: key,
                source: e,
            }),
        )),
    }
}

/// True when the ServiceMonitor kind is served (`/apis/monitoring.coreos.com/v1`).
async fn service_monitor_crd_installed(client: &Client) -> Result<bool> {
    match client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await
    {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "servicemonitors")),
        // A real API server answers an unserved group/version with a plain-text
        // "404 page not found", which kube reports as an unparsed 404 (no reason).
        Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 404 => Ok(false),
        Err(source) => Err(Error::Kube {
            action: "discover",
            kind: "ServiceMonitor",
            name: "monitoring.coreos.com/v1".into(),
            source,
        }),
    }
}

/// Server-side applies every object (forcing our fields back when someone changed them)
/// and returns the StatefulSet as the API server stored it.
async fn apply_objects(
    client: &Client,
    model: &ClusterModel<'_>,
    objects: ClusterObjects,
) -> Result<StatefulSet> {
    let ns = &model.namespace;
    ssa::<ServiceAccount>(client, ns, &objects.service_account).await?;
    if let Some(secret) = &objects.operator_credentials {
        ssa::<Secret>(client, ns, secret).await?;
    }
    ssa::<ConfigMap>(client, ns, &objects.config_map).await?;
    ssa::<Service>(client, ns, &objects.headless_service).await?;
    ssa::<Service>(client, ns, &objects.bootstrap_service).await?;
    if let Some(claim) = &objects.bucket_claim {
        ssa::<PersistentVolumeClaim>(client, ns, claim).await?;
    }
    let sts = ssa::<StatefulSet>(client, ns, &objects.stateful_set).await?;
    ssa::<PodDisruptionBudget>(client, ns, &objects.pod_disruption_budget).await?;
    ssa::<NetworkPolicy>(client, ns, &objects.network_policy).await?;
    if let Some(monitor) = &objects.service_monitor {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &build::service_monitor_resource());
        let name = monitor.name_any();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(monitor),
        )
        .await
        .kube("apply", "ServiceMonitor", &name)?;
    }
    Ok(sts)
}

async fn ssa<K>(client: &Client, namespace: &str, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj.name_any();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .kube("apply", short_kind::<K>(), &name)
}

fn short_kind<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "ServiceAccount" => "ServiceAccount",
        "ConfigMap" => "ConfigMap",
        "Service" => "Service",
        "PersistentVolumeClaim" => "PersistentVolumeClaim",
        "StatefulSet" => "StatefulSet",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        "NetworkPolicy" => "NetworkPolicy",
        _ => "object",
    }
}

/// Reads the running brokers (nothing while none is ready).
async fn observe(
    ctx: &Context,
    model: &ClusterModel<'_>,
    kafka: Option<&ClusterClient>,
    (replicas, ready): (i32, i32),
    autoscaling: bool,
) -> Observation {
    if ready == 0 {
        return Observation::default();
    }
    let target = ObserveTarget {
        brokers: broker_http_addresses(ctx, model, replicas).await,
        bootstrap: kafka.as_ref().map(|c| c.bootstrap.clone()),
        security: kafka.map(|c| c.security.clone()).unwrap_or_default(),
        autoscaling,
    };
    let observation = ctx.observer.observe(&target).await;
    for problem in &observation.problems {
        warn!(problem = %problem, "observing the cluster");
    }
    if let Some(rejections) = &observation.rejections {
        ctx.record_rejections(&object_key(model.cluster), rejections.clone());
    }
    if let Some(tables) = &observation.tables {
        ctx.record_tables(&object_key(model.cluster), tables.clone());
    }
    observation
}

/// Throughput (from two counter samples, this one and the previous reconcile's) and lag.
fn figures(ctx: &Context, key: &str, observation: &Observation) -> Figures {
    let previous = ctx.swap_samples(
        key,
        Samples {
            produce: observation.produce_bytes.clone(),
            fetch: observation.fetch_bytes.clone(),
        },
    );
    let rate = |before: &Option<_>, now: &Option<_>| match (before, now) {
        (Some(b), Some(n)) => counter_rate(b, n),
        _ => None,
    };
    Figures {
        produce_bytes_per_second: rate(&previous.produce, &observation.produce_bytes),
        fetch_bytes_per_second: rate(&previous.fetch, &observation.fetch_bytes),
        max_consumer_lag: observation.max_consumer_lag,
    }
}

/// An Event when the health's reason changed since the last status: transitions are
/// announced once, not on every refresh.
async fn announce(ctx: &Context, cluster: &SecurityLakeCluster, health: &Health) {
    let before = cluster
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::READY))
        .map(|c| c.reason.clone());
    if before.as_deref() == Some(health.reason()) {
        return;
    }
    let type_ = match health {
        Health::Ready { .. } | Health::Progressing { .. } => EventType::Normal,
        Health::Degraded { .. } | Health::Stalled { .. } => EventType::Warning,
    };
    ctx.event(
        cluster,
        type_,
        health.reason(),
        health.message().to_string(),
    )
    .await;
}

/// The cluster is being deleted. Owned objects go with it (owner references); the
/// provisioned bucket only under `deletionPolicy: Delete`.
async fn cleanup(cluster: &SecurityLakeCluster, ctx: &Context) -> Result<Action> {
    let key = object_key(cluster);
    ctx.forget(&key);
    let Some(model) = ClusterModel::new(cluster, &ctx.config) else {
        return Ok(Action::await_change());
    };
    if cluster.spec.provider != Provider::Local {
        return release_cloud(cluster, ctx, &model).await;
    }
    let storage = &cluster.spec.storage;
    if storage.bucket.is_none() {
        return Ok(Action::await_change());
    }
    let claim = model.bucket_claim_name();
    match storage.deletion_policy {
        DeletionPolicy::Retain => {
            ctx.event(
                cluster,
                EventType::Normal,
                "BucketRetained",
                format!(
                    "deletionPolicy Retain: PersistentVolumeClaim {claim} and its data are kept"
                ),
            )
            .await;
        }
        DeletionPolicy::Delete => {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &model.namespace);
            match claims.delete(&claim, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(source) => {
                    return Err(Error::Kube {
                        action: "delete",
                        kind: "PersistentVolumeClaim",
                        name: claim,
                        source,
                    })
                }
            }
            ctx.event(
                cluster,
                EventType::Normal,
                "BucketDeleted",
                format!("deletionPolicy Delete: PersistentVolumeClaim {claim} deleted"),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}

/// Cleanup of a cloud-provisioned cluster: first the brokers go (the StatefulSet is
/// deleted in the foreground, so it disappears only after its pods), then the provider
/// removes the endpoint, the role and, under `deletionPolicy: Delete`, the bucket.
async fn release_cloud(
    cluster: &SecurityLakeCluster,
    ctx: &Context,
    model: &ClusterModel<'_>,
) -> Result<Action> {
    let key = object_key(cluster);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &model.namespace);
    let name = model.broker_name();
    if let Some(sts) = statefulsets
        .get_opt(&name)
        .await
        .kube("get", "StatefulSet", &name)?
    {
        if sts.metadata.deletion_timestamp.is_none() {
            match statefulsets
                .delete(&name, &DeleteParams::foreground())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(source) => {
                    return Err(Error::Kube {
                        action: "delete",
                        kind: "StatefulSet",
                        name,
                        source,
                    })
                }
            }
        }
        return Err(Error::WaitingForBrokers(key));
    }
    let Some(request) = CloudRequest::from_cluster(cluster) else {
        return Ok(Action::await_change());
    };
    let released = match ctx
        .providers
        .get(cluster.spec.provider)
        .release(&request)
        .await
    {
        Ok(released) => released,
        // Retrying cannot help (a bucket that is not this cluster's, a spec that names no
        // bucket): never delete it, and do not hold the cluster's deletion hostage.
        Err(e) if e.needs_a_person() => {
            warn!(error = %e, "cloud resources left in place");
            ctx.event(
                cluster,
                EventType::Warning,
                "CloudResourcesNotDeleted",
                e.to_string(),
            )
            .await;
            return Ok(Action::await_change());
        }
        Err(source) => {
            return Err(Error::Provision {
                cluster: key,
                source,
            })
        }
    };
    ctx.event_list(cluster, "CloudResourcesDeleted", &released.deleted)
        .await;
    ctx.event_list(cluster, "BucketRetained", &released.retained)
        .await;
    Ok(Action::await_change())
}
