//! The client connection secured as a listener asks (feature `client-security`): TLS for
//! SSL and SASL_SSL listeners, a SASL/SCRAM login for SASL_* ones, then the connection
//! of [`Conn`]. One implementation for the operator's admin client and the broker's
//! forwarding to other brokers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_auth::{Mechanism, ScramClient};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{tcp_connect, ClientError, ClientSpec, Conn, Stream};

/// What went wrong connecting securely: the transport or a call ([`ClientError`]), or
/// what security adds, which retrying will not mend.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The broker refused the login (wrong password, unknown user, mechanism not
    /// offered) or could not prove it knows the credential.
    #[error("SASL login as {user:?} to {addr} failed: {reason}")]
    Authentication {
        addr: String,
        user: String,
        reason: String,
    },
    /// The TLS handshake failed: the broker's certificate is not trusted or does not
    /// name it, or the broker refused us.
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    /// The TLS settings cannot be used (a CA bundle without certificates, a bad name).
    #[error("TLS client settings: {0}")]
    TlsSettings(String),
}

impl ConnectError {
    /// Transport problems (the broker may be restarting): worth a retry soon.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Client(e) => e.is_transient(),
            _ => false,
        }
    }
}

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
    pub fn from_ca_pem(ca_pem: &[u8]) -> Result<TlsClient, ConnectError> {
        let bad = |reason: String| ConnectError::TlsSettings(format!("CA bundle: {reason}"));
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
            .map_err(|e| ConnectError::TlsSettings(e.to_string()))?
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
    pub fn with_server_name(mut self, name: &str) -> Result<TlsClient, ConnectError> {
        self.server_name = Some(server_name(name).map_err(|reason| {
            ConnectError::TlsSettings(format!("server name {name:?}: {reason}"))
        })?);
        Ok(self)
    }

    /// TLS over `tcp`, connected to `addr`. A refused handshake (certificate not trusted,
    /// wrong name) is `ConnectError::Tls`, not a transport error: retrying will not help.
    pub async fn wrap(&self, addr: &str, tcp: TcpStream) -> Result<Box<dyn Stream>, ConnectError> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => server_name(host_of(addr)).map_err(|reason| ConnectError::Tls {
                addr: addr.to_string(),
                reason: format!("no server name to check in its certificate: {reason}"),
            })?,
        };
        let stream = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| match tls_refusal(&source) {
                Some(reason) => ConnectError::Tls {
                    addr: addr.to_string(),
                    reason,
                },
                None => ConnectError::Client(ClientError::Io {
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
    /// prove it knows the credential too. Every refusal is `ConnectError::Authentication`,
    /// whose text comes from the broker or `sluice-auth`, never from the password.
    /// `conn` must have negotiated SaslHandshake v1 and SaslAuthenticate.
    pub async fn login(&self, conn: &mut Conn) -> Result<(), ConnectError> {
        let addr = conn.addr().to_string();
        let refused = |reason: String| ConnectError::Authentication {
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
        let (server_first, _) = authenticate(conn, scram.first(), &refused).await?;
        let client_final = scram
            .final_message(&server_first)
            .map_err(|e| refused(format!("the broker's first SCRAM message: {e}")))?;
        // The broker's clock for the session starts when it checks this message, after
        // it was sent: counted from here, the session ends no later than the broker says.
        let sent = Instant::now();
        let (server_final, lifetime_ms) = authenticate(conn, client_final, &refused).await?;
        scram.verify_server_final(&server_final).map_err(|e| {
            refused(format!(
                "the broker did not prove it knows the credential: {e}"
            ))
        })?;
        conn.session_expires_at = u64::try_from(lifetime_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| sent + Duration::from_millis(ms));
        Ok(())
    }
}

/// One SaslAuthenticate round: our token out, the broker's back with the session
/// lifetime it gives (0: none), or its refusal.
async fn authenticate(
    conn: &mut Conn,
    token: Vec<u8>,
    refused: &impl Fn(String) -> ConnectError,
) -> Result<(Bytes, i64), ConnectError> {
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
    Ok((response.auth_bytes, response.session_lifetime_ms))
}

/// Kafka's name of an error code (`SASL_AUTHENTICATION_FAILED` as `SaslAuthenticationFailed`).
fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error code {code}"),
    }
}

/// Connects to `addr` (`host:port`) as `spec` says: TCP, then TLS and the SASL login
/// when `security` asks for them. For a login, `spec` must list SaslHandshake (v1) and
/// SaslAuthenticate. The whole of it is bounded by `timeout`.
pub async fn connect(
    addr: &str,
    timeout: Duration,
    spec: ClientSpec,
    security: &ClientSecurity,
) -> Result<Conn, ConnectError> {
    let steps = async {
        let tcp = tcp_connect(addr, timeout).await?;
        let stream: Box<dyn Stream> = match &security.tls {
            Some(tls) => tls.wrap(addr, tcp).await?,
            None => Box::new(tcp),
        };
        let mut conn = Conn::handshake(addr, stream, timeout, spec).await?;
        if let Some(login) = &security.sasl {
            login.login(&mut conn).await?;
        }
        Ok(conn)
    };
    tokio::time::timeout(timeout, steps).await.map_err(|_| {
        ConnectError::Client(ClientError::Timeout {
            addr: addr.to_string(),
            what: "connect".into(),
        })
    })?
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsResponse, RequestKind, ResponseKind, SaslAuthenticateResponse,
        SaslHandshakeResponse,
    };
    use sluice_auth::{ScramCredential, ScramServer};
    use tokio::io::AsyncWriteExt;

    use super::super::read_frame;
    use super::*;
    use crate::{decode_request, encode_response};

    /// A broker on the other end of `stream` that knows `credential` for every user,
    /// answers ApiVersions, SaslHandshake and SCRAM's two rounds, and gives the login
    /// `lifetime_ms`.
    async fn scram_broker(
        mut stream: tokio::io::DuplexStream,
        credential: ScramCredential,
        lifetime_ms: i64,
    ) {
        let mut exchange: Option<ScramServer> = None;
        for _ in 0..4 {
            let request = decode_request(read_frame(&mut stream).await.unwrap()).unwrap();
            let body = match request.body {
                RequestKind::ApiVersions(_) => {
                    let v = |key: ApiKey, min, max| {
                        ApiVersion::default()
                            .with_api_key(key as i16)
                            .with_min_version(min)
                            .with_max_version(max)
                    };
                    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(vec![
                        v(ApiKey::ApiVersions, 0, 3),
                        v(ApiKey::SaslHandshake, 0, 1),
                        v(ApiKey::SaslAuthenticate, 0, 2),
                    ]))
                }
                RequestKind::SaslHandshake(r) => {
                    assert_eq!(r.mechanism.as_str(), "SCRAM-SHA-512");
                    ResponseKind::SaslHandshake(SaslHandshakeResponse::default())
                }
                RequestKind::SaslAuthenticate(r) => {
                    let reply = match exchange.take() {
                        None => {
                            let (server, first) =
                                ScramServer::start(Mechanism::Sha512, &r.auth_bytes, |_| {
                                    Some(credential.clone())
                                })
                                .unwrap();
                            exchange = Some(server);
                            SaslAuthenticateResponse::default().with_auth_bytes(first.into())
                        }
                        Some(server) => {
                            let (_, last) = server.finish(&r.auth_bytes).unwrap();
                            SaslAuthenticateResponse::default()
                                .with_auth_bytes(last.into())
                                .with_session_lifetime_ms(lifetime_ms)
                        }
                    };
                    ResponseKind::SaslAuthenticate(reply)
                }
                other => panic!("unexpected request {other:?}"),
            };
            let response = encode_response(
                request.api_key,
                request.version,
                request.header.correlation_id,
                &body,
            )
            .unwrap();
            stream.write_all(&response).await.unwrap();
        }
    }

    const LOGIN_SPEC: ClientSpec = ClientSpec {
        client_id: "test",
        versions: &[
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::SaslHandshake, 1, 1),
            (ApiKey::SaslAuthenticate, 0, 2),
        ],
    };

    #[tokio::test]
    async fn a_scram_login_over_any_stream_keeps_the_session_lifetime() {
        for (lifetime_ms, expires) in [(60_000, true), (0, false)] {
            let (client, broker) = tokio::io::duplex(64 * 1024);
            let credential = ScramCredential::generate(Mechanism::Sha512, "pw", 4096);
            let broker = tokio::spawn(scram_broker(broker, credential, lifetime_ms));
            let timeout = Duration::from_secs(5);
            let mut conn = Conn::handshake("duplex", Box::new(client), timeout, LOGIN_SPEC)
                .await
                .unwrap();
            let login = ScramLogin {
                mechanism: Mechanism::Sha512,
                user: "broker".into(),
                password: "pw".into(),
            };
            let before = Instant::now();
            login.login(&mut conn).await.unwrap();
            let after = Instant::now();
            broker.await.unwrap();
            match conn.session_expires_at() {
                Some(at) => {
                    assert!(expires, "no lifetime was given");
                    // Counted from a moment within the login: never later than the
                    // broker's end.
                    let lifetime = Duration::from_millis(60_000);
                    assert!(before + lifetime <= at && at <= after + lifetime);
                }
                None => assert!(!expires, "the lifetime was lost"),
            }
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
            assert!(matches!(err, ConnectError::TlsSettings(_)), "{err}");
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
