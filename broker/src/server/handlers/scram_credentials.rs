//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554), as
//! `kafka-configs.sh --entity-type users --alter --add-config 'SCRAM-SHA-256=[...]'`
//! uses them. The rules are in `security::credentials`; a change is one
//! compare-and-swap of the security document, seen by every broker at its next poll.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;
use tracing::info;

use super::{str_bytes, Client};
use crate::security::credentials::{self, CredentialError, Deletion, Upsertion};
use crate::server::Broker;
use crate::storage::StorageError;

fn error_code(e: &CredentialError) -> ResponseError {
    match e {
        CredentialError::Unacceptable(_) => ResponseError::UnacceptableCredential,
        CredentialError::UnknownMechanism => ResponseError::UnsupportedSaslMechanism,
        CredentialError::NotFound(_) => ResponseError::ResourceNotFound,
        CredentialError::Duplicate(_) => ResponseError::DuplicateResource,
    }
}

pub fn describe(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // Null and empty both mean every user (Kafka's rule; librdkafka sends empty).
    let users: Option<Vec<String>> = req
        .users
        .filter(|u| !u.is_empty())
        .map(|u| u.into_iter().map(|n| n.name.to_string()).collect());
    let state = broker.security.store.current();
    let results = credentials::describe(&state, users.as_deref())
        .into_iter()
        .map(|(user, result)| {
            let r = DescribeUserScramCredentialsResult::default()
                .with_user(str_bytes(user))
                .with_error_message(None);
            match result {
                Ok(infos) => r.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(m, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(m.kafka_type())
                                .with_iterations(iterations as i32)
                        })
                        .collect(),
                ),
                Err(e) => r
                    .with_error_code(error_code(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default()
        .with_error_message(None)
        .with_results(results)
}

pub async fn alter(
    broker: &Broker,
    client: &Client,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions: Vec<Deletion> = req
        .deletions
        .iter()
        .map(|d| Deletion {
            user: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions: Vec<Upsertion> = req
        .upsertions
        .iter()
        .map(|u| Upsertion {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    let mut outcome = None;
    let written = broker
        .security
        .store
        .update_if(|state| {
            let (changed, results) = credentials::alter(state, &deletions, &upsertions);
            outcome = Some(results);
            Ok::<_, StorageError>(changed.then_some(()))
        })
        .await;
    let results = match written {
        Ok(_) => outcome.unwrap_or_default(),
        // The bucket refused or failed: nothing changed for anyone.
        Err(e) => {
            let mut users: Vec<String> = Vec::new();
            for u in deletions
                .iter()
                .map(|d| &d.user)
                .chain(upsertions.iter().map(|u| &u.user))
            {
                if !users.contains(u) {
                    users.push(u.clone());
                }
            }
            let message = format!("the credential store could not be updated: {e}");
            return AlterUserScramCredentialsResponse::default().with_results(
                users
                    .into_iter()
                    .map(|u| {
                        AlterUserScramCredentialsResult::default()
                            .with_user(str_bytes(u))
                            .with_error_code(ResponseError::UnknownServerError.code())
                            .with_error_message(Some(str_bytes(message.clone())))
                    })
                    .collect(),
            );
        }
    };
    let results = results
        .into_iter()
        .map(|(user, r)| {
            info!(target: "sluice::audit", event = "scram_credentials_altered",
                principal = %client.principal, source = %client.host, %user,
                result = %r.as_ref().map_or_else(|e| e.to_string(), |()| "ok".into()));
            let res = AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(user))
                .with_error_message(None);
            match r {
                Ok(()) => res,
                Err(e) => res
                    .with_error_code(error_code(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
