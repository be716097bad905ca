//! DeleteRecords: moves a partition's log start offset up, as led here.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::led_partition;
use crate::server::Broker;

pub async fn handle(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
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
