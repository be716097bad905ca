//! DeleteRecords and InitProducerId.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, InitProducerIdRequest, InitProducerIdResponse,
};
use kafka_protocol::ResponseError;
use tracing::warn;

use super::led_partition;
use crate::server::Broker;

pub async fn delete(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let meta = broker.metadata.current();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = meta.topics.get(t.name.0.as_str());
        let mut partitions = Vec::new();
        for p in t.partitions {
            let r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            partitions.push(match led_partition(broker, topic, p.partition_index) {
                Err(e) => r.with_error_code(e.code()),
                Ok(part) => match broker.engine.delete_records(&part, p.offset).await {
                    Ok(low) => r.with_low_watermark(low),
                    Err(e) => r.with_error_code(e.kafka_error().code()),
                },
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Idempotent producers get a fresh id at epoch 0. Transactions are not implemented.
pub async fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    match broker.producer_ids.next().await {
        Ok(id) => resp.with_producer_id(id.into()).with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "could not allocate a producer id");
            resp.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
