//! DescribeClientQuotas and AlterClientQuotas (KIP-546), as `kafka-configs.sh
//! --entity-type users|clients` uses them. The model and its rules are
//! `security::quotas`; an alteration is one compare-and-swap of the security document.

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntityData, EntryData as AlterEntryData,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::ResponseError;
use tracing::info;

use super::{str_bytes, Client};
use crate::security::quotas::{self, EntityName, Filter, Match, Op, QuotaEntity};
use crate::server::Broker;
use crate::storage::StorageError;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

fn entity_parts(e: &QuotaEntity) -> Vec<(&'static str, Option<String>)> {
    let name = |n: &EntityName| match n {
        EntityName::Default => None,
        EntityName::Named(s) => Some(s.clone()),
    };
    [(quotas::USER, &e.user), (quotas::CLIENT_ID, &e.client_id)]
        .into_iter()
        .filter_map(|(kind, n)| n.as_ref().map(|n| (kind, name(n))))
        .collect()
}

pub fn describe(broker: &Broker, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let mut filters = Vec::new();
    for c in &req.components {
        let matching = match (c.match_type, &c._match) {
            (MATCH_EXACT, Some(name)) => Match::Exact(name.to_string()),
            (MATCH_DEFAULT, _) => Match::Default,
            (MATCH_SPECIFIED, _) => Match::Specified,
            (t, _) => {
                return DescribeClientQuotasResponse::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!(
                        "match type {t} needs a name or is unknown"
                    ))))
            }
        };
        filters.push(Filter {
            kind: c.entity_type.to_string(),
            matching,
        });
    }
    let state = broker.security.store.current();
    let entries = quotas::describe(&state.quotas, &filters, req.strict)
        .into_iter()
        .map(|q| {
            EntryData::default()
                .with_entity(
                    entity_parts(&q.entity)
                        .into_iter()
                        .map(|(kind, name)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(kind))
                                .with_entity_name(name.map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    q.values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries))
}

pub async fn alter(
    broker: &Broker,
    client: &Client,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    // Each entry is checked on its own; the valid ones are applied in one swap.
    let mut checked = Vec::new();
    for entry in &req.entries {
        let parts: Vec<(String, Option<String>)> = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        let ops: Vec<Op> = entry
            .ops
            .iter()
            .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
            .collect();
        let result = quotas::entity(&parts).and_then(|e| quotas::validate(&ops).map(|()| e));
        checked.push((entry, result, ops));
    }
    let mut stored = Ok(None);
    if !req.validate_only {
        stored = broker
            .security
            .store
            .update_if(|state| {
                let mut changed = false;
                for (_, result, ops) in &checked {
                    if let Ok(entity) = result {
                        changed |= quotas::alter(&mut state.quotas, entity, ops);
                    }
                }
                Ok::<_, StorageError>(changed.then_some(()))
            })
            .await;
    }
    let entries = checked
        .into_iter()
        .map(|(entry, result, ops)| {
            let out = AlterEntryData::default()
                .with_error_message(None)
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            AlterEntityData::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                );
            let error = match (&result, &stored) {
                (Err(e), _) => Some((ResponseError::InvalidRequest, e.to_string())),
                (Ok(_), Err(e)) => Some((
                    ResponseError::UnknownServerError,
                    format!("the quota store could not be updated: {e}"),
                )),
                (Ok(_), Ok(_)) => None,
            };
            if !req.validate_only {
                info!(target: "sluice::audit", event = "client_quotas_altered",
                    principal = %client.principal, source = %client.host,
                    entity = ?result.as_ref().ok(), ?ops,
                    result = %error.as_ref().map_or("ok".to_string(), |e| e.1.clone()));
            }
            match error {
                None => out,
                Some((code, message)) => out
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
