//! The lake writer (`docs/lake.md`): every topic whose configs enable a table
//! (`sluice.table.*`, set by the operator from a Feed's `spec.table`) is written to an
//! Iceberg table by the brokers that lead its partitions, each for its own partitions,
//! the way AutoMQ's table topics run inside the broker. No broker coordinates with
//! another: the table itself says where each partition stands, and a commit lands only
//! on the snapshot it was built on (`sluice_lake::commit`), so a partition that moves
//! is continued by its new leader exactly where the table stands.
//!
//! The supervisor here starts and stops one [`FeedWriter`] per such topic with at least
//! one partition led here, and connects to the catalog (retrying) when the first one
//! is needed.

mod catalog;
mod feed_schema;
mod feed_writer;
pub(crate) mod records;
mod replay;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_lake::TableSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use crate::coordination::topic_config::schema_policy;
use crate::coordination::MetadataStore;
use crate::governance::SchemaRegistry;
use crate::metrics::Metrics;
use crate::storage::LogEngine;
pub use catalog::SharedCatalog;
use feed_schema::FeedSchemaSource;
pub use feed_writer::CrashPoint;
use feed_writer::FeedWriter;
use sluice_lake::spec::TableMode;
pub use status::{LakeStatus, TableStatus};

/// How often the supervisor looks at the topics and the partitions led here.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

pub struct LakeService {
    /// Without a configured catalog, topics asking for a table report it.
    pub catalog: Arc<SharedCatalog>,
    pub engine: Arc<LogEngine>,
    pub metadata: Arc<MetadataStore>,
    pub metrics: Arc<Metrics>,
    /// The registry schema-mode tables follow.
    pub schemas: Arc<SchemaRegistry>,
    pub status: LakeStatus,
    pub writer_id: String,
    /// Tests only: where writers abort the process.
    pub crash_at: Option<CrashPoint>,
}

/// A running writer and what it was started for.
struct Running {
    topic_id: Uuid,
    spec: TableSpec,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LakeService {
    /// Supervises until `stop` fires, then stops every writer (their open windows are
    /// dropped, never half-committed).
    pub fn start(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut running: BTreeMap<String, Running> = BTreeMap::new();
            loop {
                self.supervise(&mut running).await;
                tokio::select! {
                    _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
                    _ = stop.changed() => break,
                }
            }
            for (_, r) in running {
                r.stop.send_replace(true);
                let _ = r.task.await;
            }
        })
    }

    /// The tables this broker should be writing now: topic -> (id, spec, framing).
    fn wanted(&self) -> BTreeMap<String, (Uuid, TableSpec)> {
        let meta = self.metadata.current();
        let led: Vec<Uuid> = self
            .engine
            .partitions()
            .iter()
            .filter(|p| !p.is_closed())
            .map(|p| p.topic_id)
            .collect();
        meta.topics
            .iter()
            .filter(|(_, t)| led.contains(&t.id))
            .filter_map(
                |(name, t)| match TableSpec::from_configs(name, &t.configs) {
                    Ok(Some(spec)) => Some((name.clone(), (t.id, spec))),
                    Ok(None) => None,
                    Err(e) => {
                        // Each config was validated when set; a combination can still fail.
                        self.status.set_error(name, "", e.to_string());
                        None
                    }
                },
            )
            .collect()
    }

    async fn supervise(&self, running: &mut BTreeMap<String, Running>) {
        let wanted = self.wanted();
        let stale: Vec<String> = running
            .iter()
            .filter(|(topic, r)| {
                wanted
                    .get(*topic)
                    .is_none_or(|(id, spec)| *id != r.topic_id || *spec != r.spec)
            })
            .map(|(t, _)| t.clone())
            .collect();
        for topic in stale {
            let r = running.remove(&topic).expect("listed above");
            info!(%topic, table = %r.spec.qualified_name(), "stopping lake writer");
            r.stop.send_replace(true);
            let _ = r.task.await;
            if !wanted.contains_key(&topic) {
                self.status.remove(&topic);
            }
        }
        let to_start: Vec<_> = wanted
            .into_iter()
            .filter(|(t, _)| !running.contains_key(t))
            .collect();
        if to_start.is_empty() {
            return;
        }
        let Some(config) = self.catalog.config() else {
            for (topic, (_, spec)) in &to_start {
                self.status.set_error(
                    topic,
                    &spec.qualified_name(),
                    "no Iceberg catalog configured on this broker (--lake-catalog)".into(),
                );
            }
            return;
        };
        let catalog = match self.catalog.get().await {
            Ok(c) => c.expect("configured: checked above"),
            Err(e) => {
                warn!(error = %e, "cannot connect to the Iceberg catalog; retrying");
                for (topic, (_, spec)) in &to_start {
                    self.status.set_error(
                        topic,
                        &spec.qualified_name(),
                        format!("catalog unreachable: {e}"),
                    );
                }
                return;
            }
        };
        let meta = self.metadata.current();
        for (topic, (topic_id, spec)) in to_start {
            let policy = meta
                .topics
                .get(&topic)
                .and_then(|t| schema_policy(&t.configs).ok().flatten());
            let framing = policy.as_ref().map(|p| p.format);
            let schema = match (spec.mode, policy) {
                (TableMode::Raw, _) => None,
                (TableMode::Schema, Some(p)) => Some(FeedSchemaSource {
                    registry: self.schemas.clone(),
                    subject: p.subject,
                    format: p.format,
                }),
                (TableMode::Schema, None) => {
                    self.status.set_error(
                        &topic,
                        &spec.qualified_name(),
                        "sluice.table.mode is schema but the topic has no sluice.schema.subject"
                            .into(),
                    );
                    continue;
                }
            };
            info!(%topic, table = %spec.qualified_name(), "starting lake writer");
            let (stop_tx, stop_rx) = watch::channel(false);
            let writer = FeedWriter {
                topic: topic.clone(),
                topic_id,
                spec: spec.clone(),
                framing,
                catalog: catalog.clone(),
                catalog_config: config.clone(),
                engine: self.engine.clone(),
                status: self.status.clone(),
                metrics: self.metrics.clone(),
                writer_id: self.writer_id.clone(),
                crash_at: self.crash_at,
                schema,
            };
            let task = tokio::spawn(writer.run(stop_rx));
            running.insert(
                topic,
                Running {
                    topic_id,
                    spec,
                    stop: stop_tx,
                    task,
                },
            );
        }
    }
}
