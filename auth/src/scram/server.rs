//! The server side of a SCRAM exchange: client-first → server-first, client-final →
//! server-final. Two calls, one state value in between, no I/O.

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::{Choice, ConstantTimeEq};

use super::message::{self, attribute, malformed};
use super::{crypto, Mechanism, ScramCredential, MIN_ITERATIONS};
use crate::error::SaslError;

/// A SCRAM exchange after the server-first message: what `finish` needs to check the
/// client's proof. Not `Clone`: one exchange checks one proof.
pub struct ScramServer {
    mechanism: Mechanism,
    username: String,
    credential: ScramCredential,
    /// False when the user does not exist: `credential` is then a fake and `finish` fails
    /// exactly as for a wrong password.
    known: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Parses the client-first message, looks the user up and answers with the
    /// server-first message. An unknown user gets a deterministic fake salt, so this step
    /// looks the same whether or not the user exists.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramServer, Vec<u8>), SaslError> {
        let suffix: [u8; 24] = rand::random();
        Self::start_with_nonce(mechanism, client_first, lookup, &STANDARD.encode(suffix))
    }

    /// `start` with a chosen server nonce suffix (test vectors).
    pub(crate) fn start_with_nonce(
        mechanism: Mechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        nonce_suffix: &str,
    ) -> Result<(ScramServer, Vec<u8>), SaslError> {
        let first = ClientFirst::parse(message::text(client_first)?)?;
        let (credential, known) = match lookup(&first.username) {
            // A credential of another mechanism is the caller's mistake; never use it.
            Some(c) if c.mechanism == mechanism => (c, true),
            _ => (fake_credential(mechanism, &first.username), false),
        };
        let nonce = format!("{}{nonce_suffix}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        let server = ScramServer {
            mechanism,
            username: first.username,
            credential,
            known,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first,
            nonce,
        };
        Ok((server, reply))
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Checks the client-final message's proof; on success returns the authenticated
    /// user and the server-final message (`v=` ServerSignature) for the client to check.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
        let text = message::text(client_final)?;
        let (without_proof, proof) = text
            .rsplit_once(',')
            .ok_or_else(|| malformed("client-final has no proof"))?;
        let proof = attribute(Some(proof), 'p')?;
        let mut parts = without_proof.split(',');
        let channel = attribute(parts.next(), 'c')?;
        let nonce = attribute(parts.next(), 'r')?;
        for part in parts {
            message::extension(part)?;
        }
        let channel = STANDARD
            .decode(channel)
            .map_err(|_| malformed("channel binding is not base64"))?;
        if channel != self.gs2_header.as_bytes() {
            return Err(malformed("channel binding does not repeat the gs2 header"));
        }
        if nonce != self.nonce {
            return Err(malformed("nonce is not this exchange's"));
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let m = self.mechanism;
        let client_signature =
            crypto::hmac(m, &self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(malformed("proof has the wrong length"));
        }
        let client_key = crypto::xor(&proof, &client_signature);
        let stored_key = crypto::hash(m, &client_key);
        let valid =
            stored_key.ct_eq(&self.credential.stored_key) & Choice::from(u8::from(self.known));
        if !bool::from(valid) {
            return Err(SaslError::AuthenticationFailed);
        }
        let server_signature =
            crypto::hmac(m, &self.credential.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", STANDARD.encode(server_signature));
        Ok((self.username, server_final.into_bytes()))
    }
}

/// Names the user and mechanism only: the rest is key material.
impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The parts of a client-first message the exchange keeps.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    username: String,
    nonce: &'a str,
}

