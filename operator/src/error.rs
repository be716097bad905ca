//! The operator library's one error type.

use crate::kafka::AdminError;
use crate::provision::ProvisionError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A Kafka admin call against a cluster failed.
    #[error("cluster {cluster}: {source}")]
    Admin {
        cluster: String,
        #[source]
        source: AdminError,
    },
    /// A Feed's ACLs or credentials could not be brought to its spec.
    #[error("access of Feed {feed}: {reason}")]
    Access { feed: String, reason: String },
    /// Scraping a broker's metrics failed.
    #[error("scraping {url}: {reason}")]
    Scrape { url: String, reason: String },
    /// The finalizer helper failed (adding or removing the finalizer, or the cleanup).
    #[error("finalizer of {name}: {source}")]
    Finalizer {
        name: String,
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
    /// An object lacks something every stored object has (a namespace, a name).
    #[error("{0}")]
    MissingField(String),
    /// Provisioning cloud resources failed (the source names the call and resource).
    #[error("cluster {cluster}: {source}")]
    Provision {
        cluster: String,
        #[source]
        source: ProvisionError,
    },
    /// A deleted cluster's brokers still run: cloud resources wait until they are gone.
    #[error("cluster {0}: waiting for the brokers to stop before removing cloud resources")]
    WaitingForBrokers(String),
}

impl Error {
    /// A short label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Admin { .. } => "kafka_admin",
            Error::Access { .. } => "access",
            Error::Scrape { .. } => "scrape",
            Error::Finalizer { .. } => "finalizer",
            Error::MissingField(_) => "missing_field",
            Error::Provision { .. } => "provision",
            Error::WaitingForBrokers(_) => "waiting_for_brokers",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.kube("apply", "StatefulSet", name)` on a kube result: the error says which call and
/// which object.
pub trait KubeContext<T> {
    fn kube(self, action: &'static str, kind: &'static str, name: &str) -> Result<T>;
}

impl<T> KubeContext<T> for std::result::Result<T, kube::Error> {
    fn kube(self, action: &'static str, kind: &'static str, name: &str) -> Result<T> {
        self.map_err(|source| Error::Kube {
            action,
            kind,
            name: name.to_string(),
            source,
        })
    }
}
