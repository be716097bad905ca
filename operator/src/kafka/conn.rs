//! The operator's Kafka connection: the shared client connection of `sluice-protocol`,
//! with the operator's client id, the API versions its admin client implements, and the
//! security a listener asks for: TLS (SSL, SASL_SSL) and a SASL/SCRAM login (SASL_*).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_auth::{Mechanism, ScramClient};
use sluice_protocol::client::{self, ClientError, ClientSpec, Stream};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{error_name, AdminError};

#[cfg(test)]
use sluice_protocol::versions;

const CLIENT_ID: &str = "sluice-operator";

/// The versions this client implements for each API it uses, the one place its request
/// versions come from: the highest version both sides support is used.
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 9, 12),
    (ApiKey::CreateTopics, 5, 7),
    (ApiKey::CreatePartitions, 2, 3),
    (ApiKey::DeleteTopics, 4, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    // v0 would send the SASL tokens as bare frames; v1 frames them in SaslAuthenticate.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // v1 is the first with pattern types (KIP-290).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

const SPEC: ClientSpec = ClientSpec {
    client_id: CLIENT_ID,
    versions: CLIENT_VERSIONS,
};

pub use client::Conn;

/// How to reach a listener: TLS or not, SASL/SCRAM login or not. The default is
/// PLAINTEXT.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    pub tls: Option<TlsClient>,
    pub sasl: Option<ScramLogin>,
}

/// TLS to the brokers: the CAs their certificates must chain to, and the name they must
/// carry.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    /// The name checked in every broker's certificate; None: the host dialed.
    server_name: Option<ServerName<'static>>,
}

impl TlsClient {
    /// Trusts the certificates of a PEM bundle (the `ca.crt` of a Kubernetes TLS Secret)
    /// and nothing else: a cluster's CA is its own, not a public one.
    pub fn from_ca_pem(ca_pem: &[u8]) -> Result<TlsClient, AdminError> {
        let bad = |reason: String| AdminError::TlsSettings(format!("CA bundle: {reason}"));
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the PEM".into()));
        }
        // Our own provider, not the process default: the build may link more than one.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AdminError::TlsSettings(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient {
            config: Arc::new(config),
            server_name: None,
        })
    }

    /// Checks `name` (a DNS name or an IP address) in every broker's certificate instead
    /// of the host dialed: for brokers reached through an address their certificate does
    /// not name (a port-forward, a Service IP).
    pub fn with_server_name(mut self, name: &str) -> Result<TlsClient, AdminError> {
        self.server_name = Some(server_name(name).map_err(|reason| {
            AdminError::TlsSettings(format!("server name {name:?}: {reason}"))
        })?);
        Ok(self)
    }

    /// TLS over `tcp`, connected to `addr`. A refused handshake (certificate not trusted,
    /// wrong name) is `AdminError::Tls`, not a transport error: retrying will not help.
    async fn wrap(&self, addr: &str, tcp: TcpStream) -> Result<Box<dyn Stream>, AdminError> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => server_name(host_of(addr)).map_err(|reason| AdminError::Tls {
                addr: addr.to_string(),
                reason: format!("no server name to check in its certificate: {reason}"),
            })?,
        };
        let stream = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| match tls_refusal(&source) {
                Some(reason) => AdminError::Tls {
                    addr: addr.to_string(),
                    reason,
                },
                None => AdminError::Client(ClientError::Io {
                    addr: addr.to_string(),
                    source,
                }),
            })?;
        Ok(Box::new(stream))
    }
}

/// The rustls error inside an I/O error of the handshake, if it is one.
fn tls_refusal(e: &std::io::Error) -> Option<String> {
    e.get_ref()?
        .downcast_ref::<rustls::Error>()
        .map(ToString::to_string)
}

fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| e.to_string())
}

