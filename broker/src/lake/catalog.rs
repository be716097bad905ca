//! The Iceberg catalog of this broker (`--lake-catalog`), shared by its lake writers and
//! its evidence reports: connected on first use, and again on the next use after a
//! failed attempt (a catalog down at start-up is not a reason to stay without one).

use std::sync::Arc;

use iceberg::Catalog;
use sluice_lake::{CatalogConfig, LakeError};
use tokio::sync::OnceCell;

pub struct SharedCatalog {
    config: Option<CatalogConfig>,
    connected: OnceCell<Arc<dyn Catalog>>,
}

impl SharedCatalog {
    /// `None`: no catalog configured (the lake writer is off).
    pub fn new(config: Option<CatalogConfig>) -> Self {
        SharedCatalog {
            config,
            connected: OnceCell::new(),
        }
    }

    pub fn config(&self) -> Option<&CatalogConfig> {
        self.config.as_ref()
    }

    /// The connected catalog; None when none is configured.
    pub async fn get(&self) -> Result<Option<Arc<dyn Catalog>>, LakeError> {
        let Some(config) = &self.config else {
            return Ok(None);
        };
        self.connected
            .get_or_try_init(|| config.connect())
            .await
            .cloned()
            .map(Some)
    }
}
