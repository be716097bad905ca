//! `Feed.spec.access` and `Feed.status.access`: who may write and read a feed's topic,
//! declared in Git and turned by the operator into Kafka ACLs and SCRAM credentials.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who may produce to and consume from the feed's topic, on a cluster whose kafka
/// listener authenticates clients. The operator makes exactly the ACLs this declares,
/// removes the ones it made that are no longer declared, and never touches ACLs it did
/// not make. Absent: the operator makes none (and removes the ones it made).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// Principals that write the topic: WRITE and DESCRIBE on it (idempotent producers
    /// included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub producers: Vec<Producer>,
    /// Principals that read the topic: READ and DESCRIBE on it, and READ on their
    /// consumer groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub consumers: Vec<Consumer>,
}

/// A writer of the feed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Producer {
    /// The principal's name, without `User:`: a SCRAM user, or the subject of a client
    /// certificate (`CN=collector,O=soc`).
    #[schemars(length(min = 1, max = 256))]
    pub user: String,
    /// `scram`: the operator creates the user's SCRAM-SHA-512 credential in the cluster
    /// and a Secret `<cluster>-user-<user>` in this namespace with `username`, `password`,
    /// `sasl.jaas.config`, `bootstrap.servers`, `security.protocol`, `sasl.mechanism` and
    /// `ca.crt` for a Deployment to mount. Annotate that Secret with
    /// `sluice.dev/rotate=<anything new>` to get a new password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
}

/// A reader of the feed and the consumer groups it may use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Consumer {
    /// The principal's name, without `User:` (see `producers`).
    #[schemars(length(min = 1, max = 256))]
    pub user: String,
    /// As for `producers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Consumer groups the principal may join and commit in. A group (or prefix) belongs
    /// to one Feed of a cluster: a second Feed claiming it is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub groups: Vec<GroupPattern>,
}

/// A consumer group by name or by prefix.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.name) != has(self.prefix)").message("a group is given by exactly one of name or prefix"))]
#[serde(rename_all = "camelCase")]
pub struct GroupPattern {
    /// One group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub name: Option<String>,
    /// Every group whose name starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub prefix: Option<String>,
}

/// Credentials the operator makes for a principal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Credentials {
    /// A SCRAM-SHA-512 password, generated.
    Scram,
}

/// What the operator made for `spec.access`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessStatus {
    /// The ACLs the operator made for this Feed and keeps: the only ones it ever removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<AclEntry>,
    /// ACLs on the feed's topic or its groups that the operator did not make (by hand,
    /// or another tool): left alone, listed so that a review sees them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged_acls: Vec<AclEntry>,
    /// Declared ACLs found missing from the cluster (removed by hand) and put back by
    /// the last reconcile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<AclEntry>,
    /// The credentials Secrets of the principals with `credentials: scram`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialStatus>,
}

/// One ACL as Kafka's tools print it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclEntry {
    /// `User:<name>`.
    pub principal: String,
    /// `READ`, `WRITE`, `DESCRIBE`, ….
    pub operation: String,
    /// `TOPIC` or `GROUP`.
    pub resource_type: String,
    /// `LITERAL` or `PREFIXED`.
    pub pattern_type: String,
    pub resource_name: String,
}

/// A principal's generated credential.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    pub user: String,
    /// The Secret holding it, in the Feed's namespace.
    pub secret_name: String,
}