/// The host of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A SASL/SCRAM login.
#[derive(Clone)]
pub struct ScramLogin {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

/// Leaves the password out: these end up in logs.
impl fmt::Debug for ScramLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramLogin")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramLogin {
    /// SaslHandshake, then the two SaslAuthenticate rounds of SCRAM; the broker must
    /// prove it knows the credential too. Every refusal is `AdminError::Authentication`,
    /// whose text comes from the broker or `sluice-auth`, never from the password.
    async fn login(&self, conn: &mut Conn) -> Result<(), AdminError> {
        let addr = conn.addr().to_string();
        let refused = |reason: String| AdminError::Authentication {
            addr: addr.clone(),
            user: self.user.clone(),
            reason,
        };
        let request = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(self.mechanism.name()));
        let (handshake, _) = conn.call(&request).await?;
        match ResponseError::try_from_code(handshake.error_code) {
            None => {}
            Some(ResponseError::UnsupportedSaslMechanism) => {
                let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
                return Err(refused(format!(
                    "the listener does not offer {} (it offers {})",
                    self.mechanism,
                    offered.join(", ")
                )));
            }
            Some(ResponseError::IllegalSaslState) => {
                return Err(refused("the listener takes no SASL login".into()));
            }
            Some(_) => {
                return Err(refused(format!(
                    "SaslHandshake: {}",
                    error_name(handshake.error_code)
                )))
            }
        }
        let mut scram = ScramClient::new(self.mechanism, &self.user, &self.password);
        let server_first = authenticate(conn, scram.first(), &refused).await?;
        let client_final = scram
            .final_message(&server_first)
            .map_err(|e| refused(format!("the broker's first SCRAM message: {e}")))?;
        let server_final = authenticate(conn, client_final, &refused).await?;
        scram.verify_server_final(&server_final).map_err(|e| {
            refused(format!(
                "the broker did not prove it knows the credential: {e}"
            ))
        })
    }
}

/// One SaslAuthenticate round: our token out, the broker's back, or its refusal.
async fn authenticate(
    conn: &mut Conn,
    token: Vec<u8>,
    refused: &impl Fn(String) -> AdminError,
) -> Result<Bytes, AdminError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
    let (response, _) = conn.call(&request).await?;
    if response.error_code != 0 {
        let message = response
            .error_message
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(refused(format!(
            "{}{message}",
            error_name(response.error_code)
        )));
    }
    Ok(response.auth_bytes)
}

/// Connects to `addr` (`host:port`) as the operator: TCP, then TLS and the SASL login
/// when `security` asks for them. The whole of it is bounded by `timeout`.
pub async fn connect(
    addr: &str,
    timeout: Duration,
    security: &ClientSecurity,
) -> Result<Conn, AdminError> {
    let steps = async {
        let tcp = client::tcp_connect(addr, timeout).await?;
        let stream: Box<dyn Stream> = match &security.tls {
            Some(tls) => tls.wrap(addr, tcp).await?,
            None => Box::new(tcp),
        };
        let mut conn = Conn::handshake(addr, stream, timeout, SPEC).await?;
        if let Some(login) = &security.sasl {
            login.login(&mut conn).await?;
        }
        Ok(conn)
    };
    tokio::time::timeout(timeout, steps).await.map_err(|_| {
        AdminError::Client(ClientError::Timeout {
            addr: addr.to_string(),
            what: "connect".into(),
        })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_range_can_be_encoded_and_meets_the_sluice_broker() {
        for (key, min, max) in CLIENT_VERSIONS {
            let codec = key.valid_versions();
            assert!(
                codec.min <= *min && *max <= codec.max,
                "{key:?} {min}..={max}"
            );
            let broker = versions::range(*key).expect("the Sluice broker implements it");
            assert!(
                versions::negotiate((*min, *max), broker).is_some(),
                "{key:?} {min}..={max} misses the broker's {broker:?}"
            );
        }
    }

    #[test]
    fn the_server_name_is_the_host_dialed() {
        assert_eq!(host_of("broker-0.sluice.svc:9093"), "broker-0.sluice.svc");
        assert_eq!(host_of("10.0.0.7:9093"), "10.0.0.7");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert!(matches!(
            server_name(host_of("[::1]:9093")),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(host_of("broker-0:9093")),
            Ok(ServerName::DnsName(_))
        ));
    }

    #[test]
    fn a_bad_ca_bundle_is_a_settings_error() {
        for pem in [
            &b""[..],
            b"not a certificate",
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        ] {
            let err = TlsClient::from_ca_pem(pem).unwrap_err();
            assert!(matches!(err, AdminError::TlsSettings(_)), "{err}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let security = ClientSecurity {
            tls: None,
            sasl: Some(ScramLogin {
                mechanism: Mechanism::Sha512,
                user: "operator".into(),
                password: "hunter2".into(),
            }),
        };
        let shown = format!("{security:?}");
        assert!(
            shown.contains("operator") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
