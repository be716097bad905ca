//! The errors of the storage engine, and the Kafka error code each one answers.

use kafka_protocol::ResponseError;
use thiserror::Error;

/// Errors of the storage engine. Each says which object or partition it concerns.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("object store {op} of {path} failed: {source}")]
    Object {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("invalid storage URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("corrupt object {path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("fenced: {0}")]
    Fenced(String),
    #[error("partition {0} is not led by this broker")]
    NotLeader(String),
    #[error("offset {offset} is outside [{start}, {end}] of partition {partition}")]
    OffsetOutOfRange {
        partition: String,
        offset: i64,
        start: i64,
        end: i64,
    },
    #[error("recovery of {partition} found offset {found}, expected {expected}")]
    Gap {
        partition: String,
        expected: i64,
        found: i64,
    },
    #[error("producer {producer_id} epoch {epoch} is older than {current}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id} sequence {got} does not follow {last}")]
    OutOfOrderSequence {
        producer_id: i64,
        got: i32,
        last: i32,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("broker is shutting down")]
    ShuttingDown,
}

impl StorageError {
    pub fn object(op: &'static str, path: impl ToString, source: object_store::Error) -> Self {
        StorageError::Object {
            op,
            path: path.to_string(),
            source,
        }
    }

    pub fn corrupt(path: impl ToString, reason: impl ToString) -> Self {
        StorageError::Corrupt {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The Kafka error a client should see for this failure.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            StorageError::NotLeader(_) | StorageError::Fenced(_) | StorageError::ShuttingDown => {
                ResponseError::NotLeaderOrFollower
            }
            StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            StorageError::ProducerFenced { .. } => ResponseError::InvalidProducerEpoch,
            StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            StorageError::Timeout(_) => ResponseError::RequestTimedOut,
            StorageError::Corrupt { .. } => ResponseError::KafkaStorageError,
            StorageError::Object { .. }
            | StorageError::Gap { .. }
            | StorageError::BadUrl { .. } => ResponseError::KafkaStorageError,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
