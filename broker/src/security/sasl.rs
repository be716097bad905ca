//! One connection's SASL login (KIP-43 SaslHandshake, KIP-152 SaslAuthenticate): which
//! mechanism the client picked and how far its exchange got. Credentials come from the
//! [`SecurityState`] snapshot, so a step never waits on the bucket.

use std::fmt;

use sluice_auth::scram::{Mechanism, ScramServer};
use sluice_auth::{plain, SaslError};

use super::store::SecurityState;

/// A SASL mechanism the broker offers (`--sasl-enabled-mechanisms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Scram(Mechanism::Sha256),
        SaslMechanism::Scram(Mechanism::Sha512),
        SaslMechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a connection's login stands.
#[derive(Default)]
pub enum SaslExchange {
    /// No handshake yet (or the last login finished).
    #[default]
    Idle,
    /// Handshake done; the first token is next.
    Started(SaslMechanism),
    /// SCRAM server-first sent; the client-final is next. Boxed: a connection holds it
    /// only during its login.
    ScramFinal(Box<ScramServer>),
}

/// What a SaslAuthenticate token led to.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and wait for the next token.
    Challenge(Vec<u8>),
    /// Logged in as `user`; send `response` (empty for PLAIN).
    Authenticated { user: String, response: Vec<u8> },
    /// Refused; the message goes back to the client.
    Failed(String),
    /// A token without a handshake first (ILLEGAL_SASL_STATE).
    OutOfOrder,
}

impl SaslExchange {
    /// SaslHandshake: starts a login with `mechanism` if it is one of `enabled`.
    /// Err(false) when it is not offered, Err(true) when a login is already under way.
    pub fn handshake(&mut self, enabled: &[SaslMechanism], mechanism: &str) -> Result<(), bool> {
        if !matches!(self, SaslExchange::Idle) {
            return Err(true);
        }
        let m = SaslMechanism::parse(mechanism)
            .filter(|m| enabled.contains(m))
            .ok_or(false)?;
        *self = SaslExchange::Started(m);
        Ok(())
    }

    /// SaslAuthenticate: the next token of the exchange.
    pub fn authenticate(&mut self, token: &[u8], state: &SecurityState) -> Step {
        match std::mem::take(self) {
            SaslExchange::Idle => Step::OutOfOrder,
            SaslExchange::Started(SaslMechanism::Plain) => plain_login(token, state),
            SaslExchange::Started(SaslMechanism::Scram(m)) => {
                let lookup = |user: &str| state.scram_credential(user, m).cloned();
                match ScramServer::start(m, token, lookup) {
                    Ok((server, first)) => {
                        *self = SaslExchange::ScramFinal(Box::new(server));
                        Step::Challenge(first)
                    }
                    Err(e) => Step::Failed(failure(e, SaslMechanism::Scram(m))),
                }
            }
            SaslExchange::ScramFinal(server) => {
                let mechanism = SaslMechanism::Scram(server.mechanism());
                match server.finish(token) {
                    Ok((user, response)) => Step::Authenticated { user, response },
                    Err(e) => Step::Failed(failure(e, mechanism)),
                }
            }
        }
    }
}

/// PLAIN checks the password against the user's stored SCRAM credential: one store of
/// salted keys serves both, and no plain password is ever kept.
fn plain_login(token: &[u8], state: &SecurityState) -> Step {
    let creds = match plain::parse(token) {
        Ok(c) => c,
        Err(e) => return Step::Failed(failure(e, SaslMechanism::Plain)),
    };
    let known = state.scram.get(&creds.username).and_then(|c| c.first());
    if known.is_some_and(|c| c.verify_password(&creds.password)) {
        return Step::Authenticated {
            user: creds.username,
            response: Vec::new(),
        };
    }
    Step::Failed("Authentication failed: Invalid username or password".into())
}

/// The message a client sees, worded like Kafka's.
fn failure(e: SaslError, mechanism: SaslMechanism) -> String {
    match e {
        SaslError::AuthenticationFailed => format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        ),
        other => format!("Authentication failed: {other} ({mechanism})"),
    }
}

#[cfg(test)]
mod tests {
    use sluice_auth::scram::client::ScramClient;

    use super::*;
    use crate::security::credentials::bootstrap;

    fn state() -> SecurityState {
        let mut s = SecurityState::default();
        bootstrap(&mut s, &[("alice".into(), "alice-secret".into())]);
        s
    }

    #[test]
    fn scram_login_both_mechanisms() {
        let s = state();
        for m in Mechanism::ALL {
            let mut x = SaslExchange::default();
            x.handshake(&SaslMechanism::ALL, m.name()).unwrap();
            let mut client = ScramClient::new(m, "alice", "alice-secret");
            let Step::Challenge(first) = x.authenticate(&client.first(), &s) else {
                panic!("expected a challenge");
            };
            let fin = client.final_message(&first).unwrap();
            let Step::Authenticated { user, response } = x.authenticate(&fin, &s) else {
                panic!("expected a login");
            };
            assert_eq!(user, "alice");
            client.verify_server_final(&response).unwrap();
            assert!(matches!(x, SaslExchange::Idle));
        }
    }

    #[test]
    fn plain_login_checks_the_scram_credential() {
        let s = state();
        let login = |token: &[u8]| {
            let mut x = SaslExchange::default();
            x.handshake(&SaslMechanism::ALL, "PLAIN").unwrap();
            x.authenticate(token, &s)
        };
        assert!(matches!(
            login(b"\0alice\0alice-secret"),
            Step::Authenticated { ref user, .. } if user == "alice"
        ));
        assert!(matches!(login(b"\0alice\0wrong"), Step::Failed(_)));
        assert!(matches!(login(b"\0mallory\0alice-secret"), Step::Failed(_)));
        assert!(matches!(login(b"garbage"), Step::Failed(_)));
    }

    #[test]
    fn handshake_rules() {
        let mut x = SaslExchange::default();
        assert_eq!(
            x.handshake(&[SaslMechanism::Plain], "SCRAM-SHA-256"),
            Err(false)
        );
        assert_eq!(x.handshake(&SaslMechanism::ALL, "GSSAPI"), Err(false));
        assert!(matches!(x.authenticate(b"x", &state()), Step::OutOfOrder));
        x.handshake(&SaslMechanism::ALL, "PLAIN").unwrap();
        assert_eq!(x.handshake(&SaslMechanism::ALL, "PLAIN"), Err(true));
    }
}
