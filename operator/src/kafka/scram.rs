//! SCRAM credentials through DescribeUserScramCredentials and AlterUserScramCredentials
//! (KIP-554, `kafka-configs.sh --entity-type users`). The password never leaves the
//! operator: it sends a random salt and Hi(password, salt, iterations), derived with
//! `sluice_auth`, the code the broker checks logins with.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::ResponseError;
use sluice_auth::scram::{random_salt, salted_password};
use sluice_auth::Mechanism;

use super::admin::{str_bytes, AdminClient};
use super::AdminError;

impl AdminClient {
    /// The SCRAM mechanisms each of `users` has a credential for (every user that has
    /// one when `users` is empty). A user without credentials is absent from the map.
    pub async fn describe_scram_users(
        &mut self,
        users: &[String],
    ) -> Result<BTreeMap<String, Vec<Mechanism>>, AdminError> {
        // A name asked for twice is an error for that name: ask once.
        let unique: BTreeSet<&String> = users.iter().collect();
        let request = DescribeUserScramCredentialsRequest::default().with_users(
            (!unique.is_empty()).then(|| {
                unique
                    .iter()
                    .map(|u| UserName::default().with_name(str_bytes(u)))
                    .collect()
            }),
        );
        let (response, _) = self.bootstrap.call(&request).await?;
        if response.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::DescribeUserScramCredentials,
                "SCRAM credentials",
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        let mut out = BTreeMap::new();
        for r in response.results {
            match ResponseError::try_from_code(r.error_code) {
                None => {}
                Some(ResponseError::ResourceNotFound) => continue,
                Some(_) => {
                    return Err(AdminError::kafka(
                        ApiKey::DescribeUserScramCredentials,
                        r.user.as_str(),
                        r.error_code,
                        r.error_message.map(|m| m.to_string()),
                    ))
                }
            }
            // A mechanism newer than this client cannot be managed by it: left out.
            let mechanisms = r
                .credential_infos
                .iter()
                .filter_map(|c| Mechanism::from_kafka_type(c.mechanism))
                .collect();
            out.insert(r.user.to_string(), mechanisms);
        }
        Ok(out)
    }

    /// Sets `user`'s credential for `mechanism` to `password`, with a fresh salt and
    /// `iterations` (Kafka accepts `Mechanism::MIN_ITERATIONS..=MAX_ITERATIONS`; others
    /// are refused before any hashing).
    pub async fn upsert_scram(
        &mut self,
        user: &str,
        mechanism: Mechanism,
        password: &str,
        iterations: i32,
    ) -> Result<(), AdminError> {
        if !(Mechanism::MIN_ITERATIONS..=Mechanism::MAX_ITERATIONS).contains(&iterations) {
            return Err(AdminError::kafka(
                ApiKey::AlterUserScramCredentials,
                user,
                ResponseError::UnacceptableCredential.code(),
                Some(format!(
                    "{iterations} iterations: Kafka takes {} to {}",
                    Mechanism::MIN_ITERATIONS,
                    Mechanism::MAX_ITERATIONS
                )),
            ));
        }
        let salt = random_salt();
        let salted = salted_password(mechanism, password, &salt, iterations.unsigned_abs());
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(str_bytes(user))
                .with_mechanism(mechanism.kafka_type())
                .with_iterations(iterations)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        ]);
        self.alter_scram(user, request).await
    }

    /// Deletes `user`'s credential for `mechanism`; false when there was none.
    pub async fn delete_scram(
        &mut self,
        user: &str,
        mechanism: Mechanism,
    ) -> Result<bool, AdminError> {
        let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(str_bytes(user))
                .with_mechanism(mechanism.kafka_type()),
        ]);
        match self.alter_scram(user, request).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(ResponseError::ResourceNotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends a change of `user`'s credentials; the user's error code is the error.
    async fn alter_scram(
        &mut self,
        user: &str,
        request: AlterUserScramCredentialsRequest,
    ) -> Result<(), AdminError> {
        let (response, _) = self.bootstrap.call(&request).await?;
        let result = response
            .results
            .into_iter()
            .find(|r| r.user.as_str() == user)
            .ok_or_else(|| {
                AdminError::Metadata(format!(
                    "AlterUserScramCredentials returned no result for {user}"
                ))
            })?;
        if result.error_code != 0 {
            return Err(AdminError::kafka(
                ApiKey::AlterUserScramCredentials,
                user,
                result.error_code,
                result.error_message.map(|m| m.to_string()),
            ));
        }
        Ok(())
    }
}
