//! How this broker reaches the other brokers (Kafka's `inter.broker.listener.name`):
//! the listener whose endpoints it dials, and the TLS and SASL/SCRAM login that
//! listener asks for. Brokers forward dead-letter batches to their partition's leader
//! this way (`governance::dead_letter`). Built from the broker's flags by
//! `server::inter_broker`, which checks them at start-up.

use sluice_protocol::client::ClientSecurity;

use super::SecurityProtocol;

/// How to connect to another broker.
#[derive(Debug, Clone)]
pub struct InterBroker {
    /// The listener whose endpoint of each peer is dialed.
    pub listener: String,
    /// What that listener asks of a client.
    pub protocol: SecurityProtocol,
    /// TLS (trusting the inter-broker CA, checking the peer's advertised host) and the
    /// SCRAM login, as `protocol` needs them.
    pub security: ClientSecurity,
}

impl InterBroker {
    /// PLAINTEXT to `listener`, nothing to log in with.
    pub fn plaintext(listener: &str) -> InterBroker {
        InterBroker {
            listener: listener.to_string(),
            protocol: SecurityProtocol::Plaintext,
            security: ClientSecurity::default(),
        }
    }
}
