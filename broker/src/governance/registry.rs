//! The schema registry as every broker serves it: one versioned document in the bucket
//! (`meta/schemas`), changed by compare-and-swap like cluster metadata, so ids are global
//! and two brokers registering at once cannot both take the same id. The REST API itself
//! is `sluice_schema::api`; this adds persistence and the compiled validators the produce
//! path uses, rebuilt when the registry or a topic's policy changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_schema::api::{self, ApiRequest, ApiResponse};
use sluice_schema::registry::Registry;
use sluice_schema::validate::Validator;
use sluice_schema::RegistryError;

use crate::coordination::topic_config::SchemaPolicy;
use crate::storage::document::Document;
use crate::storage::error::{Result, StorageError};
use crate::storage::Store;

/// A produce naming an id this broker has not seen re-reads the registry at most this
/// often (a producer that registered on another broker a moment ago).
const MISSING_ID_REFRESH: Duration = Duration::from_millis(200);

struct Compiled {
    policy: SchemaPolicy,
    registry_version: u64,
    validator: Arc<Validator>,
}

pub struct SchemaRegistry {
    doc: Document<Registry>,
    compiled: Mutex<Vec<Compiled>>,
    last_refresh: Mutex<Option<Instant>>,
}

impl SchemaRegistry {
    pub async fn open(store: Store) -> Result<Self> {
        Ok(SchemaRegistry {
            doc: Document::open(store, "meta/schemas", Registry::default).await?,
            compiled: Mutex::new(Vec::new()),
            last_refresh: Mutex::new(None),
        })
    }

    pub fn current(&self) -> Arc<Registry> {
        self.doc.current()
    }

    /// Follows changes other brokers made: the next versions, or (`full`) the newest
    /// one by listing, for a broker that fell far behind.
    pub async fn refresh(&self, full: bool) -> Result<bool> {
        *self.last_refresh.lock() = Some(Instant::now());
        self.doc.refresh(full).await
    }

    /// Refreshes unless that was done a moment ago; true if something changed.
    pub async fn refresh_if_stale(&self) -> bool {
        let stale = self
            .last_refresh
            .lock()
            .is_none_or(|t| t.elapsed() >= MISSING_ID_REFRESH);
        stale && self.refresh(false).await.unwrap_or(false)
    }

    /// Answers one registry API request. Reads are answered from the newest version;
    /// a change is written as the next version, and re-applied to a fresher one when
    /// another broker wrote first.
    pub async fn answer(&self, req: &ApiRequest<'_>) -> ApiResponse {
        if let Err(e) = self.refresh(false).await {
            return store_error(&e);
        }
        let (response, changed) = api::route(&self.doc.current(), req);
        if changed.is_none() {
            return response;
        }
        let mut answer = None;
        let written = self
            .doc
            .update_if(|registry| {
                let (response, changed) = api::route(registry, req);
                answer = Some(response);
                Ok::<_, StorageError>(changed.map(|new| *registry = new))
            })
            .await;
        match written {
            Ok(_) => answer.expect("route ran at least once"),
            Err(e) => store_error(&e),
        }
    }

    /// The validator for `policy`, compiled once per registry version.
    pub fn validator(
        &self,
        policy: &SchemaPolicy,
    ) -> std::result::Result<Arc<Validator>, RegistryError> {
        let version = self.doc.version();
        let mut compiled = self.compiled.lock();
        if let Some(c) = compiled
            .iter()
            .find(|c| c.registry_version == version && c.policy == *policy)
        {
            return Ok(c.validator.clone());
        }
        let validator = Arc::new(Validator::for_subject(
            &self.doc.current(),
            &policy.subject,
            policy.version,
            policy.format,
            policy.level,
        )?);
        compiled.retain(|c| c.registry_version == version && c.policy != *policy);
        compiled.push(Compiled {
            policy: policy.clone(),
            registry_version: version,
            validator: validator.clone(),
        });
        Ok(validator)
    }
}

/// Confluent's answer when its own store fails: 500 with error code 50001.
fn store_error(e: &StorageError) -> ApiResponse {
    ApiResponse {
        status: 500,
        body: serde_json::json!({
            "error_code": 50001,
            "message": format!("error in the backend data store: {e}"),
        }),
    }
}
