use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::DescribeClusterRequest;
use kafka_protocol::messages::DescribeClusterResponse;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::server::Broker;

/// Endpoint type 1: brokers (2 would be controllers, which clients cannot reach here).
const BROKER_ENDPOINTS: i8 = 1;

pub fn describe(broker: &Broker, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let node = broker.args.node_id;
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.metadata.current().cluster_id.clone()))
        .with_controller_id(node.into())
        .with_endpoint_type(BROKER_ENDPOINTS)
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != BROKER_ENDPOINTS {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints are served")));
    }
    resp.with_brokers(vec![DescribeClusterBroker::default()
        .with_broker_id(node.into())
        .with_host(str_bytes(broker.advertised_host.clone()))
        .with_port(broker.advertised_port)])
}
