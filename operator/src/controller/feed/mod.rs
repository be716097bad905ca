//! The `Feed` reconciler: dereference (cluster, other feeds) → validate (the replays
//! against the cluster's policy too) → plan (pure) → register the inline schema → topic
//! changes through the Kafka admin protocol → status (with the schema rejections, the
//! table writers and the replays the cluster reconciler scraped).
//! Deletion ([`cleanup`]) honours the Feed's `deletionPolicy`; nothing else ever deletes a
//! topic or a table.

pub mod access;
pub mod alert;
mod cleanup;
mod duration;
pub mod plan;
mod register;
mod rejections;
mod replay;
mod replay_progress;
mod replay_report;
pub mod schema;
pub mod table;
mod table_report;
mod timestamp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kafka_protocol::ResponseError;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::Event;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::{info, instrument, warn};

use self::plan::{
    desired_topics, earlier_claimant, hold_schema_configs, plan, DesiredTopic, ObservedTopic,
    TopicAction,
};
use self::register::register_schema;
use self::rejections::report_rejections;
use self::replay::{judge, replays_configs};
use self::replay_report::report_replays;
use self::table_report::report_table;
use super::cluster::monotonic_ms;
use super::cluster_client::{cluster_client, ClusterClient};
use super::reconcile::Reconciled;
use super::{apply_status, object_key, Context, Samples};
use crate::crd::access::AccessStatus;
use crate::crd::conditions::{self, Health};
use crate::crd::feed::{FeedStatus, GroupLag};
use crate::crd::{Feed, SecurityLakeCluster};
use crate::error::KubeContext;
use crate::kafka::{topic_lag, AdminClient, AdminError};
use crate::metrics::{counter_rate, CounterSample};
use crate::Result;

/// Finalizer that lets the operator apply the Feed's deletionPolicy to its topics.
pub const FINALIZER: &str = "sluice.dev/feed-topics";
const CONTROLLER: &str = "feed";
const KIND: &str = "Feed";
/// Most consumer groups whose lag one reconcile reads.
const MAX_GROUPS: usize = 200;

/// The Feeds that name `cluster`: a change of the cluster wakes them.
pub fn feeds_of_cluster(
    feeds: &[Arc<Feed>],
    cluster: &SecurityLakeCluster,
) -> Vec<ObjectRef<Feed>> {
    feeds
        .iter()
        .filter(|f| {
            f.namespace() == cluster.namespace() && f.spec.cluster_ref.name == cluster.name_any()
        })
        .map(|f| ObjectRef::from_obj(f.as_ref()))
        .collect()
}

/// One reconcile of one Feed ([`super::reconcile`]).
#[instrument(skip_all, fields(feed = %object_key(feed.as_ref())))]
pub async fn reconcile(feed: Arc<Feed>, ctx: Arc<Context>) -> Result<Action> {
    super::reconcile::reconcile(feed, ctx).await
}

impl Reconciled for Feed {
    const CONTROLLER: &'static str = CONTROLLER;
    const FINALIZER: &'static str = FINALIZER;

    async fn on_event<'a>(
        event: Event<Self>,
        api: &'a Api<Self>,
        namespace: &'a str,
        ctx: &'a Context,
    ) -> Result<Action> {
        match event {
            Event::Apply(feed) => apply(&feed, api, namespace, ctx).await,
            Event::Cleanup(feed) => cleanup::cleanup(&feed, api, namespace, ctx).await,
        }
    }
}

/// What one sync of the topics found and did.
#[derive(Debug, Default)]
struct SyncReport {
    topic_id: Option<String>,
    partitions: Option<i32>,
    end_offsets: BTreeMap<i32, i64>,
    dead_letter_records: Option<i64>,
    consumer_lag: Vec<GroupLag>,
    diverged: Vec<String>,
    done: Vec<String>,
}

