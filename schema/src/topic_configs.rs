//! The names of the topic configs that turn validation on for a topic, shared by the
//! broker (which honours them) and the operator (which sets them from a Feed's
//! `spec.schema`). Their values and defaults: `docs/schema-validation.md`.

pub const SCHEMA_SUBJECT: &str = "sluice.schema.subject";
pub const SCHEMA_FORMAT: &str = "sluice.schema.format";
pub const SCHEMA_LEVEL: &str = "sluice.schema.level";
pub const SCHEMA_MODE: &str = "sluice.schema.mode";
pub const SCHEMA_VERSION: &str = "sluice.schema.version";
pub const DEAD_LETTER_TOPIC: &str = "sluice.dead.letter.topic";

/// All of them.
pub const ALL: [&str; 6] = [
    SCHEMA_SUBJECT,
    SCHEMA_FORMAT,
    SCHEMA_LEVEL,
    SCHEMA_MODE,
    SCHEMA_VERSION,
    DEAD_LETTER_TOPIC,
];
