//! What the broker stores per user and mechanism: never the password, only the salt, the
//! iteration count and the two keys derived from the salted password.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{crypto, Mechanism};

/// A stored SCRAM credential (Kafka's ScramCredential plus its mechanism). Iteration counts
/// are not checked here: the admin API bounds them with `MIN_ITERATIONS..=MAX_ITERATIONS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    #[serde(with = "crate::b64")]
    pub salt: Vec<u8>,
    #[serde(with = "crate::b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "crate::b64")]
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// Derives the credential from a password (its UTF-8 bytes, no SASLprep, like Kafka).
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = super::salted_password(mechanism, password, salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt.to_vec(), iterations)
    }

    /// Derives the credential from Hi(password, salt, iterations), which is what Kafka's
    /// AlterUserScramCredentials carries instead of the password.
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Self {
        let client_key = crypto::client_key(mechanism, salted);
        ScramCredential {
            mechanism,
            salt,
            stored_key: crypto::hash(mechanism, &client_key),
            server_key: crypto::server_key(mechanism, salted),
            iterations,
        }
    }

    /// A credential with a fresh random 32-byte salt.
    pub fn generate(mechanism: Mechanism, password: &str, iterations: u32) -> Self {
        Self::from_password(mechanism, password, &super::random_salt(), iterations)
    }

    /// Whether `password` derives this credential's StoredKey: SASL/PLAIN against a stored
    /// SCRAM credential. Costs `iterations` HMACs; compares in constant time.
    pub fn verify_password(&self, password: &str) -> bool {
        let salted = super::salted_password(self.mechanism, password, &self.salt, self.iterations);
        let client_key = crypto::client_key(self.mechanism, &salted);
        let stored_key = crypto::hash(self.mechanism, &client_key);
        stored_key.ct_eq(&self.stored_key).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_password() {
        for m in Mechanism::ALL {
            let c = ScramCredential::generate(m, "pencil", 4096);
            assert_eq!(c.salt.len(), 32);
            assert!(c.verify_password("pencil"));
            assert!(!c.verify_password("pencil "));
            assert!(!c.verify_password(""));
            let other = ScramCredential::generate(m, "pencil", 4096);
            assert_ne!(c.salt, other.salt, "salts are random");
        }
    }

    #[test]
    fn salted_password_gives_the_same_credential() {
        let salt = b"NaCl".to_vec();
        let salted = crypto::hi(Mechanism::Sha512, b"pw", &salt, 4096);
        assert_eq!(
            ScramCredential::from_salted_password(Mechanism::Sha512, &salted, salt.clone(), 4096),
            ScramCredential::from_password(Mechanism::Sha512, "pw", &salt, 4096)
        );
    }

    #[test]
    fn serde_uses_base64_and_mechanism_names() {
        let c = ScramCredential::from_password(Mechanism::Sha256, "pencil", b"salt", 4096);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["mechanism"], "SCRAM-SHA-256");
        assert_eq!(json["salt"], "c2FsdA==");
        assert_eq!(json["iterations"], 4096);
        let back: ScramCredential = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let bad = r#"{"mechanism":"SCRAM-SHA-256","salt":"!","stored_key":"","server_key":"","iterations":1}"#;
        assert!(serde_json::from_str::<ScramCredential>(bad).is_err());
    }
}
