//! Every API in `sluice_protocol::versions::SUPPORTED` reaches a handler through
//! [`super::dispatch`] at its lowest and highest version, decoded as a connection does.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use futures::FutureExt;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;
use sluice_protocol::frame::SIZE_LEN;
use sluice_protocol::versions::SUPPORTED;
use sluice_protocol::{decode_request, encode_request};

use super::{dispatch, Client};
use crate::config::BrokerArgs;
use crate::coordination::metadata::Endpoint;
use crate::metrics::Metrics;
use crate::security::Principal;
use crate::server::startup;

/// A default request of `key` as `version`, without the size prefix; `None` for a key
/// this list lacks (add it when the table grows).
fn default_request(key: ApiKey, version: i16) -> Option<Bytes> {
    fn encode<R: Request + Default>(version: i16) -> Bytes {
        encode_request(&R::default(), version, 1, None)
            .unwrap_or_else(|e| panic!("a default request encodes: {e}"))
            .slice(SIZE_LEN..)
    }
    macro_rules! by_key {
        ($($key:ident => $request:ty),* $(,)?) => {
            match key {
                $(ApiKey::$key => Some(encode::<$request>(version)),)*
                _ => None,
            }
        };
    }
    by_key!(
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest,
        DescribeConfigs => DescribeConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        DescribeCluster => DescribeClusterRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        SyncGroup => SyncGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        OffsetDelete => OffsetDeleteRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
        ListPartitionReassignments => ListPartitionReassignmentsRequest,
        SaslHandshake => SaslHandshakeRequest,
        SaslAuthenticate => SaslAuthenticateRequest,
        DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
        AlterUserScramCredentials => AlterUserScramCredentialsRequest,
        DescribeAcls => DescribeAclsRequest,
        CreateAcls => CreateAclsRequest,
        DeleteAcls => DeleteAclsRequest,
        DescribeClientQuotas => DescribeClientQuotasRequest,
        AlterClientQuotas => AlterClientQuotasRequest,
    )
}

#[tokio::test]
async fn every_supported_api_is_dispatched_to_a_handler() {
    let args = BrokerArgs::try_parse_from(["sluice-broker", "--storage=memory://"]).unwrap();
    let main = Endpoint {
        host: "localhost".into(),
        port: 9092,
    };
    let listeners = vec![("PLAINTEXT".to_string(), main)];
    let broker = startup::start(args, listeners, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let client = Client {
        id: "dispatch-test".into(),
        host: "/127.0.0.1".into(),
        principal: Principal::anonymous(),
        listener: "PLAINTEXT".into(),
        address: "127.0.0.1".parse().unwrap(),
    };
    for api in SUPPORTED {
        for version in [api.min, api.max] {
            let frame = default_request(api.key, version)
                .unwrap_or_else(|| panic!("no default request for {:?}", api.key));
            let request = decode_request(frame)
                .unwrap_or_else(|e| panic!("{:?} v{version} decodes: {e}", api.key));
            // Only the routing is checked: the reply future is dropped unfinished.
            let routed = AssertUnwindSafe(dispatch(broker.clone(), request, client.clone()))
                .catch_unwind()
                .await;
            assert!(
                routed.is_ok(),
                "{:?} v{version} is in the table of supported APIs but has no handler",
                api.key
            );
        }
    }
}
