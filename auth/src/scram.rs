//! SCRAM (RFC 5802, RFC 7677) as Apache Kafka does it: SHA-256 and SHA-512, no channel
//! binding, no SASLprep (Kafka hashes the password's UTF-8 bytes as they are).

pub mod client;
mod credential;
mod crypto;
mod message;
mod server;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use credential::ScramCredential;
pub use server::ScramServer;

/// The fewest iterations Kafka accepts for a credential.
pub const MIN_ITERATIONS: i32 = 4096;
/// The most iterations Kafka accepts for a credential (AlterUserScramCredentials).
pub const MAX_ITERATIONS: i32 = 16384;

/// SaltedPassword = Hi(password, salt, iterations) (RFC 5802), of the password's UTF-8
/// bytes: what AlterUserScramCredentials carries instead of the password, so an admin
/// client derives it with the same code the broker checks logins with.
pub fn salted_password(
    mechanism: Mechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    crypto::hi(mechanism, password.as_bytes(), salt, iterations)
}

/// A fresh random 32-byte salt for a new credential.
pub fn random_salt() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// A SCRAM hash function, named as in SASL and in Kafka's admin APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    /// Every mechanism, in the order the broker advertises them.
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];
    /// [`MIN_ITERATIONS`], here too for callers that only import the type.
    pub const MIN_ITERATIONS: i32 = MIN_ITERATIONS;
    /// [`MAX_ITERATIONS`], here too for callers that only import the type.
    pub const MAX_ITERATIONS: i32 = MAX_ITERATIONS;

    /// The SASL mechanism name, as in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism a SASL name stands for (case-sensitive, as in Kafka).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's ScramMechanism code in Describe/AlterUserScramCredentials (0 is UNKNOWN).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// The mechanism a Kafka ScramMechanism code stands for.
    pub fn from_kafka_type(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == code)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(Mechanism::from_kafka_type(m.kafka_type()), Some(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(Mechanism::Sha256.name(), "SCRAM-SHA-256");
        assert_eq!(Mechanism::Sha512.kafka_type(), 2);
        assert_eq!(Mechanism::from_name("scram-sha-256"), None);
        assert_eq!(Mechanism::from_name("PLAIN"), None);
        assert_eq!(Mechanism::from_kafka_type(0), None);
        assert_eq!(Mechanism::from_kafka_type(3), None);
        assert_eq!(
            serde_json::to_string(&Mechanism::ALL).unwrap(),
            r#"["SCRAM-SHA-256","SCRAM-SHA-512"]"#
        );
    }
}
