//! The registry's one error type. Each kind carries Confluent's error code and HTTP status,
//! so the REST layer answers `{"error_code": N, "message": "..."}` exactly as Confluent does.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(i32),
    #[error("Schema {0} not found")]
    SchemaIdNotFound(i32),
    /// A lookup by content found no matching version under an existing subject.
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// The messages name each rule the schema breaks (see `compat`).
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("{0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    /// The schemas handed to a validator cannot validate the chosen format.
    #[error("cannot validate with these schemas: {0}")]
    Unusable(String),
    #[error("{0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's error code for the JSON error body.
    pub fn error_code(&self) -> i32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaIdNotFound(_) | RegistryError::SchemaNotFound => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(..) => 40406,
            RegistryError::VersionNotSoftDeleted(..) => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            // Confluent answered 409 for years; only its newest releases say 40901.
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) | RegistryError::Unusable(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibility => 42203,
            RegistryError::Store(_) => 50001,
        }
    }

    /// The HTTP status: the first three digits of the error code.
    pub fn http_status(&self) -> u16 {
        let code = self.error_code();
        let status = if code >= 10_000 { code / 100 } else { code };
        status as u16
    }
}
