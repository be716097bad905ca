//! Test fixture for coordination: an in-memory bucket with a log engine (node 0) and
//! cluster metadata in which node 0 is a live broker.

use std::sync::Arc;

use super::metadata::NodeInfo;
use super::MetadataStore;
use crate::metrics::Metrics;
use crate::storage::{EngineConfig, LogEngine, StorageError, Store};

pub struct Fixture {
    pub store: Store,
    pub engine: Arc<LogEngine>,
    pub metadata: Arc<MetadataStore>,
}

/// A new engine of `node_id` on `store`, writing its WAL quickly.
pub async fn engine(store: &Store, node_id: i32) -> Arc<LogEngine> {
    let config = EngineConfig {
        node_id,
        wal_linger: std::time::Duration::from_millis(2),
        ..EngineConfig::default()
    };
    LogEngine::open(store.clone(), config, Arc::new(Metrics::new()))
        .await
        .unwrap()
}

pub async fn fixture() -> Fixture {
    let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
    let engine = engine(&store, 0).await;
    let metadata = Arc::new(
        crate::coordination::metadata::open(store.clone())
            .await
            .unwrap(),
    );
    metadata
        .update(|m| {
            m.nodes.insert(
                0,
                NodeInfo {
                    host: "broker-0".into(),
                    port: 9092,
                    incarnation: engine.incarnation(),
                    alive: true,
                    draining: false,
                    ..NodeInfo::default()
                },
            );
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
    Fixture {
        store,
        engine,
        metadata,
    }
}
