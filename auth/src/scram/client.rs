//! The client side of a SCRAM exchange. The broker never runs it; broker integration tests
//! and the fuzz harness drive `ScramServer` with it. It trusts nothing the server sends.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::message::{self, attribute, malformed};
use super::{crypto, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::error::SaslError;

/// A SCRAM client for one exchange: `first`, then `final_message`, then
/// `verify_server_final`.
pub struct ScramClient {
    mechanism: Mechanism,
    username: String,
    password: String,
    gs2_header: String,
    nonce: String,
    /// The ServerSignature expected in server-final, once server-first was answered.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A client with a fresh random nonce and the gs2 header `n,,` (no channel binding).
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> Self {
        let nonce: [u8; 24] = rand::random();
        Self::with_nonce(mechanism, user, password, &STANDARD.encode(nonce))
    }

    /// A client with a chosen nonce (test vectors).
    pub(crate) fn with_nonce(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> Self {
        ScramClient {
            mechanism,
            username: user.to_owned(),
            password: password.to_owned(),
            gs2_header: "n,,".to_owned(),
            nonce: nonce.to_owned(),
            server_signature: None,
        }
    }

    /// The same client sending another gs2 header (`y,,`, `n,a=user,`).
    #[cfg(test)]
    pub(crate) fn with_header(mut self, header: &str) -> Self {
        header.clone_into(&mut self.gs2_header);
        self
    }

    #[cfg(test)]
    pub(crate) fn nonce(&self) -> &str {
        &self.nonce
    }

    fn first_bare(&self) -> String {
        format!(
            "n={},r={}",
            message::encode_saslname(&self.username),
            self.nonce
        )
    }

    /// The client-first message.
    pub fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.first_bare()).into_bytes()
    }

    /// Answers the server-first message with the client-final message (the proof).
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let text = message::text(server_first)?;
        let mut parts = text.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(SaslError::Unsupported("mandatory extension".into()));
        }
        let nonce = message::nonce(attribute(first, 'r')?)?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(malformed("server nonce does not extend the client nonce"));
        }
        let salt = STANDARD
            .decode(attribute(parts.next(), 's')?)
            .map_err(|_| malformed("salt is not base64"))?;
        let iterations: u32 = attribute(parts.next(), 'i')?
            .parse()
            .map_err(|_| malformed("iteration count is not a number"))?;
        if !(MIN_ITERATIONS.unsigned_abs()..=MAX_ITERATIONS.unsigned_abs()).contains(&iterations) {
            return Err(SaslError::Unsupported(
                "iteration count out of range".into(),
            ));
        }
        let m = self.mechanism;
        let salted = super::salted_password(m, &self.password, &salt, iterations);
        let client_key = crypto::client_key(m, &salted);
        let stored_key = crypto::hash(m, &client_key);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(&self.gs2_header));
        let auth_message = format!("{},{text},{without_proof}", self.first_bare());
        let client_signature = crypto::hmac(m, &stored_key, auth_message.as_bytes());
        let proof = crypto::xor(&client_key, &client_signature);
        let server_key = crypto::server_key(m, &salted);
        self.server_signature = Some(crypto::hmac(m, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks that the server-final message proves the server knows the credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let expected = self
            .server_signature
            .as_deref()
            .ok_or_else(|| malformed("server-final before server-first"))?;
        let text = message::text(server_final)?;
        let first = text.split(',').next();
        if first.is_some_and(|p| p.starts_with("e=")) {
            return Err(SaslError::AuthenticationFailed);
        }
        let signature = STANDARD
            .decode(attribute(first, 'v')?)
            .map_err(|_| malformed("server signature is not base64"))?;
        if bool::from(signature.ct_eq(expected)) {
            Ok(())
        } else {
            Err(SaslError::AuthenticationFailed)
        }
    }
}

/// Leaves the password out.
impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    fn rfc_client() -> ScramClient {
        ScramClient::with_nonce(Mechanism::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
    }

    /// RFC 7677 §3, client side.
    #[test]
    fn rfc7677_vector() {
        let mut client = rfc_client();
        assert_eq!(client.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert!(client.verify_server_final(b"v=AAAA").is_err(), "too early");
        assert_eq!(
            client.final_message(SERVER_FIRST).unwrap(),
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        for bad in [
            &b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="[..],
            b"v=",
            b"e=invalid-proof",
            b"",
            b"x=1",
        ] {
            assert!(client.verify_server_final(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_bad_server_first() {
        for bad in [
            &b""[..],
            b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=!,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22Z,i=x",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22Z,i=1",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22Z,i=4294967295",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22Z",
            b"m=x,r=rOprNGfwEbeRWgbNEkqOx,s=W22Z,i=4096",
        ] {
            assert!(rfc_client().final_message(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", rfc_client());
        assert!(
            shown.contains("user") && !shown.contains("pencil"),
            "{shown}"
        );
    }
}
