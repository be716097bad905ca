//! Topic administration: creating, deleting and growing topics and changing their configs
//! in cluster metadata, one change at a time, and the retention of the partitions led
//! here. Taking over new partitions is the server's: callers pass it in as `lead`, which
//! runs before the next change starts, so this layer never calls up.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::placement::{self, NoEligibleBroker};
use super::{topic_config, MetadataStore, TopicMetadata};
use crate::clock::now_ms;
use crate::storage::{LogEngine, StorageError};

/// Most partitions one topic may have, to keep a typo from exhausting memory.
pub const MAX_PARTITIONS: i32 = 10_000;

/// Why a topic change was refused; each API maps it to its own Kafka error.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic already exists")]
    Exists,
    #[error("unknown topic")]
    Unknown,
    #[error("unknown topic id")]
    UnknownId,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    NoBroker(#[from] NoEligibleBroker),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Changes topics in cluster metadata and keeps the engine in step with them.
pub struct TopicAdmin {
    metadata: Arc<MetadataStore>,
    engine: Arc<LogEngine>,
    /// Serialises topic administration so metadata and engine stay in step.
    lock: tokio::sync::Mutex<()>,
}

impl TopicAdmin {
    pub fn new(metadata: Arc<MetadataStore>, engine: Arc<LogEngine>) -> Self {
        TopicAdmin {
            metadata,
            engine,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Creates a topic in metadata, its partitions spread over the live brokers, then
    /// runs `lead` (this broker taking over the ones assigned to it; the others' leaders
    /// see the new version).
    pub async fn create(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
        lead: impl Future<Output = ()>,
    ) -> Result<TopicMetadata, TopicError> {
        let _admin = self.lock.lock().await;
        let topic = self
            .metadata
            .update(|m| {
                if m.topics.contains_key(name) {
                    return Err(TopicError::Exists);
                }
                let t = TopicMetadata {
                    id,
                    partitions: placement::place_new(m, name, partitions as usize)?,
                    configs: configs.clone(),
                };
                m.topics.insert(name.to_string(), t.clone());
                Ok(t)
            })
            .await?;
        lead.await;
        info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    /// Auto-creation on Metadata: `partitions` partitions and default configs; a topic
    /// created meanwhile by someone else is as good.
    pub async fn auto_create(
        &self,
        name: &str,
        partitions: i32,
        lead: impl Future<Output = ()>,
    ) -> Result<(), TopicError> {
        topic_config::validate_topic_name(name).map_err(TopicError::Invalid)?;
        match self
            .create(name, Uuid::new_v4(), partitions, Default::default(), lead)
            .await
        {
            Ok(_) | Err(TopicError::Exists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes a topic, named or (with no name) by id, from metadata, then deletes its
    /// partitions' objects. Returns its name and what it was.
    pub async fn delete(
        &self,
        name: Option<&str>,
        id: Uuid,
    ) -> Result<(String, TopicMetadata), TopicError> {
        let _admin = self.lock.lock().await;
        let (key, t) = self
            .metadata
            .update(|m| {
                let key = match name {
                    Some(n) => n.to_string(),
                    None => m
                        .topic_by_id(id)
                        .map(|(n, _)| n.clone())
                        .ok_or(TopicError::UnknownId)?,
                };
                let t = m.topics.remove(&key).ok_or(TopicError::Unknown)?;
                Ok::<_, TopicError>((key, t))
            })
            .await?;
        for p in 0..t.partitions.len() as i32 {
            if let Err(e) = self.engine.delete_partition(t.id, p).await {
                warn!(topic = %key, partition = p, error = %e, "could not delete partition objects; they are unreferenced");
            }
        }
        info!(topic = %key, "deleted topic");
        Ok((key, t))
    }

    /// Grows a topic to `count` partitions, then runs `lead` and returns its output.
    /// With `validate_only` the change is checked and nothing is written (`Ok(None)`).
    pub async fn add_partitions<T>(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        lead: impl Future<Output = T>,
    ) -> Result<Option<T>, TopicError> {
        let _admin = self.lock.lock().await;
        let grown = self
            .metadata
            .update_if(|m| {
                let current = m
                    .topics
                    .get(name)
                    .ok_or(TopicError::Unknown)?
                    .partitions
                    .len() as i32;
                if count <= current {
                    return Err(TopicError::Invalid(format!(
                        "topic has {current} partitions; partitions can only grow"
                    )));
                }
                if count > MAX_PARTITIONS {
                    return Err(TopicError::Invalid(format!(
                        "{count} partitions is over the limit of {MAX_PARTITIONS}"
                    )));
                }
                if validate_only {
                    return Ok(None);
                }
                let added = placement::place_new(m, name, (count - current) as usize)
                    .map_err(|e| TopicError::Invalid(e.to_string()))?;
                let topic = m.topics.get_mut(name).ok_or(TopicError::Unknown)?;
                topic.partitions.extend(added);
                Ok(Some(()))
            })
            .await?;
        match grown {
            Some(()) => Ok(Some(lead.await)),
            None => Ok(None),
        }
    }

    /// Applies `change` to a topic's configs; with `validate_only`, to a copy of them.
    pub async fn alter_configs(
        &self,
        name: &str,
        validate_only: bool,
        change: impl Fn(&mut BTreeMap<String, String>) -> Result<(), TopicError>,
    ) -> Result<(), TopicError> {
        if validate_only {
            return match self.metadata.current().topics.get(name) {
                None => Err(TopicError::Unknown),
                Some(t) => change(&mut t.configs.clone()),
            };
        }
        let _admin = self.lock.lock().await;
        self.metadata
            .update(|m| {
                let t = m.topics.get_mut(name).ok_or(TopicError::Unknown)?;
                change(&mut t.configs)
            })
            .await
    }

    /// Enforces retention on every partition led here, once.
    pub async fn enforce_retention(&self) {
        let meta = self.metadata.current();
        for (name, t) in &meta.topics {
            let s = topic_config::settings(&t.configs);
            for i in 0..t.partitions.len() as i32 {
                let Some(part) = self.engine.partition(t.id, i) else {
                    continue;
                };
                if let Err(e) = self
                    .engine
                    .enforce_retention(&part, s.retention_ms, s.retention_bytes, now_ms())
                    .await
                {
                    warn!(topic = %name, partition = i, error = %e, "retention failed; next round retries");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::coordination::testing::fixture;

    async fn admin() -> TopicAdmin {
        let f = fixture().await;
        TopicAdmin::new(f.metadata, f.engine)
    }

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn a_topic_is_created_once_and_only_a_creation_leads() {
        let admin = admin().await;
        let led = AtomicUsize::new(0);
        let lead = || async {
            led.fetch_add(1, Ordering::SeqCst);
        };
        let id = Uuid::new_v4();
        let t = admin
            .create("t", id, 3, configs(&[("retention.ms", "1000")]), lead())
            .await
            .unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 3);
        assert!(t.partitions.iter().all(|p| p.leader == 0));
        assert_eq!(admin.metadata.current().topics["t"], t);
        let again = admin.create("t", Uuid::new_v4(), 1, configs(&[]), lead());
        assert!(matches!(again.await, Err(TopicError::Exists)));
        assert_eq!(led.load(Ordering::SeqCst), 1);
        assert_eq!(admin.metadata.current().topics["t"].id, id);
    }

    #[tokio::test]
    async fn creation_needs_a_broker_to_lead() {
        let admin = admin().await;
        admin
            .metadata
            .update(|m| {
                m.nodes.get_mut(&0).unwrap().draining = true;
                Ok::<_, StorageError>(())
            })
            .await
            .unwrap();
        let r = admin
            .create("t", Uuid::new_v4(), 1, configs(&[]), async {})
            .await;
        assert!(matches!(r, Err(TopicError::NoBroker(_))));
        assert!(admin.metadata.current().topics.is_empty());
    }

    #[tokio::test]
    async fn auto_creation_checks_the_name_and_accepts_an_existing_topic() {
        let admin = admin().await;
        let bad = admin.auto_create("no/slash", 2, async {}).await;
        assert!(matches!(bad, Err(TopicError::Invalid(_))));
        admin.auto_create("auto", 2, async {}).await.unwrap();
        let id = admin.metadata.current().topics["auto"].id;
        admin.auto_create("auto", 5, async {}).await.unwrap();
        let t = &admin.metadata.current().topics["auto"];
        assert_eq!((t.id, t.partitions.len()), (id, 2));
    }

    #[tokio::test]
    async fn topics_are_deleted_by_name_or_id() {
        let admin = admin().await;
        let a = admin
            .create("a", Uuid::new_v4(), 1, configs(&[]), async {})
            .await
            .unwrap();
        admin
            .create("b", Uuid::new_v4(), 1, configs(&[]), async {})
            .await
            .unwrap();
        let (name, t) = admin.delete(None, a.id).await.unwrap();
        assert_eq!((name.as_str(), t), ("a", a));
        let (name, _) = admin.delete(Some("b"), Uuid::nil()).await.unwrap();
        assert_eq!(name, "b");
        assert!(admin.metadata.current().topics.is_empty());
        let by_id = admin.delete(None, Uuid::new_v4()).await;
        assert!(matches!(by_id, Err(TopicError::UnknownId)));
        let by_name = admin.delete(Some("a"), Uuid::nil()).await;
        assert!(matches!(by_name, Err(TopicError::Unknown)));
    }

    #[tokio::test]
    async fn partitions_only_grow_and_validation_changes_nothing() {
        let admin = admin().await;
        admin
            .create("t", Uuid::new_v4(), 2, configs(&[]), async {})
            .await
            .unwrap();
        let count = |admin: &TopicAdmin| admin.metadata.current().topics["t"].partitions.len();
        let shrink = admin.add_partitions("t", 2, false, async { 1 }).await;
        assert!(matches!(shrink, Err(TopicError::Invalid(m)) if m.contains("only grow")));
        let huge = admin
            .add_partitions("t", MAX_PARTITIONS + 1, false, async { 1 })
            .await;
        assert!(matches!(huge, Err(TopicError::Invalid(_))));
        let unknown = admin.add_partitions("u", 3, false, async { 1 }).await;
        assert!(matches!(unknown, Err(TopicError::Unknown)));
        let version = admin.metadata.version();
        let checked = admin.add_partitions("t", 4, true, async { 1 }).await;
        assert!(matches!(checked, Ok(None)), "validation does not lead");
        assert_eq!((count(&admin), admin.metadata.version()), (2, version));
        let grown = admin.add_partitions("t", 4, false, async { 7 }).await;
        assert!(matches!(grown, Ok(Some(7))), "lead's output comes back");
        assert_eq!(count(&admin), 4);
    }

    #[tokio::test]
    async fn configs_change_in_metadata_unless_only_validated() {
        let admin = admin().await;
        admin
            .create("t", Uuid::new_v4(), 1, configs(&[]), async {})
            .await
            .unwrap();
        let set = |c: &mut BTreeMap<String, String>| {
            c.insert("retention.ms".into(), "5".into());
            Ok(())
        };
        admin.alter_configs("t", true, set).await.unwrap();
        assert!(admin.metadata.current().topics["t"].configs.is_empty());
        admin.alter_configs("t", false, set).await.unwrap();
        assert_eq!(
            admin.metadata.current().topics["t"].configs,
            configs(&[("retention.ms", "5")])
        );
        let refuse = |_: &mut BTreeMap<String, String>| Err(TopicError::Invalid("no".into()));
        let refused = admin.alter_configs("t", false, refuse).await;
        assert!(matches!(refused, Err(TopicError::Invalid(m)) if m == "no"));
        for validate_only in [true, false] {
            let unknown = admin.alter_configs("u", validate_only, set).await;
            assert!(matches!(unknown, Err(TopicError::Unknown)));
        }
    }
}