impl<'a> ClientFirst<'a> {
    /// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`.
    fn parse(text: &'a str) -> Result<Self, SaslError> {
        let (flag, rest) = text
            .split_once(',')
            .ok_or_else(|| malformed("client-first has no gs2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => {
                return Err(SaslError::Unsupported("channel binding".into()))
            }
            _ => return Err(malformed("bad gs2 channel binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("client-first has no gs2 header"))?;
        let gs2_header = &text[..flag.len() + authzid.len() + 2];
        let authzid = match authzid {
            "" => None,
            a => Some(message::decode_saslname(attribute(Some(a), 'a')?)?),
        };
        let mut parts = bare.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(SaslError::Unsupported("mandatory extension".into()));
        }
        let username = message::decode_saslname(attribute(first, 'n')?)?;
        let nonce = message::nonce(attribute(parts.next(), 'r')?)?;
        for part in parts {
            let (name, value) = message::extension(part)?;
            if name == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(SaslError::Unsupported(
                    "delegation token authentication".into(),
                ));
            }
        }
        if authzid.is_some_and(|a| a != username) {
            return Err(SaslError::Unsupported(
                "an authorization id different from the username".into(),
            ));
        }
        Ok(ClientFirst {
            gs2_header,
            bare,
            username,
            nonce,
        })
    }
}

/// The per-process key that makes fake salts unpredictable yet stable per username.
fn fake_salt_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// What an unknown user looks like: a salt that is the same on every attempt (a salt that
/// changed would give the user's absence away) and keys no proof can match.
fn fake_credential(mechanism: Mechanism, username: &str) -> ScramCredential {
    let derive = |label: &str, m: Mechanism| {
        let input = format!("{label}\0{}\0{username}", mechanism.name());
        crypto::hmac(m, fake_salt_key(), input.as_bytes())
    };
    ScramCredential {
        mechanism,
        salt: derive("salt", Mechanism::Sha256),
        stored_key: derive("stored", mechanism),
        server_key: derive("server", mechanism),
        iterations: MIN_ITERATIONS.unsigned_abs(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::ScramClient;
    use super::*;

    const RFC_SUFFIX: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

    fn rfc_credential() -> ScramCredential {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::from_password(Mechanism::Sha256, "pencil", &salt, 4096)
    }

    fn lookup_user(c: ScramCredential) -> impl FnOnce(&str) -> Option<ScramCredential> {
        move |name| (name == "user").then_some(c)
    }

    /// RFC 7677 §3, server side.
    #[test]
    fn rfc7677_vector() {
        let (server, server_first) = ScramServer::start_with_nonce(
            Mechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            lookup_user(rfc_credential()),
            RFC_SUFFIX,
        )
        .unwrap();
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, server_final) = server
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// Runs a whole exchange; the client uses `password`, the server knows `stored`.
    fn exchange(
        m: Mechanism,
        client: &mut ScramClient,
        stored: Option<ScramCredential>,
    ) -> Result<(String, Vec<u8>), SaslError> {
        let (server, server_first) = ScramServer::start(m, &client.first(), |_| stored)?;
        let client_final = client.final_message(&server_first)?;
        server.finish(&client_final)
    }

    #[test]
    fn round_trip_both_mechanisms() {
        for m in Mechanism::ALL {
            let stored = ScramCredential::generate(m, "pw", 4096);
            let mut client = ScramClient::new(m, "al,i=ce", "pw");
            let (user, server_final) = exchange(m, &mut client, Some(stored)).unwrap();
            assert_eq!(user, "al,i=ce");
            client.verify_server_final(&server_final).unwrap();
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        for m in Mechanism::ALL {
            let stored = ScramCredential::generate(m, "right", 4096);
            let mut client = ScramClient::new(m, "alice", "wrong");
            let wrong = exchange(m, &mut client, Some(stored)).unwrap_err();
            let mut client = ScramClient::new(m, "nobody", "wrong");
            let unknown = exchange(m, &mut client, None).unwrap_err();
            assert_eq!(wrong, SaslError::AuthenticationFailed);
            assert_eq!(unknown, wrong);
        }
    }

    #[test]
    fn unknown_user_looks_normal_at_start() {
        let fake = |name: &str| {
            let first = format!("n,,n={name},r=abc");
            let (_, reply) =
                ScramServer::start(Mechanism::Sha512, first.as_bytes(), |_| None).unwrap();
            let reply = String::from_utf8(reply).unwrap();
            let mut parts = reply.split(',');
            let nonce = parts
                .next()
                .unwrap()
                .strip_prefix("r=abc")
                .unwrap()
                .to_owned();
            let salt = parts.next().unwrap().strip_prefix("s=").unwrap().to_owned();
            assert_eq!(parts.next(), Some("i=4096"));
            assert_eq!(parts.next(), None);
            assert_eq!(nonce.len(), 32);
            assert_eq!(STANDARD.decode(&salt).unwrap().len(), 32);
            salt
        };
        assert_eq!(
            fake("ghost"),
            fake("ghost"),
            "the same user gets the same salt"
        );
        assert_ne!(fake("ghost"), fake("phantom"));
        // A credential of the other mechanism counts as no credential.
        let other = ScramCredential::generate(Mechanism::Sha256, "pw", 4096);
        let mut client = ScramClient::new(Mechanism::Sha512, "alice", "pw");
        let err = exchange(Mechanism::Sha512, &mut client, Some(other)).unwrap_err();
        assert_eq!(err, SaslError::AuthenticationFailed);
    }

    #[test]
    fn replayed_client_final_is_refused() {
        let m = Mechanism::Sha256;
        let stored = ScramCredential::generate(m, "pw", 4096);
        let mut client = ScramClient::new(m, "alice", "pw");
        let first = client.first();
        let (server, server_first) =
            ScramServer::start(m, &first, |_| Some(stored.clone())).unwrap();
        let recorded = client.final_message(&server_first).unwrap();
        server.finish(&recorded).unwrap();

        // Same client-first, new exchange: the server nonce differs.
        let (server, server_first) =
            ScramServer::start(m, &first, |_| Some(stored.clone())).unwrap();
        let err = server.finish(&recorded).unwrap_err();
        assert!(matches!(err, SaslError::Malformed(_)), "{err:?}");

        // Splicing the new nonce into the recorded message breaks the proof instead.
        let new_nonce = String::from_utf8(server_first).unwrap();
        let new_nonce = new_nonce.split(',').next().unwrap();
        let recorded = String::from_utf8(recorded).unwrap();
        let proof = recorded.rsplit(',').next().unwrap();
        let spliced = format!("c=biws,{new_nonce},{proof}");
        let (server, _) = ScramServer::start_with_nonce(
            m,
            &first,
            |_| Some(stored),
            new_nonce
                .strip_prefix("r=")
                .unwrap()
                .strip_prefix(client.nonce())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            server.finish(spliced.as_bytes()).unwrap_err(),
            SaslError::AuthenticationFailed
        );
    }

    #[test]
    fn gs2_header_variants() {
        let m = Mechanism::Sha256;
        let stored = ScramCredential::generate(m, "pw", 4096);
        for header in ["y,,", "n,a=alice,"] {
            let mut client = ScramClient::new(m, "alice", "pw").with_header(header);
            let (user, _) = exchange(m, &mut client, Some(stored.clone())).unwrap();
            assert_eq!(user, "alice");
        }
        // The header the client-final repeats must be the one the client-first sent.
        let mut client = ScramClient::new(m, "alice", "pw").with_header("y,,");
        let (server, server_first) =
            ScramServer::start(m, &client.first(), |_| Some(stored.clone())).unwrap();
        let client_final = String::from_utf8(client.final_message(&server_first).unwrap()).unwrap();
        let forged = client_final.replacen("c=eSws", "c=biws", 1);
        assert!(matches!(
            server.finish(forged.as_bytes()),
            Err(SaslError::Malformed(_))
        ));
    }

    fn start_err(client_first: &[u8]) -> SaslError {
        ScramServer::start(Mechanism::Sha256, client_first, |_| None).unwrap_err()
    }

    #[test]
    fn malformed_client_first() {
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"n,,n=",
            b"n,,n=user",
            b"n,,n=user,",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,r=abc,n=user",
            b"x,,n=user,r=abc",
            b",,n=user,r=abc",
            b"n,x,n=user,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=user=2,r=abc",
            b"n,,n=us\0er,r=abc",
            b"n,,n=\xff,r=abc",
            b"n,,n=user,r=abc,=x",
            b"n,,n=user,r=abc,,",
            b"n,,n=user,r=\xc3\xa9",
        ] {
            assert!(
                matches!(start_err(bad), SaslError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unsupported_client_first() {
        for bad in [
            &b"p=tls-unique,,n=user,r=abc"[..],
            b"n,,n=user,r=abc,tokenauth=true",
            b"n,,n=user,r=abc,tokenauth=TRUE",
            b"n,a=admin,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
        ] {
            assert!(
                matches!(start_err(bad), SaslError::Unsupported(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Other extensions are accepted and ignored.
        assert!(ScramServer::start(
            Mechanism::Sha256,
            b"n,,n=user,r=abc,tokenauth=false,x=1",
            |_| None
        )
        .is_ok());
    }

    #[test]
    fn oversized_inputs() {
        let mut big = b"n,,n=user,r=abc,x=".to_vec();
        big.resize(crate::MAX_MESSAGE_LEN + 1, b'x');
        assert_eq!(start_err(&big), SaslError::TooLarge);
        let long = format!("n,,n={},r=abc", "u".repeat(crate::MAX_USERNAME_LEN + 1));
        assert_eq!(start_err(long.as_bytes()), SaslError::TooLarge);
        let (server, _) =
            ScramServer::start(Mechanism::Sha256, b"n,,n=user,r=abc", |_| None).unwrap();
        assert_eq!(server.finish(&big).unwrap_err(), SaslError::TooLarge);
    }

    #[test]
    fn malformed_client_final() {
        let m = Mechanism::Sha256;
        let stored = ScramCredential::generate(m, "pw", 4096);
        let mut client = ScramClient::new(m, "alice", "pw");
        let first = client.first();
        let (_, server_first) =
            ScramServer::start_with_nonce(m, &first, |_| Some(stored.clone()), "S").unwrap();
        let good = String::from_utf8(client.final_message(&server_first).unwrap()).unwrap();
        let nonce = format!("r={}S", client.nonce());
        let proof = good.rsplit(',').next().unwrap().to_owned();
        let cases = [
            String::new(),
            ",".into(),
            "c=biws".into(),
            format!("c=biws,{nonce}"),
            format!("c=biws,{nonce},p="),
            format!("c=biws,{nonce},p=!!!!"),
            format!("c=biws,{nonce},p=AAAA"),
            format!("c=biws,{nonce},{proof},"),
            format!("{proof},c=biws,{nonce}"),
            format!("{nonce},c=biws,{proof}"),
            format!("c=!!,{nonce},{proof}"),
            format!("c=,{nonce},{proof}"),
            format!("c=biws,r=other,{proof}"),
            format!("c=biws,r=,{proof}"),
            format!("c=biws,{nonce},=x,{proof}"),
            format!("c=biws,{nonce}x,{proof}"),
        ];
        for bad in cases {
            let (server, _) =
                ScramServer::start_with_nonce(m, &first, |_| Some(stored.clone()), "S").unwrap();
            assert!(
                matches!(server.finish(bad.as_bytes()), Err(SaslError::Malformed(_))),
                "{bad:?}"
            );
        }
        let (server, _) =
            ScramServer::start_with_nonce(m, &first, |_| Some(stored.clone()), "S").unwrap();
        assert!(matches!(
            server.finish(b"c=biws,\xff,p=AAAA"),
            Err(SaslError::Malformed(_))
        ));
        // Extensions before the proof are allowed.
        let (server, _) = ScramServer::start_with_nonce(m, &first, |_| Some(stored), "S").unwrap();
        let (without_proof, proof) = good.rsplit_once(',').unwrap();
        let with_ext = format!("{without_proof},x=1,{proof}");
        // The proof covers the extension, so this one no longer verifies, but it parses.
        assert_eq!(
            server.finish(with_ext.as_bytes()).unwrap_err(),
            SaslError::AuthenticationFailed
        );
    }

    #[test]
    fn debug_shows_no_keys() {
        let (server, _) =
            ScramServer::start(Mechanism::Sha256, b"n,,n=user,r=abc", |_| None).unwrap();
        assert_eq!(
            format!("{server:?}"),
            r#"ScramServer { mechanism: Sha256, username: "user", .. }"#
        );
        assert_eq!(server.mechanism(), Mechanism::Sha256);
    }
}
