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
    /// The broker refused the login (wrong password, unknown user, mechanism not
    /// offered) or could not prove it knows the credential. Retrying will not help.
    #[error("SASL login as {user:?} to {addr} failed: {reason}")]
    Authentication {
        addr: String,
        user: String,
        reason: String,
    },
    /// The TLS handshake failed: the broker's certificate is not trusted or does not
    /// name it, or the broker refused us.
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    /// The TLS settings cannot be used (a CA bundle without certificates, a bad name).
    #[error("TLS client settings: {0}")]
    TlsSettings(String),
}

/// The security errors of the shared client keep their own variants here: callers
/// (and tests) tell a refused login or certificate from a transport problem.
impl From<sluice_protocol::client::ConnectError> for AdminError {
    fn from(e: sluice_protocol::client::ConnectError) -> Self {
        use sluice_protocol::client::ConnectError;
        match e {
            ConnectError::Client(e) => AdminError::Client(e),
            ConnectError::Authentication { addr, user, reason } => {
                AdminError::Authentication { addr, user, reason }
            }
            ConnectError::Tls { addr, reason } => AdminError::Tls { addr, reason },
            ConnectError::TlsSettings(reason) => AdminError::TlsSettings(reason),
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
