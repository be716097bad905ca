//! The one table of APIs the broker implements. ApiVersions advertises exactly this table,
//! [`crate::decode_request`] refuses anything outside it, and metrics name APIs from it.

use kafka_protocol::messages::ApiKey;

/// One implemented API: the versions accepted and its name in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    /// snake_case of the key, e.g. `list_offsets`.
    pub name: &'static str,
}

const fn api(key: ApiKey, min: i16, max: i16, name: &'static str) -> Api {
    Api {
        key,
        min,
        max,
        name,
    }
}

/// Every API with a handler.
pub const SUPPORTED: &[Api] = &[
    api(ApiKey::Produce, 3, 11, "produce"),
    api(ApiKey::Fetch, 4, 17, "fetch"),
    api(ApiKey::ListOffsets, 1, 10, "list_offsets"),
    api(ApiKey::Metadata, 0, 12, "metadata"),
    api(ApiKey::ApiVersions, 0, 4, "api_versions"),
    api(ApiKey::CreateTopics, 2, 7, "create_topics"),
    api(ApiKey::DeleteTopics, 1, 6, "delete_topics"),
    api(ApiKey::DeleteRecords, 0, 2, "delete_records"),
    api(ApiKey::InitProducerId, 0, 4, "init_producer_id"),
    api(ApiKey::DescribeConfigs, 1, 4, "describe_configs"),
    api(ApiKey::CreatePartitions, 0, 3, "create_partitions"),
    api(ApiKey::AlterConfigs, 0, 2, "alter_configs"),
    api(
        ApiKey::IncrementalAlterConfigs,
        0,
        1,
        "incremental_alter_configs",
    ),
    api(ApiKey::DescribeCluster, 0, 1, "describe_cluster"),
    api(ApiKey::FindCoordinator, 0, 4, "find_coordinator"),
    api(ApiKey::JoinGroup, 0, 9, "join_group"),
    api(ApiKey::SyncGroup, 0, 5, "sync_group"),
    api(ApiKey::Heartbeat, 0, 4, "heartbeat"),
    api(ApiKey::LeaveGroup, 0, 5, "leave_group"),
    api(ApiKey::OffsetCommit, 2, 9, "offset_commit"),
    api(ApiKey::OffsetFetch, 1, 9, "offset_fetch"),
    api(ApiKey::OffsetDelete, 0, 0, "offset_delete"),
    api(ApiKey::DescribeGroups, 0, 5, "describe_groups"),
    api(ApiKey::ListGroups, 0, 5, "list_groups"),
    api(ApiKey::DeleteGroups, 0, 2, "delete_groups"),
    api(
        ApiKey::ConsumerGroupHeartbeat,
        0,
        1,
        "consumer_group_heartbeat",
    ),
    api(
        ApiKey::ConsumerGroupDescribe,
        0,
        1,
        "consumer_group_describe",
    ),
    api(
        ApiKey::OffsetForLeaderEpoch,
        2,
        4,
        "offset_for_leader_epoch",
    ),
    api(
        ApiKey::AlterPartitionReassignments,
        0,
        1,
        "alter_partition_reassignments",
    ),
    api(
        ApiKey::ListPartitionReassignments,
        0,
        0,
        "list_partition_reassignments",
    ),
    // v0 sends the SASL tokens as bare frames after the handshake; only the framed
    // SaslAuthenticate exchange (v1) is offered, as every current client uses it.
    api(ApiKey::SaslHandshake, 1, 1, "sasl_handshake"),
    api(ApiKey::SaslAuthenticate, 0, 2, "sasl_authenticate"),
    api(
        ApiKey::DescribeUserScramCredentials,
        0,
        0,
        "describe_user_scram_credentials",
    ),
    api(
        ApiKey::AlterUserScramCredentials,
        0,
        0,
        "alter_user_scram_credentials",
    ),
    api(ApiKey::DescribeAcls, 1, 3, "describe_acls"),
    api(ApiKey::CreateAcls, 1, 3, "create_acls"),
    api(ApiKey::DeleteAcls, 1, 3, "delete_acls"),
    api(ApiKey::DescribeClientQuotas, 0, 1, "describe_client_quotas"),
    api(ApiKey::AlterClientQuotas, 0, 1, "alter_client_quotas"),
];

/// The table's entry for `key`, if it is implemented at all.
pub fn find(key: ApiKey) -> Option<&'static Api> {
    SUPPORTED.iter().find(|api| api.key == key)
}

/// The supported version range of `key`, if it is implemented at all.
pub fn range(key: ApiKey) -> Option<(i16, i16)> {
    find(key).map(|api| (api.min, api.max))
}

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    range(key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The metrics name of `key`; `other` for an API outside the table.
pub fn name(key: ApiKey) -> &'static str {
    find(key).map_or("other", |api| api.name)
}

/// The highest version in both ranges (`(min, max)`), if they overlap.
pub fn negotiate(ours: (i16, i16), theirs: (i16, i16)) -> Option<i16> {
    let version = ours.1.min(theirs.1);
    (version >= ours.0.max(theirs.0)).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_one_the_codec_can_decode() {
        for Api { key, min, max, .. } in SUPPORTED {
            let codec = key.valid_versions();
            assert!(
                codec.min <= *min && *max <= codec.max,
                "{key:?} {min}..={max} outside codec range {}..={}",
                codec.min,
                codec.max
            );
        }
    }

    #[test]
    fn each_api_appears_once_named_after_its_key() {
        for (i, api) in SUPPORTED.iter().enumerate() {
            assert!(
                SUPPORTED[..i].iter().all(|a| a.key != api.key),
                "{:?} twice",
                api.key
            );
            let mut snake = String::new();
            for c in format!("{:?}", api.key).chars() {
                if c.is_ascii_uppercase() && !snake.is_empty() {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            assert_eq!(api.name, snake);
            assert_eq!(name(api.key), api.name);
        }
        assert_eq!(name(ApiKey::EndTxn), "other");
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate((0, 3), (0, 4)), Some(3));
        assert_eq!(negotiate((2, 7), (1, 5)), Some(5));
        assert_eq!(negotiate((5, 7), (0, 4)), None);
        assert_eq!(negotiate((0, 0), (0, 0)), Some(0));
    }
}
