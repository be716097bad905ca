//! The names of the topic configs Sluice adds to Kafka's, shared by the broker (which
//! honours them) and the operator (which sets them from a Feed's `spec.schema` and
//! `spec.table`). Their values and defaults: `docs/schema-validation.md`, `docs/lake.md`.

pub const SCHEMA_SUBJECT: &str = "sluice.schema.subject";
pub const SCHEMA_FORMAT: &str = "sluice.schema.format";
pub const SCHEMA_LEVEL: &str = "sluice.schema.level";
pub const SCHEMA_MODE: &str = "sluice.schema.mode";
pub const SCHEMA_VERSION: &str = "sluice.schema.version";
pub const DEAD_LETTER_TOPIC: &str = "sluice.dead.letter.topic";

/// A Feed's Iceberg table (`docs/lake.md`): whether records land in a table, which one,
/// how it is partitioned and how often a commit is made.
pub const TABLE_ENABLED: &str = "sluice.table.enabled";
pub const TABLE_NAMESPACE: &str = "sluice.table.namespace";
pub const TABLE_NAME: &str = "sluice.table.name";
pub const TABLE_MODE: &str = "sluice.table.mode";
pub const TABLE_PARTITIONING: &str = "sluice.table.partitioning";
pub const TABLE_COMMIT_INTERVAL_MS: &str = "sluice.table.commit.interval.ms";
pub const TABLE_TARGET_FILE_BYTES: &str = "sluice.table.target.file.bytes";
pub const TABLE_GENERATION: &str = "sluice.table.generation";
/// How often the table's upkeep runs (compaction, snapshot expiry).
pub const TABLE_MAINTENANCE_INTERVAL_MS: &str = "sluice.table.maintenance.interval.ms";

/// The feed's approved replays (`crate::replay`), set by the operator.
pub const TABLE_REPLAYS: &str = "sluice.table.replays";
/// The team that owns the feed (`Feed.spec.owner.team`), set by the operator; named in
/// evidence reports.
pub const FEED_OWNER: &str = "sluice.feed.owner";

/// The table configs.
pub const TABLE_ALL: [&str; 9] = [
    TABLE_ENABLED,
    TABLE_NAMESPACE,
    TABLE_NAME,
    TABLE_MODE,
    TABLE_PARTITIONING,
    TABLE_COMMIT_INTERVAL_MS,
    TABLE_TARGET_FILE_BYTES,
    TABLE_GENERATION,
    TABLE_MAINTENANCE_INTERVAL_MS,
];

/// The validation configs.
pub const ALL: [&str; 6] = [
    SCHEMA_SUBJECT,
    SCHEMA_FORMAT,
    SCHEMA_LEVEL,
    SCHEMA_MODE,
    SCHEMA_VERSION,
    DEAD_LETTER_TOPIC,
];
