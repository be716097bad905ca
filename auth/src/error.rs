//! Error types. Messages never echo the client's bytes: they end up in logs and in
//! SaslAuthenticate responses, and the input is untrusted.

use thiserror::Error;

/// Why a SASL exchange was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SaslError {
    /// The message does not follow the mechanism's grammar.
    #[error("malformed SASL message: {0}")]
    Malformed(String),
    /// A well-formed request for something the broker does not offer (channel binding,
    /// delegation tokens, impersonation through an authorization id).
    #[error("unsupported SASL feature: {0}")]
    Unsupported(String),
    /// Wrong password and unknown user alike, so the two cannot be told apart. The text is
    /// Kafka's, which clients show to users.
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism")]
    AuthenticationFailed,
    /// A message or a name over its bound.
    #[error("SASL message or name too large")]
    TooLarge,
}

/// Why `ssl.principal.mapping.rules` was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MappingError {
    /// The rule does not follow `DEFAULT` or `RULE:pattern/replacement/[LU]`.
    #[error("invalid principal mapping rule `{rule}`: {reason}")]
    InvalidRule { rule: String, reason: String },
    /// The rule's pattern is not a regular expression this crate accepts.
    #[error("invalid pattern in principal mapping rule `{rule}`: {source}")]
    Regex {
        rule: String,
        #[source]
        source: regex::Error,
    },
}
