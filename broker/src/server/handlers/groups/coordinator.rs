//! FindCoordinator: the coordinator of a group is the leader of its offsets partition;
//! the offsets topic is created on the first lookup. Transactions have no coordinator
//! yet.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::coordination::groups::offsets::OFFSETS_TOPIC;
use crate::coordination::groups::offsets_topic;
use crate::server::handlers::str_bytes;
use crate::server::{fleet, Broker};

const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator v4 batches keys.
const BATCHED_VERSION: i16 = 4;

pub async fn find(
    broker: &Broker,
    version: i16,
    listener: &str,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let created = if req.key_type == KEY_TYPE_GROUP {
        offsets_topic::ensure(
            &broker.topics,
            &broker.metadata,
            broker.groups(),
            fleet::lead_new_topic(broker, OFFSETS_TOPIC),
        )
        .await
        .map(|_| ())
    } else {
        Ok(())
    };
    let answer = |key: StrBytes| -> Coordinator {
        let c = Coordinator::default().with_key(key);
        if req.key_type != KEY_TYPE_GROUP {
            return c
                .with_node_id((-1).into())
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("transactions are not supported yet")));
        }
        if let Err(e) = &created {
            return c
                .with_node_id((-1).into())
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes(format!("offsets topic: {e}"))));
        }
        let meta = broker.metadata.current();
        let p = broker.groups().partition_for(&c.key);
        let coordinator = offsets_topic::coordinator_of(&meta, p)
            .and_then(|(id, n)| n.endpoint(listener).map(|e| (id, e)));
        match coordinator {
            Some((id, e)) => c
                .with_node_id(id.into())
                .with_host(str_bytes(e.host))
                .with_port(e.port),
            None => c
                .with_node_id((-1).into())
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("the group's coordinator is moving"))),
        }
    };
    if version >= BATCHED_VERSION {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| answer(k.clone()))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = answer(req.key.clone());
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
