//! The internal topic `__consumer_offsets`: its id, fixed by the cluster id so a
//! coordinator knows it before the topic exists; its partition count; who coordinates
//! the groups of each partition; and its creation, when groups first need it (usually
//! once the fleet has come up, so group coordinators spread over it).

use std::future::Future;

use uuid::Uuid;

use super::offsets::OFFSETS_TOPIC;
use super::GroupCoordinator;
use crate::coordination::metadata::NodeInfo;
use crate::coordination::topic_config;
use crate::coordination::topics::{TopicAdmin, TopicError};
use crate::coordination::{ClusterMetadata, MetadataStore, TopicMetadata};

/// The id of the offsets topic of cluster `cluster_id`.
pub fn topic_id(cluster_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{cluster_id}/{OFFSETS_TOPIC}").as_bytes(),
    )
}

/// (id, partition count) of the offsets topic: as it exists, or as it will be created
/// with `configured` partitions (at least one).
pub fn locate(meta: &ClusterMetadata, configured: i32) -> (Uuid, usize) {
    match meta.topics.get(OFFSETS_TOPIC) {
        Some(t) => (t.id, t.partitions.len()),
        None => (topic_id(&meta.cluster_id), configured.max(1) as usize),
    }
}

/// The coordinator of the groups of offsets partition `p`: its live leader.
pub fn coordinator_of(meta: &ClusterMetadata, p: i32) -> Option<(i32, &NodeInfo)> {
    meta.topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.partitions.get(p as usize))
        .and_then(|a| meta.live_leader(a))
}

/// Creates `__consumer_offsets` when groups first need it, then runs `lead` (see
/// [`TopicAdmin::create`]). Offsets are never deleted by time: the coordinator compacts
/// them itself.
pub async fn ensure(
    topics: &TopicAdmin,
    metadata: &MetadataStore,
    groups: &GroupCoordinator,
    lead: impl Future<Output = ()>,
) -> Result<TopicMetadata, TopicError> {
    if let Some(t) = metadata.current().topics.get(OFFSETS_TOPIC) {
        return Ok(t.clone());
    }
    let configs = [(topic_config::RETENTION_MS.to_string(), "-1".to_string())].into();
    match topics
        .create(
            OFFSETS_TOPIC,
            groups.offsets_topic_id(),
            groups.offsets_partitions() as i32,
            configs,
            lead,
        )
        .await
    {
        Err(TopicError::Exists) => {
            // The version that said so may be newer than this broker's view (found by
            // the simulation, seed 1021: indexing it panicked).
            if !metadata.current().topics.contains_key(OFFSETS_TOPIC) {
                metadata.refresh(true).await?;
            }
            let meta = metadata.current();
            meta.topics
                .get(OFFSETS_TOPIC)
                .cloned()
                .ok_or(TopicError::Exists)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::coordination::groups::ConsumerGroupTiming;
    use crate::coordination::testing::fixture;

    fn coordinator(f: &crate::coordination::testing::Fixture) -> Arc<GroupCoordinator> {
        let (id, partitions) = locate(&f.metadata.current(), 3);
        let timing = ConsumerGroupTiming {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
        };
        GroupCoordinator::new(f.engine.clone(), id, partitions, timing)
    }

    #[test]
    fn the_topic_id_is_fixed_by_the_cluster_id() {
        assert_eq!(topic_id("a"), topic_id("a"));
        assert_ne!(topic_id("a"), topic_id("b"));
        let meta = ClusterMetadata {
            cluster_id: "a".into(),
            ..Default::default()
        };
        assert_eq!(locate(&meta, 16), (topic_id("a"), 16));
        assert_eq!(
            locate(&meta, 0),
            (topic_id("a"), 1),
            "at least one partition"
        );
        assert_eq!(coordinator_of(&meta, 0), None);
    }

    #[tokio::test]
    async fn the_topic_is_created_once_with_offsets_kept_forever() {
        let f = fixture().await;
        let topics = TopicAdmin::new(f.metadata.clone(), f.engine.clone());
        let groups = coordinator(&f);
        let led = AtomicUsize::new(0);
        let lead = || async {
            led.fetch_add(1, Ordering::SeqCst);
        };
        let t = ensure(&topics, &f.metadata, &groups, lead()).await.unwrap();
        assert_eq!(t.id, topic_id(&f.metadata.current().cluster_id));
        assert_eq!(t.partitions.len(), 3);
        assert_eq!(t.configs[topic_config::RETENTION_MS], "-1");
        let again = ensure(&topics, &f.metadata, &groups, lead()).await.unwrap();
        assert_eq!(again, t);
        assert_eq!(led.load(Ordering::SeqCst), 1);

        let meta = f.metadata.current();
        assert_eq!(
            locate(&meta, 8),
            (t.id, 3),
            "an existing topic keeps its size"
        );
        let (leader, node) = coordinator_of(&meta, 2).unwrap();
        assert_eq!((leader, node.host.as_str()), (0, "broker-0"));
        assert_eq!(coordinator_of(&meta, 3), None);
    }

    #[tokio::test]
    async fn a_topic_created_by_another_broker_is_read_from_the_bucket() {
        let f = fixture().await;
        let topics = TopicAdmin::new(f.metadata.clone(), f.engine.clone());
        let groups = coordinator(&f);
        let elsewhere = Arc::new(
            crate::coordination::metadata::open(f.store.clone())
                .await
                .unwrap(),
        );
        let other = TopicAdmin::new(elsewhere, f.engine.clone());
        let t = ensure(&other, &f.metadata, &groups, async {}).await;
        // `other` created it through its own view; ours has not seen it yet.
        assert!(t.is_ok());
        assert!(!f.metadata.current().topics.contains_key(OFFSETS_TOPIC));
        let seen = ensure(&topics, &f.metadata, &groups, async {
            panic!("nothing to lead");
        })
        .await
        .unwrap();
        assert_eq!(seen, t.unwrap());
    }
}
