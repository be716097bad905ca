//! What one connection is allowed to do and as whom: the listener it came through, its
//! principal, and on SASL listeners the login (SaslHandshake, SaslAuthenticate, KIP-368
//! re-authentication). Before a SASL login only ApiVersions and the login itself are
//! served; anything else closes the connection, as Kafka does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Broker;
use crate::metrics::AuthLabel;
use crate::security::sasl::{SaslExchange, Step};
use crate::security::{Principal, SecurityProtocol};

/// A bound listener: its name (for advertised endpoints) and protocol.
#[derive(Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub protocol: SecurityProtocol,
}

pub struct Session {
    pub listener: Arc<ListenerInfo>,
    pub peer: SocketAddr,
    pub principal: Principal,
    login: Option<Login>,
}

/// A SASL listener's login state.
#[derive(Default)]
struct Login {
    exchange: SaslExchange,
    /// The mechanism of the last handshake (for metrics and the audit log).
    mechanism: &'static str,
    /// Logged in (at least once); re-authentication keeps this true.
    authenticated: bool,
    /// KIP-368: when the login runs out; later requests other than a new login close
    /// the connection.
    expires: Option<Instant>,
}

/// What to do with a request before it is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Hand it to the request handlers.
    Serve,
    /// A SASL request of this connection's login.
    Login,
    /// Close the connection, for this reason.
    Close(&'static str),
}

/// What follows a login response.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterLogin {
    Continue,
    /// Send the refusal after this delay, then close.
    Close(Duration),
}

impl Session {
    pub fn new(listener: Arc<ListenerInfo>, peer: SocketAddr, principal: Principal) -> Self {
        let login = listener.protocol.uses_sasl().then(Login::default);
        Session {
            listener,
            peer,
            principal,
            login,
        }
    }

    /// Whether requests other than a login may be served.
    pub fn authenticated(&self) -> bool {
        self.login.as_ref().is_none_or(|l| l.authenticated)
    }

    pub fn gate(&self, key: ApiKey, now: Instant) -> Gate {
        let Some(login) = &self.login else {
            // PLAINTEXT and SSL: SASL requests get ILLEGAL_SASL_STATE from the handlers.
            return Gate::Serve;
        };
        match key {
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Gate::Login,
            ApiKey::ApiVersions if !login.authenticated => Gate::Serve,
            _ if !login.authenticated => Gate::Close("request before SASL authentication"),
            _ if login.expires.is_some_and(|t| now >= t) => {
                Gate::Close("SASL session expired without re-authentication")
            }
            _ => Gate::Serve,
        }
    }

    pub fn handshake(
        &mut self,
        broker: &Broker,
        req: &SaslHandshakeRequest,
    ) -> SaslHandshakeResponse {
        let enabled = &broker.security.sasl_mechanisms;
        let names = enabled.iter().map(|m| StrBytes::from_static_str(m.name()));
        let resp = SaslHandshakeResponse::default().with_mechanisms(names.collect());
        let Some(login) = &mut self.login else {
            return resp.with_error_code(ResponseError::IllegalSaslState.code());
        };
        match login.exchange.handshake(enabled, req.mechanism.as_str()) {
            Ok(()) => {
                login.mechanism = crate::security::sasl::SaslMechanism::parse(&req.mechanism)
                    .map_or("", |m| m.name());
                resp
            }
            Err(true) => resp.with_error_code(ResponseError::IllegalSaslState.code()),
            Err(false) => resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
        }
    }

    pub fn authenticate(
        &mut self,
        broker: &Broker,
        req: &SaslAuthenticateRequest,
        now: Instant,
    ) -> (SaslAuthenticateResponse, AfterLogin) {
        let resp = SaslAuthenticateResponse::default().with_error_message(None);
        let Some(login) = &mut self.login else {
            let resp = resp
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "this listener does not use SASL",
                )));
            return (resp, AfterLogin::Continue);
        };
        let state = broker.security.store.current();
        let step = login.exchange.authenticate(&req.auth_bytes, &state);
        let mechanism = login.mechanism;
        let (resp, after) = match step {
            Step::Challenge(bytes) => (resp.with_auth_bytes(bytes.into()), AfterLogin::Continue),
            Step::Authenticated { user, response } => {
                let principal = Principal::user(user);
                if login.authenticated && principal != self.principal {
                    let message = "Cannot change principals during re-authentication";
                    (
                        self.refuse(broker, mechanism, message),
                        AfterLogin::Close(Duration::ZERO),
                    )
                } else {
                    let lifetime = broker.security.reauth;
                    let login = self.login.as_mut().expect("a SASL session");
                    login.authenticated = true;
                    login.expires = lifetime.map(|d| now + d);
                    broker.security.login_guard.succeeded(self.peer.ip());
                    self.count(broker, mechanism, "ok");
                    info!(target: "sluice::audit", event = "authentication", result = "ok",
                        principal = %principal, mechanism, listener = %self.listener.name,
                        source = %self.peer);
                    self.principal = principal;
                    let lifetime_ms = lifetime.map_or(0, |d| d.as_millis() as i64);
                    (
                        resp.with_auth_bytes(response.into())
                            .with_session_lifetime_ms(lifetime_ms),
                        AfterLogin::Continue,
                    )
                }
            }
            Step::Failed(message) => {
                let refusal = broker
                    .security
                    .login_guard
                    .failed(self.peer.ip(), std::time::Instant::now());
                warn!(target: "sluice::audit", event = "authentication", result = "failed",
                    mechanism, listener = %self.listener.name, source = %self.peer,
                    failures_from_source = refusal.failures_from_source, reason = %message);
                (
                    self.refuse(broker, mechanism, &message),
                    AfterLogin::Close(refusal.delay),
                )
            }
            Step::OutOfOrder => (
                resp.with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before SaslHandshake",
                    ))),
                AfterLogin::Close(Duration::ZERO),
            ),
        };
        (resp, after)
    }

    fn refuse(
        &self,
        broker: &Broker,
        mechanism: &'static str,
        message: &str,
    ) -> SaslAuthenticateResponse {
        self.count(broker, mechanism, "failed");
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    }

    /// Counts a login attempt in `sluice_authentications_total`.
    pub fn count(&self, broker: &Broker, mechanism: &'static str, result: &'static str) {
        broker
            .metrics
            .authentications
            .get_or_create(&AuthLabel {
                listener: self.listener.name.clone(),
                mechanism,
                result,
            })
            .inc();
    }
}
