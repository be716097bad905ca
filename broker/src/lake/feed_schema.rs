//! Schema mode's view of the registry: the feed's subject's latest schema, which the
//! table's columns follow (evolved before any row of a newer version is written), and
//! the writer schemas Avro values are decoded with, parsed once per id.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_lake::values::ValueFormat;
use sluice_schema::validate::Format;

use crate::governance::SchemaRegistry;

pub struct FeedSchemaSource {
    pub registry: Arc<SchemaRegistry>,
    pub subject: String,
    pub format: Format,
}

impl FeedSchemaSource {
    /// The subject's latest schema: its id and text.
    pub fn latest(&self) -> Result<(i32, String), String> {
        let registry = self.registry.current();
        let id = registry
            .latest_id(&self.subject)
            .map_err(|e| format!("schema mode: subject {:?}: {e}", self.subject))?;
        let text = registry
            .schema_by_id(id)
            .map(|s| s.schema.clone())
            .ok_or_else(|| format!("schema mode: schema id {id} is not in the registry"))?;
        Ok((id, text))
    }

    /// The subject's latest schema id, if any.
    pub fn latest_id(&self) -> Option<i32> {
        self.registry.current().latest_id(&self.subject).ok()
    }

    /// How the writer decodes values: Avro with the schema of each value's id, read
    /// from the live registry (a record can name an id registered after the window
    /// began) and parsed once.
    pub fn value_format(&self) -> ValueFormat {
        match self.format {
            Format::Json => ValueFormat::Json,
            Format::JsonSchema => ValueFormat::JsonSchema,
            Format::Avro => {
                let registry = self.registry.clone();
                let parsed = Mutex::new(HashMap::new());
                ValueFormat::Avro(Arc::new(move |id| {
                    parsed
                        .lock()
                        .entry(id)
                        .or_insert_with(|| {
                            let stored = registry.current().schema_by_id(id)?.schema.clone();
                            sluice_schema::avro::parse(&stored).ok().map(Arc::new)
                        })
                        .clone()
                }))
            }
        }
    }
}
