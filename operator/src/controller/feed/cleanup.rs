//! A Feed's deletion: its ACLs and credentials go with it whatever its deletionPolicy
//! (the topic may stay; who may use it is the next Feed's to declare); `Retain` keeps the
//! topics, `Delete` deletes the topic and the dead-letter topic unless another Feed
//! manages them or the cluster is gone.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::info;

use super::plan::earlier_claimant;
use super::{access, peers};
use crate::controller::cluster_client::{cluster_client, ClusterClient};
use crate::controller::{object_key, Context};
use crate::crd::{DeletionPolicy, Feed, SecurityLakeCluster};
use crate::error::KubeContext;
use crate::kafka::{AdminClient, AdminError};
use crate::{Error, Result};

/// The Feed is being deleted (the finalizer's cleanup arm).
pub(super) async fn cleanup(
    feed: &Feed,
    api: &Api<Feed>,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    ctx.forget(&object_key(feed));
    remove_access(feed, api, namespace, ctx).await?;
    let mut topics = vec![feed.topic_name()];
    topics.extend(feed.dead_letter_topic());
    let cluster_name = &feed.spec.cluster_ref.name;
    if feed.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            feed,
            EventType::Normal,
            "TopicRetained",
            format!("deletionPolicy Retain: topics {topics:?} are kept on cluster {cluster_name}"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let feeds = api
        .list(&ListParams::default())
        .await
        .kube("list", "Feed", namespace)?;
    if let Some(other) = earlier_claimant(&feeds.items, feed) {
        ctx.event(
            feed,
            EventType::Normal,
            "TopicRetained",
            format!("Feed {other} manages these topics: not deleted"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let Some(cluster) = live_cluster(feed, namespace, ctx).await? else {
        ctx.event(
            feed,
            EventType::Warning,
            "TopicNotDeleted",
            format!(
                "SecurityLakeCluster {cluster_name} is gone: topics {topics:?} were not deleted"
            ),
        )
        .await;
        return Ok(Action::await_change());
    };
    let admin_error = |source| Error::Admin {
        cluster: cluster_name.clone(),
        source,
    };
    let client = cluster_client(ctx, &cluster)
        .await?
        .map_err(|health| admin_error(AdminError::Metadata(health.message().to_string())))?;
    let mut admin = connect(ctx, cluster_name, &client).await?;
    admin.delete_topics(&topics).await.map_err(admin_error)?;
    info!(?topics, "topics deleted");
    ctx.event(
        feed,
        EventType::Normal,
        "TopicDeleted",
        format!("deletionPolicy Delete: topics {topics:?} deleted from cluster {cluster_name}"),
    )
    .await;
    Ok(Action::await_change())
}

/// An admin client through `client`; an error when the cluster does not answer, so that
/// the finalizer retries.
async fn connect(ctx: &Context, cluster: &str, client: &ClusterClient) -> Result<AdminClient> {
    AdminClient::connect(&client.bootstrap, ctx.config.io_timeout, &client.security)
        .await
        .map_err(|source| Error::Admin {
            cluster: cluster.to_string(),
            source,
        })
}

/// The Feed's cluster, unless it is gone or being deleted.
async fn live_cluster(
    feed: &Feed,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<SecurityLakeCluster>> {
    let clusters: Api<SecurityLakeCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let name = &feed.spec.cluster_ref.name;
    let cluster = clusters
        .get_opt(name)
        .await
        .kube("get", "SecurityLakeCluster", name)?;
    Ok(cluster.filter(|c| c.metadata.deletion_timestamp.is_none()))
}

/// Removes what the operator made for `feed`'s access (nothing when it made nothing,
/// the cluster is gone, or its credentials cannot be read).
async fn remove_access(feed: &Feed, api: &Api<Feed>, namespace: &str, ctx: &Context) -> Result<()> {
    if feed.status.as_ref().is_none_or(|s| s.access.is_none()) {
        return Ok(());
    }
    let Some(cluster) = live_cluster(feed, namespace, ctx).await? else {
        return Ok(());
    };
    let Ok(client) = cluster_client(ctx, &cluster).await? else {
        return Ok(());
    };
    let feeds = api
        .list(&ListParams::default())
        .await
        .kube("list", "Feed", namespace)?;
    let mut undeclared = feed.clone();
    undeclared.spec.access = None;
    let mut admin = connect(ctx, &feed.spec.cluster_ref.name, &client).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &client.settings.namespace);
    let report = access::sync(
        &mut admin,
        &secrets,
        &undeclared,
        &client.settings,
        &peers(&feeds.items, feed),
    )
    .await
    .map_err(|e| Error::Access {
        feed: object_key(feed),
        reason: e.to_string(),
    })?;
    if !report.done.is_empty() {
        ctx.event(
            feed,
            EventType::Normal,
            "AccessRemoved",
            report.done.join("; "),
        )
        .await;
    }
    Ok(())
}
