//! The cluster's security state (SCRAM credentials, client quotas, ACLs) as one document in the bucket: every
//! broker follows it by polling, changes are compare-and-swap, so a credential altered
//! through any broker is used by all of them within one metadata poll.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_auth::scram::{Mechanism, ScramCredential};

use super::acl::AclBinding;
use super::quotas::QuotaEntry;
use crate::storage::document::Document;
use crate::storage::error::Result;
use crate::storage::Store;

/// Where the document lives in the bucket.
pub const KEY: &str = "meta/security";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityState {
    /// SCRAM credentials by user name, at most one per mechanism. Only the salt, the
    /// iteration count and the derived keys are stored, never a password.
    #[serde(default)]
    pub scram: BTreeMap<String, Vec<ScramCredential>>,
    /// Client quotas (`kafka-configs.sh --entity-type users|clients`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<QuotaEntry>,
    /// ACLs (`kafka-acls.sh`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<AclBinding>,
}

impl SecurityState {
    pub fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<&ScramCredential> {
        self.scram
            .get(user)?
            .iter()
            .find(|c| c.mechanism == mechanism)
    }
}

pub struct SecurityStore {
    doc: Document<SecurityState>,
}

impl SecurityStore {
    pub async fn open(store: Store) -> Result<Self> {
        Ok(SecurityStore {
            doc: Document::open(store, KEY, SecurityState::default).await?,
        })
    }

    pub fn current(&self) -> Arc<SecurityState> {
        self.doc.current()
    }

    /// Follows newer versions (see [`Document::refresh`]).
    pub async fn refresh(&self, full: bool) -> Result<bool> {
        self.doc.refresh(full).await
    }

    /// Applies `change` by compare-and-swap; `None` from it writes nothing.
    pub async fn update_if<R, E>(
        &self,
        change: impl FnMut(&mut SecurityState) -> std::result::Result<Option<R>, E>,
    ) -> std::result::Result<Option<R>, E>
    where
        E: From<crate::storage::StorageError>,
    {
        self.doc.update_if(change).await
    }
}
