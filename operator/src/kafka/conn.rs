//! The operator's Kafka connection: the shared client connection of `sluice-protocol`,
//! with the operator's client id and the API versions its admin client implements.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use sluice_protocol::client::{self, ClientSpec};

use super::AdminError;

#[cfg(test)]
use sluice_protocol::versions;

const CLIENT_ID: &str = "sluice-operator";

/// The versions this client implements for each API it uses, the one place its request
/// versions come from: the highest version both sides support is used.
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 9, 12),
    (ApiKey::CreateTopics, 5, 7),
    (ApiKey::CreatePartitions, 2, 3),
    (ApiKey::DeleteTopics, 4, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::AlterPartitionReassignments, 0, 0),
];

pub use client::Conn;

/// Connects to `addr` (`host:port`) as the operator.
pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, AdminError> {
    Ok(Conn::connect(
        addr,
        timeout,
        ClientSpec {
            client_id: CLIENT_ID,
            versions: CLIENT_VERSIONS,
        },
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_range_can_be_encoded_and_meets_the_sluice_broker() {
        for (key, min, max) in CLIENT_VERSIONS {
            let codec = key.valid_versions();
            assert!(
                codec.min <= *min && *max <= codec.max,
                "{key:?} {min}..={max}"
            );
            let broker = versions::range(*key).expect("the Sluice broker implements it");
            assert!(
                versions::negotiate((*min, *max), broker).is_some(),
                "{key:?} {min}..={max} misses the broker's {broker:?}"
            );
        }
    }
}
