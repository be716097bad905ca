//! A small Kafka admin client over the wire protocol (kafka-protocol crate): what the
//! operator needs to manage topics, read offsets and consumer lag, and manage a secured
//! cluster's ACLs and SCRAM credentials, over TLS and SASL/SCRAM when the listener asks.

mod acls;
mod admin;
mod conn;
mod scram;

pub use admin::{
    partition_lags, topic_lag, AdminClient, ConfigEntry, ConfigOp, GroupOffsets, TopicDescription,
};
pub use conn::{connect, ClientSecurity, Conn, ScramLogin, TlsClient, CLIENT_VERSIONS};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// What went wrong talking to a broker: which broker, which call.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Client(#[from] sluice_protocol::client::ClientError),
    #[error("{api} on {resource}: {}{}", error_name(*code), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        api: String,
        resource: String,
        code: i16,
        message: Option<String>,
    },
    #[error("{0}")]
    Metadata(String),
    /// The broker refused the login or its certificate was refused, or the TLS settings
    /// cannot be used: retrying will not help.
    #[error(transparent)]
    Refused(sluice_protocol::client::ConnectError),
}

/// Transport problems stay `Client` (transient or not as they are); refusals keep the
/// shared client's own error, so callers and tests tell them apart.
impl From<sluice_protocol::client::ConnectError> for AdminError {
    fn from(e: sluice_protocol::client::ConnectError) -> Self {
        match e {
            sluice_protocol::client::ConnectError::Client(e) => AdminError::Client(e),
            refused => AdminError::Refused(refused),
        }
    }
}

impl AdminError {
    pub(crate) fn kafka(api: ApiKey, resource: &str, code: i16, message: Option<String>) -> Self {
        AdminError::Kafka {
            api: format!("{api:?}"),
            resource: resource.to_string(),
            code,
            message,
        }
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            AdminError::Kafka { code, .. } => ResponseError::try_from_code(*code),
            _ => None,
        }
    }

    /// Transport problems (the broker may be restarting): worth a retry soon.
    pub fn is_transient(&self) -> bool {
        match self {
            AdminError::Client(e) => e.is_transient(),
            AdminError::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }
}

pub(crate) fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error code {code}"),
    }
}