async fn apply(feed: &Feed, api: &Api<Feed>, namespace: &str, ctx: &Context) -> Result<Action> {
    let now = Time(Timestamp::now());
    let key = object_key(feed);
    let topic = feed.topic_name();
    let base = FeedStatus {
        topic: Some(topic.clone()),
        dead_letter_topic: feed.dead_letter_topic(),
        ..feed.status.clone().unwrap_or_default()
    };

    // Validate (pure).
    let mut desired = match desired_topics(feed) {
        Ok(d) => d,
        Err(problems) => {
            let health = Health::stalled("InvalidSpec", problems.join("; "));
            write(feed, api, ctx, &health, base, &now).await?;
            return Ok(Action::await_change());
        }
    };

    // Dereference: the cluster, and the other Feeds that might claim the same topic.
    let clusters: Api<SecurityLakeCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let cluster_name = &feed.spec.cluster_ref.name;
    let Some(cluster) =
        clusters
            .get_opt(cluster_name)
            .await
            .kube("get", "SecurityLakeCluster", cluster_name)?
    else {
        let health = Health::stalled(
            "ClusterNotFound",
            format!("SecurityLakeCluster {cluster_name} does not exist in namespace {namespace}"),
        );
        write(feed, api, ctx, &health, base, &now).await?;
        // The cluster's creation wakes this Feed (the controller watches clusters).
        return Ok(Action::requeue(Duration::from_secs(300)));
    };
    // The replays under the cluster's policy: only the approved ones reach the brokers.
    let replays = match judge(feed, cluster.spec.replay_policy.as_ref()) {
        Ok(judged) => judged,
        Err(problems) => {
            let health = Health::stalled("InvalidSpec", problems.join("; "));
            write(feed, api, ctx, &health, base, &now).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(main) = desired.first_mut() {
        main.configs.extend(replays_configs(&replays));
    }
    let feeds = api
        .list(&ListParams::default())
        .await
        .kube("list", "Feed", namespace)?;
    if let Some(other) = earlier_claimant(&feeds.items, feed) {
        let health = Health::stalled(
            "TopicClaimed",
            format!("Feed {other} manages topic {topic} (or its dead-letter topic) on cluster {cluster_name}"),
        );
        write(feed, api, ctx, &health, base, &now).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    // Access: checked before anything is applied, so a bad entry never half-applies.
    if let Some(access) = &feed.spec.access {
        let authentication = cluster
            .spec
            .listeners
            .kafka
            .authentication
            .as_ref()
            .map(|a| a.type_);
        if let Err(problems) = access::validate::check(access, authentication) {
            let health = Health::stalled("InvalidAccess", problems.join("; "));
            write(feed, api, ctx, &health, base, &now).await?;
            return Ok(Action::await_change());
        }
    }
    if let Some(other) = access::validate::earlier_group_claimant(&feeds.items, feed) {
        let health = Health::stalled(
            "GroupClaimed",
            format!("Feed {other} already declares a consumer group (or prefix) of this Feed's spec.access on cluster {cluster_name}"),
        );
        write(feed, api, ctx, &health, base, &now).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    let ready = cluster
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY));
    if !ready {
        let health = Health::progressing(
            "WaitingForCluster",
            format!("SecurityLakeCluster {cluster_name} is not ready yet"),
        );
        write(feed, api, ctx, &health, base, &now).await?;
        return Ok(Action::requeue(Duration::from_secs(15)));
    };

    // The inline schema first, so that the brokers never validate against a missing
    // subject; while it cannot be registered, the validation configs stay as they are.
    let schema = register_schema(feed, &cluster, ctx).await;
    if schema.is_err() {
        if let Some(main) = desired.first_mut() {
            hold_schema_configs(main);
        }
    }

    // Plan and carry out the topic changes, then the access.
    let client = match cluster_client(ctx, &cluster).await? {
        Ok(client) => client,
        Err(health) => {
            write(feed, api, ctx, &health, base, &now).await?;
            return Ok(Action::requeue(Duration::from_secs(15)));
        }
    };
    let others = peers(&feeds.items, feed);
    let synced = sync_feed(&client, ctx, feed, &desired, &others).await;
    let (report, access_report) = match synced {
        Ok(reports) => reports,
        Err(SyncError::Access(e)) => {
            ctx.metrics.failed(CONTROLLER, "access");
            warn!(error = %e, "access sync failed");
            let health = Health::degraded("AccessFailed", format!("{cluster_name}: {e}"));
            write(feed, api, ctx, &health, base, &now).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        Err(SyncError::Admin(e)) => {
            ctx.metrics.failed(CONTROLLER, "kafka_admin");
            let (health, retry) = if e.is_transient() || e.code().is_none() {
                (
                    Health::degraded("ClusterUnreachable", format!("{cluster_name}: {e}")),
                    Duration::from_secs(30),
                )
            } else {
                (
                    Health::stalled("TopicRejected", format!("{cluster_name}: {e}")),
                    Duration::from_secs(300),
                )
            };
            warn!(error = %e, "topic sync failed");
            write(feed, api, ctx, &health, base, &now).await?;
            return Ok(Action::requeue(retry));
        }
    };
    if let Some(access) = &access_report {
        if !access.done.is_empty() {
            let changes = access.done.join("; ");
            info!(%changes, "access changed");
            ctx.event(feed, EventType::Normal, "AccessChanged", changes)
                .await;
        }
        if !access.status.drift.is_empty() {
            let drift: Vec<String> = access
                .status
                .drift
                .iter()
                .filter_map(access::acls::binding)
                .map(|a| access::line(&a))
                .collect();
            ctx.event(
                feed,
                EventType::Warning,
                "AccessDrift",
                for_owner(
                    feed,
                    &format!(
                        "ACLs removed outside the Feed were put back: {}",
                        drift.join("; ")
                    ),
                ),
            )
            .await;
        }
    }
    if feed.spec.access.is_some() && !client.secured {
        ctx.event(
            feed,
            EventType::Warning,
            "AccessNotEnforced",
            format!("SecurityLakeCluster {cluster_name} does not authenticate clients (listeners.kafka.authentication): spec.access makes no ACLs there"),
        )
        .await;
    }
    if !report.done.is_empty() {
        // One Event for all changes: the recorder folds Events of one reason into a
        // series that keeps the first note.
        let changes = report.done.join("; ");
        info!(%changes, "topics changed");
        ctx.event(feed, EventType::Normal, "TopicChanged", changes)
            .await;
    }

    // Status.
    let sample = CounterSample {
        at_ms: monotonic_ms(),
        values: report
            .end_offsets
            .iter()
            .map(|(p, o)| (p.to_string(), *o as f64))
            .collect(),
    };
    let previous = ctx.swap_samples(
        &key,
        Samples {
            produce: Some(sample.clone()),
            fetch: None,
        },
    );
    let rate = previous
        .produce
        .and_then(|before| counter_rate(&before, &sample));
    let health = if let Err(schema_health) = &schema {
        schema_health.clone()
    } else if report.diverged.is_empty() {
        Health::ready(
            "TopicReady",
            format!(
                "topic {topic} has {} partitions",
                report.partitions.unwrap_or(0)
            ),
        )
    } else {
        Health::degraded("PartitionsDiverged", report.diverged.join("; "))
    };
    let max_lag = report.consumer_lag.iter().map(|g| g.lag).max();
    let schema_id = match &schema {
        Ok(id) => *id,
        Err(_) => base.schema_id,
    };
    let mut status = FeedStatus {
        topic_id: report.topic_id,
        partitions: report.partitions,
        records_per_second: rate.map(|r| r.round() as i64),
        dead_letter_records: report.dead_letter_records,
        consumer_lag: report.consumer_lag,
        max_consumer_lag: max_lag,
        schema_id,
        access: match access_report {
            Some(a) => Some(a.status).filter(|s| *s != AccessStatus::default()),
            None => base.access.clone(),
        },
        ..base
    };
    report_rejections(feed, &cluster, ctx, &mut status, &now).await;
    report_table(feed, &cluster, ctx, &mut status, &now).await;
    report_replays(feed, &cluster, ctx, &replays, &mut status, &now).await;
    write(feed, api, ctx, &health, status, &now).await?;
    let next = match health {
        Health::Stalled { .. } => Duration::from_secs(300),
        _ => ctx.config.refresh_interval,
    };
    Ok(Action::requeue(next))
}

/// Why a sync with the cluster stopped.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Access(#[from] access::credentials::CredentialError),
}

/// The topics, then (on a secured cluster, or to undo what an earlier one made) the
/// access, over one admin connection.
async fn sync_feed(
    client: &ClusterClient,
    ctx: &Context,
    feed: &Feed,
    desired: &[DesiredTopic],
    others: &[&Feed],
) -> Result<(SyncReport, Option<access::AccessReport>), SyncError> {
    let mut admin =
        AdminClient::connect(&client.bootstrap, ctx.config.io_timeout, &client.security).await?;
    let report = sync_topics(&mut admin, desired).await?;
    let made_before = feed.status.as_ref().is_some_and(|s| s.access.is_some());
    if !client.secured || (feed.spec.access.is_none() && !made_before) {
        return Ok((report, None));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &client.settings.namespace);
    let access = access::sync(&mut admin, &secrets, feed, &client.settings, others).await?;
    Ok((report, Some(access)))
}

/// Brings every desired topic to its spec, then reads the figures of the main topic and
/// the dead-letter topic.
async fn sync_topics(
    admin: &mut AdminClient,
    desired: &[DesiredTopic],
) -> Result<SyncReport, AdminError> {
    let mut report = SyncReport::default();
    let mut descriptions = Vec::new();
    for want in desired {
        let mut created = false;
        let observed = observe_topic(admin, &want.name).await?;
        let topic_plan = plan(want, observed.as_ref().map(|(_, o)| o));
        report.diverged.extend(topic_plan.diverged);
        for action in topic_plan.actions {
            match action {
                TopicAction::Create {
                    partitions,
                    configs,
                } => {
                    match admin.create_topic(&want.name, partitions, &configs).await {
                        Ok(_) => {
                            created = true;
                            report.done.push(format!(
                                "created topic {} with {partitions} partitions",
                                want.name
                            ))
                        }
                        // Created by someone else between our look and our create: adopt it
                        // on the next pass.
                        Err(e) if e.code() == Some(ResponseError::TopicAlreadyExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                TopicAction::AddPartitions { from, to } => {
                    admin.create_partitions(&want.name, to).await?;
                    report
                        .done
                        .push(format!("topic {}: partitions {from} → {to}", want.name));
                }
                TopicAction::AlterConfigs(ops) => {
                    admin.alter_topic_configs(&want.name, &ops).await?;
                    report
                        .done
                        .push(format!("topic {}: configs {ops:?}", want.name));
                }
            }
        }
        let mut description = admin.describe_topic(&want.name).await?;
        // The broker answering Metadata learns a topic the controller just created a
        // moment later (it polls the bucket): wait briefly rather than report a Ready
        // Feed without its partitions until the next refresh (found by the e2e suite).
        let mut tries = 0;
        while created && description.is_none() && tries < 20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            description = admin.describe_topic(&want.name).await?;
            tries += 1;
        }
        descriptions.push(description);
    }

    // The main topic: id, partitions, end offsets, consumer lag.
    if let Some(Some(main)) = descriptions.first() {
        report.topic_id = main.id.clone();
        report.partitions = Some(main.partitions());
        report.end_offsets = admin.end_offsets(main).await?;
        for group in admin.list_groups().await?.into_iter().take(MAX_GROUPS) {
            let offsets = admin.committed_offsets(&group).await?;
            if let Some(lag) = topic_lag(&offsets, &main.name, &report.end_offsets) {
                report.consumer_lag.push(GroupLag { group, lag });
            }
        }
    }
    // The dead-letter topic: how many records it holds.
    if let Some(Some(dead_letter)) = descriptions.get(1) {
        let start = admin.start_offsets(dead_letter).await?;
        let end = admin.end_offsets(dead_letter).await?;
        report.dead_letter_records = Some(
            end.iter()
                .map(|(p, e)| (e - start.get(p).copied().unwrap_or(0)).max(0))
                .sum(),
        );
    }
    Ok(report)
}

async fn observe_topic(
    admin: &mut AdminClient,
    name: &str,
) -> Result<Option<(crate::kafka::TopicDescription, ObservedTopic)>, AdminError> {
    let Some(description) = admin.describe_topic(name).await? else {
        return Ok(None);
    };
    let configs = admin.describe_topic_configs(name).await?;
    let observed = ObservedTopic {
        partitions: description.partitions(),
        configs,
    };
    Ok(Some((description, observed)))
}

/// Writes the status with `health`'s conditions; announces a change of health with an
/// Event (warnings name the feed's owner).
async fn write(
    feed: &Feed,
    api: &Api<Feed>,
    ctx: &Context,
    health: &Health,
    mut status: FeedStatus,
    now: &Time,
) -> Result<()> {
    let previous = feed
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let before = conditions::find(previous, conditions::READY).map(|c| c.reason.clone());
    if before.as_deref() != Some(health.reason()) {
        let (type_, note) = match health {
            Health::Ready { .. } | Health::Progressing { .. } => {
                (EventType::Normal, health.message().to_string())
            }
            Health::Degraded { .. } | Health::Stalled { .. } => {
                (EventType::Warning, for_owner(feed, health.message()))
            }
        };
        ctx.event(feed, type_, health.reason(), note).await;
    }
    status.observed_generation = feed.metadata.generation;
    // Conditions of their own (the table's, the replays') stay as the caller left them.
    let own: Vec<_> = std::mem::take(&mut status.conditions)
        .into_iter()
        .filter(|c| !conditions::HEALTH_TYPES.contains(&c.type_.as_str()))
        .collect();
    status.conditions = health.conditions(feed.metadata.generation, previous, now);
    status.conditions.extend(own);
    apply_status(api, feed, KIND, &status).await
}

/// `message` naming the feed's owner and how to reach them, as Warning Events do.
fn for_owner(feed: &Feed, message: &str) -> String {
    format!(
        "{message} (owner: {}, {})",
        feed.spec.owner.team, feed.spec.owner.contact
    )
}

/// The other Feeds of `feed`'s cluster that are not being deleted.
fn peers<'a>(feeds: &'a [Feed], feed: &Feed) -> Vec<&'a Feed> {
    feeds
        .iter()
        .filter(|f| f.metadata.uid != feed.metadata.uid)
        .filter(|f| f.spec.cluster_ref == feed.spec.cluster_ref)
        .filter(|f| f.metadata.deletion_timestamp.is_none())
        .collect()
}

/// What the pure parts' tests share.
#[cfg(test)]
mod testing {
    use std::collections::BTreeMap;

    use crate::crd::Feed;

    /// A Feed `name` (generation 7) without optional sections.
    pub fn feed(name: &str) -> Feed {
        serde_yaml::from_str(&format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: Feed\n\
             metadata: {{name: {name}, namespace: security, generation: 7}}\n\
             spec: {{clusterRef: {{name: lake}}, owner: {{team: t, contact: c}}}}"
        ))
        .unwrap()
    }

    /// Topic configs as comparable pairs.
    pub fn values<'a>(
        configs: &'a BTreeMap<&'static str, Option<String>>,
    ) -> Vec<(&'static str, Option<&'a str>)> {
        configs.iter().map(|(k, v)| (*k, v.as_deref())).collect()
    }
}
