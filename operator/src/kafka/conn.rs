//! The operator's Kafka connection: the shared secure client connection of
//! `sluice-protocol` (TLS for SSL and SASL_SSL listeners, a SASL/SCRAM login for SASL_*
//! ones), with the operator's client id and the API versions its admin client
//! implements.

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
    // v0 would send the SASL tokens as bare frames; v1 frames them in SaslAuthenticate.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // v1 is the first with pattern types (KIP-290).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

const SPEC: ClientSpec = ClientSpec {
    client_id: CLIENT_ID,
    versions: CLIENT_VERSIONS,
};

pub use client::{ClientSecurity, Conn, ScramLogin, TlsClient};

/// Connects to `addr` (`host:port`) as the operator: TCP, then TLS and the SASL login
/// when `security` asks for them. The whole of it is bounded by `timeout`.
pub async fn connect(
    addr: &str,
    timeout: Duration,
    security: &ClientSecurity,
) -> Result<Conn, AdminError> {
    Ok(client::connect(addr, timeout, SPEC, security).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::client::ConnectError;

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

    #[test]
    fn a_bad_ca_bundle_is_a_settings_error() {
        let err = AdminError::from(TlsClient::from_ca_pem(b"not a certificate").unwrap_err());
        assert!(
            matches!(err, AdminError::Refused(ConnectError::TlsSettings(_))),
            "{err}"
        );
        assert!(!err.is_transient());
    }
}
