//! DescribeCluster: the live brokers and the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::DescribeClusterRequest;
use kafka_protocol::messages::DescribeClusterResponse;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::server::Broker;

/// Endpoint type 1: brokers (2 would be controllers, which clients cannot reach here).
const BROKER_ENDPOINTS: i8 = 1;

pub fn describe(
    broker: &Broker,
    listener: &str,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let meta = broker.metadata.current();
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(meta.cluster_id.clone()))
        .with_controller_id(meta.controller_id().into())
        .with_endpoint_type(BROKER_ENDPOINTS)
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != BROKER_ENDPOINTS {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints are served")));
    }
    resp.with_brokers(
        meta.live_endpoints(listener)
            .map(|(id, e)| {
                DescribeClusterBroker::default()
                    .with_broker_id(id.into())
                    .with_host(str_bytes(e.host))
                    .with_port(e.port)
            })
            .collect(),
    )
}
