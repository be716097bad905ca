//! The security boundary at the Kafka listeners (docs/security.md): what each listener
//! asks of a client ([`SecurityProtocol`]), TLS with certificates reloaded from disk
//! ([`tls`]), SASL logins ([`sasl`]) against credentials kept in the bucket
//! ([`store`], [`credentials`]), the slowing down of failed logins ([`login_guard`]),
//! client quotas ([`quotas`]) enforced by throttling ([`throttle`]), ACLs
//! ([`acl`]) with the authorizer that applies them ([`authorizer`]), and how this
//! broker reaches the others as a client ([`inter_broker`]).
//! The mechanisms themselves are pure code in `sluice-auth`.

pub use sluice_auth::acl;
pub mod authorizer;
pub mod credentials;
pub mod inter_broker;
pub mod listener;
pub mod login_guard;
pub mod principal;
pub mod protocol;
pub mod quotas;
pub mod sasl;
pub mod store;
pub mod throttle;
pub mod tls;

pub use principal::Principal;
pub use protocol::SecurityProtocol;
pub use store::SecurityStore;

use std::sync::Arc;
use std::time::Duration;

use sluice_auth::mapping::PrincipalMapper;

use authorizer::Authorizer;
use login_guard::LoginGuard;
use sasl::SaslMechanism;
use throttle::Throttler;
use tls::TlsConfig;

/// Everything a listener needs to authenticate a connection.
pub struct Security {
    pub store: SecurityStore,
    pub login_guard: LoginGuard,
    pub principal_mapper: PrincipalMapper,
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// KIP-368: a login lasts this long, then the client logs in again.
    pub reauth: Option<Duration>,
    /// TLS of the SSL and SASL_SSL listeners; None when no listener uses TLS.
    pub tls: Option<Arc<TlsConfig>>,
    /// A connection's TLS handshake and SASL login must be done within this.
    pub authentication_timeout: Duration,
    /// The rates of the holders of client quotas.
    pub throttler: Throttler,
    /// Who may do what (ACLs in the store).
    pub authorizer: Authorizer,
}
