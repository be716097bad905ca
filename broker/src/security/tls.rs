//! TLS for the SSL and SASL_SSL listeners, through rustls: a certificate chain and key
//! from PEM files, optional client certificates checked against a CA bundle (mTLS),
//! and the files read again whenever they change on disk, so a renewed certificate
//! (cert-manager rotating a mounted Secret) is served without a restart. A broken new
//! file is logged and the previous configuration kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sluice_auth::mapping::PrincipalMapper;
use thiserror::Error;
use x509_cert::der::Decode;

use super::Principal;

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    /// Required: the handshake fails without a certificate the CA bundle vouches for.
    Required,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("--ssl-client-auth {0:?} needs --ssl-client-ca-file")]
    NoClientCa(ClientAuth),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The current server configuration and the file stamps it was built from.
pub struct TlsConfig {
    settings: TlsSettings,
    current: RwLock<(Vec<Stamp>, Arc<ServerConfig>)>,
}

/// What a file looked like when read: a change of either means read it again.
type Stamp = Option<(SystemTime, u64)>;

impl TlsConfig {
    pub fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let stamps = stamps(&settings);
        let config = build(&settings)?;
        Ok(TlsConfig {
            settings,
            current: RwLock::new((stamps, config)),
        })
    }

    /// The configuration new connections get.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.read().1.clone()
    }

    /// Reads the files again if any changed since the last load. Ok(true) when a new
    /// configuration is in use; on an error the previous one stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamps(&self.settings);
        if self.current.read().0 == now {
            return Ok(false);
        }
        let built = build(&self.settings);
        let mut cur = self.current.write();
        // Remember the stamps even on failure: a broken file is reported once, not at
        // every check, and a later fix changes the stamp again.
        cur.0 = now;
        cur.1 = built?;
        Ok(true)
    }
}

fn stamps(s: &TlsSettings) -> Vec<Stamp> {
    [Some(&s.certificate), Some(&s.key), s.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn read_err(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_err(path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn build(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates(&s.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(read_err(&s.key))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (s.client_auth, &s.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, None) => return Err(TlsError::NoClientCa(auth)),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::Config(format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // Kafka clients do not use ALPN; no session tickets keep every broker stateless.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The principal of a verified client certificate: its subject's distinguished name
/// (RFC 4514, as Kafka prints it) through the mapping rules. Err when the certificate
/// cannot be read or no rule maps it (the connection is refused, as Kafka does).
pub fn certificate_principal(
    certificate: &[u8],
    mapper: &PrincipalMapper,
) -> Result<Principal, String> {
    let cert = x509_cert::Certificate::from_der(certificate)
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    let dn = cert.tbs_certificate.subject.to_string();
    mapper
        .map(&dn)
        .map(Principal::user)
        .ok_or_else(|| format!("no ssl.principal.mapping.rules rule maps {dn:?}"))
}
