//! Validation on produce: what a batch becomes under its topic's schema policy
//! (`sluice.schema.*`). Reject refuses the batch with KIP-467 per-record errors; observe
//! lets it land and counts; dead-letter writes the invalid records to the dead-letter
//! topic first, then lets the valid ones land as a rewritten batch
//! (`docs/schema-validation.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;
use kafka_protocol::ResponseError;
use sluice_protocol::record_batch::BatchHeader;
use sluice_schema::validate::{Reason, Validator};
use sluice_schema::RegistryError;

use super::super::str_bytes;
use crate::coordination::topic_config::{self, Mode, SchemaPolicy};
use crate::coordination::TopicMetadata;
use crate::governance::check::{check_batch, CheckedBatch};
use crate::governance::rewrite::{self, Origin};
use crate::metrics::{TopicLabel, TopicReasonLabel};
use crate::server::Broker;

/// Most per-record errors listed in one response (a batch can hold many thousands).
const MAX_RECORD_ERRORS: usize = 100;

/// What lands for one partition's batch.
pub enum Governed {
    /// Append this batch: the client's own, or its valid records rewritten, which must
    /// follow the producer's sequence as the client's batch (`client_base`) would have.
    Land {
        batch: Bytes,
        header: BatchHeader,
        client_base: i32,
    },
    /// The batch is refused.
    Refuse {
        error: ResponseError,
        message: String,
        record_errors: Vec<BatchIndexAndErrorMessage>,
    },
}

impl Governed {
    fn refuse(error: ResponseError, message: String) -> Governed {
        Governed::Refuse {
            error,
            message,
            record_errors: Vec::new(),
        }
    }
}

/// The source of a batch, as dead-letter headers name it.
pub struct Source<'a> {
    pub topic: &'a str,
    pub metadata: &'a TopicMetadata,
    pub partition: i32,
    pub client_id: &'a str,
}

pub async fn govern(
    broker: &Broker,
    source: &Source<'_>,
    batch: Bytes,
    header: BatchHeader,
    timeout: Duration,
) -> Governed {
    let land = |batch| Governed::Land {
        batch,
        header,
        client_base: header.base_sequence,
    };
    let policy = match topic_config::schema_policy(&source.metadata.configs) {
        Ok(Some(p)) => p,
        Ok(None) => return land(batch),
        Err(e) => return Governed::refuse(ResponseError::InvalidRecord, e),
    };
    let started = Instant::now();
    let checked = match validate(broker, &policy, &batch).await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let metrics = &broker.metrics;
    metrics
        .validation_latency
        .observe(started.elapsed().as_secs_f64());
    metrics
        .records_validated
        .get_or_create(&TopicLabel {
            topic: source.topic.to_string(),
        })
        .inc_by(checked.records.len() as u64);
    if checked.is_valid() {
        return land(batch);
    }
    let counter = match policy.mode {
        Mode::Reject => &metrics.records_rejected,
        Mode::DeadLetter => &metrics.records_dead_lettered,
        Mode::Observe => &metrics.records_invalid_observed,
    };
    let count = || {
        for (_, why) in &checked.invalid {
            counter
                .get_or_create(&TopicReasonLabel {
                    topic: source.topic.to_string(),
                    reason: why.reason.label(),
                })
                .inc();
        }
    };
    match policy.mode {
        Mode::Observe => {
            count();
            land(batch)
        }
        Mode::Reject => {
            count();
            refusal(&policy, &checked)
        }
        Mode::DeadLetter => {
            let dead = rewrite::dead_letter_batch(
                &header,
                &checked,
                &Origin {
                    topic: source.topic,
                    topic_id: source.metadata.id,
                    partition: source.partition,
                    subject: &policy.subject,
                    client_id: source.client_id,
                },
            );
            let topic = policy.dead_letter_topic.as_deref().unwrap_or_default();
            let meta = broker.metadata.current();
            let fleet = (broker.engine.as_ref(), meta.as_ref(), broker.args.node_id);
            if let Err(e) = broker
                .dead_letters
                .write(fleet, topic, source.partition, dead, timeout)
                .await
            {
                return Governed::refuse(e.kafka_error(), e.to_string());
            }
            count();
            let batch = rewrite::valid_batch(&header, &checked)
                .unwrap_or_else(|| rewrite::sequence_marker(&header));
            match BatchHeader::parse(&batch) {
                Ok(h) => Governed::Land {
                    batch,
                    header: h,
                    client_base: header.base_sequence,
                },
                Err(e) => Governed::refuse(ResponseError::UnknownServerError, e.to_string()),
            }
        }
    }
}

/// Decodes and validates `batch`. A value naming a schema id this broker has not seen
/// yet (registered on another broker a moment ago), or a subject it does not know,
/// makes it re-read the registry once before deciding.
async fn validate(
    broker: &Broker,
    policy: &SchemaPolicy,
    batch: &Bytes,
) -> Result<CheckedBatch, Governed> {
    let mut refreshed = false;
    loop {
        let validator: Arc<Validator> = match broker.schemas.validator(policy) {
            Ok(v) => v,
            Err(e) if !refreshed && is_missing(&e) => {
                refreshed = true;
                broker.schemas.refresh_if_stale().await;
                continue;
            }
            Err(e) => {
                return Err(Governed::refuse(
                    ResponseError::InvalidRecord,
                    format!(
                        "the topic validates against subject {:?}: {e}",
                        policy.subject
                    ),
                ))
            }
        };
        let checked = check_batch(batch, &validator)
            .map_err(|e| Governed::refuse(ResponseError::CorruptMessage, e))?;
        let unknown = checked
            .invalid
            .iter()
            .any(|(_, why)| matches!(why.reason, Reason::UnknownId | Reason::WrongSubject));
        if unknown && !refreshed {
            refreshed = true;
            if broker.schemas.refresh_if_stale().await {
                continue;
            }
        }
        return Ok(checked);
    }
}

fn is_missing(e: &RegistryError) -> bool {
    matches!(e.error_code(), 40401..=40403)
}

/// INVALID_RECORD with KIP-467 per-record errors naming each invalid record's index and
/// reason; nothing of the batch lands.
fn refusal(policy: &SchemaPolicy, checked: &CheckedBatch) -> Governed {
    let describe = |index: usize, why: &sluice_schema::validate::Invalid| {
        format!("record {index}: {}: {}", why.reason.label(), why.detail)
    };
    let (first, why) = &checked.invalid[0];
    let message = format!(
        "{} of {} records failed validation against subject {:?}; first {}",
        checked.invalid.len(),
        checked.records.len(),
        policy.subject,
        describe(*first, why)
    );
    let record_errors = checked
        .invalid
        .iter()
        .take(MAX_RECORD_ERRORS)
        .map(|(index, why)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(*index as i32)
                .with_batch_index_error_message(Some(str_bytes(describe(*index, why))))
        })
        .collect();
    Governed::Refuse {
        error: ResponseError::InvalidRecord,
        message,
        record_errors,
    }
}
