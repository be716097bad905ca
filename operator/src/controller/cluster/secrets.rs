//! Dereference of a secured cluster's Secrets, before anything is applied: the listener's
//! TLS Secret must hold a usable certificate (a broker mounting a missing or broken one
//! would never start), and the operator's password is read back or generated once.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::Client;
use rand::distr::{Alphanumeric, SampleString};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::der::Decode;

use super::build::{
    certificate, certificate_pending, certificate_resource, ClusterCredentials, ClusterModel,
    BROKER_PASSWORD_KEY, PASSWORD_KEY,
};
use crate::controller::MANAGER;
use crate::crd::conditions::Health;
use crate::error::KubeContext;
use crate::Result;

/// Length of a generated password (alphanumeric: ~190 bits).
pub const PASSWORD_LEN: usize = 32;

/// A new random password.
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

/// The passwords of the cluster's own users (existing, or new), or the health to report
/// when a Secret the cluster names cannot be used.
pub async fn dereference(
    client: &Client,
    model: &ClusterModel<'_>,
) -> Result<std::result::Result<Option<ClusterCredentials>, Health>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &model.namespace);
    let issued = match certificate(model) {
        Some(wanted) => match request_certificate(client, model, &wanted).await? {
            Ok(pending) => Some(pending),
            Err(health) => return Ok(Err(health)),
        },
        None => None,
    };
    if let Some(name) = model.tls_secret() {
        let name = name.as_str();
        let secret = secrets.get_opt(name).await.kube("get", "Secret", name)?;
        if let (None, Some(pending)) = (&secret, issued) {
            // cert-manager has not written the Secret yet: its reason, not ours.
            let why = pending.unwrap_or_else(|| "not issued yet".into());
            return Ok(Err(Health::progressing(
                "WaitingForCertificate",
                format!("cert-manager Certificate {name}: {why}"),
            )));
        }
        if let Err(problem) = check_tls_secret(name, secret.as_ref(), Timestamp::now()) {
            return Ok(Err(Health::stalled("TlsSecretInvalid", problem)));
        }
    }
    if !model.secured() {
        return Ok(Ok(None));
    }
    let name = model.operator_credentials_name();
    let existing = secrets.get_opt(&name).await.kube("get", "Secret", &name)?;
    let password = |key: &str| {
        existing
            .as_ref()
            .and_then(|s| secret_text(s, key))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(generate_password)
    };
    Ok(Ok(Some(ClusterCredentials {
        operator: password(PASSWORD_KEY),
        broker: password(BROKER_PASSWORD_KEY),
    })))
}

/// Applies the listener's cert-manager Certificate; `Ok(why it is not issued)` (`None`:
/// issued, or no word yet), or the health when cert-manager is not installed.
async fn request_certificate(
    client: &Client,
    model: &ClusterModel<'_>,
    wanted: &DynamicObject,
) -> Result<std::result::Result<Option<String>, Health>> {
    let resource = certificate_resource();
    let installed = match client.list_api_group_resources("cert-manager.io/v1").await {
        Ok(list) => list.resources.iter().any(|r| r.name == resource.plural),
        Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 404 => false,
        Err(source) => {
            return Err(crate::Error::Kube {
                action: "discover",
                kind: "Certificate",
                name: "cert-manager.io/v1".into(),
                source,
            })
        }
    };
    if !installed {
        return Ok(Err(Health::stalled(
            "CertManagerMissing",
            "listeners.kafka.tls.issuerRef needs cert-manager (cert-manager.io/v1 Certificate is not served): install it, or name a Secret with tls.secretName",
        )));
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &model.namespace, &resource);
    let name = model.certificate_name();
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(wanted),
        )
        .await
        .kube("apply", "Certificate", &name)?;
    Ok(Ok(certificate_pending(&applied)))
}

/// A key of a Secret as text.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret_bytes(secret, key)?).ok()
}

/// A key of a Secret.
pub fn secret_bytes(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    Some(secret.data.as_ref()?.get(key)?.0.clone())
}

/// The TLS Secret holds `tls.crt` (certificates that parse and are valid at `now`),
/// `tls.key` (a private key) and `ca.crt` (at least one certificate).
pub fn check_tls_secret(
    name: &str,
    secret: Option<&Secret>,
    now: Timestamp,
) -> std::result::Result<(), String> {
    let secret = secret.ok_or_else(|| {
        format!("TLS Secret {name} does not exist (listeners.kafka.tls.secretName)")
    })?;
    let bytes = |key: &str| -> std::result::Result<Vec<u8>, String> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("TLS Secret {name} has no {key}"))
    };
    let chain = certificates(&bytes("tls.crt")?)
        .map_err(|e| format!("TLS Secret {name}: tls.crt is not a PEM certificate chain: {e}"))?;
    for (i, der) in chain.iter().enumerate() {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("TLS Secret {name}: certificate {i} of tls.crt: {e}"))?;
        let validity = &cert.tbs_certificate.validity;
        let from = validity.not_before.to_unix_duration().as_secs() as i64;
        let until = validity.not_after.to_unix_duration().as_secs() as i64;
        let now = now.as_second();
        if now > until {
            return Err(format!(
                "TLS Secret {name}: certificate {i} of tls.crt expired at {}",
                Timestamp::from_second(until).map_or(until.to_string(), |t| t.to_string())
            ));
        }
        if now < from {
            return Err(format!(
                "TLS Secret {name}: certificate {i} of tls.crt is not valid before {}",
                Timestamp::from_second(from).map_or(from.to_string(), |t| t.to_string())
            ));
        }
    }
    PrivateKeyDer::from_pem_slice(&bytes("tls.key")?)
        .map_err(|e| format!("TLS Secret {name}: tls.key is not a PEM private key: {e}"))?;
    certificates(&bytes("ca.crt")?)
        .map_err(|e| format!("TLS Secret {name}: ca.crt is not a PEM certificate: {e}"))?;
    Ok(())
}

/// The certificates of a PEM bundle; at least one.
fn certificates(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// A TLS Secret with a self-signed certificate valid from `from` to `until` (years).
    fn tls_secret(from: i32, until: i32) -> Secret {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["lake-bootstrap".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let cert = params.self_signed(&key).unwrap().pem();
        Secret {
            data: Some(BTreeMap::from([
                ("tls.crt".to_string(), ByteString(cert.clone().into_bytes())),
                (
                    "tls.key".to_string(),
                    ByteString(key.serialize_pem().into_bytes()),
                ),
                ("ca.crt".to_string(), ByteString(cert.into_bytes())),
            ])),
            ..Secret::default()
        }
    }

    fn at(year: i16) -> Timestamp {
        format!("{year}-06-01T00:00:00Z").parse().unwrap()
    }

    #[test]
    fn a_valid_secret_passes() {
        assert_eq!(
            check_tls_secret("t", Some(&tls_secret(2020, 2040)), at(2026)),
            Ok(())
        );
    }

    #[test]
    fn every_broken_secret_is_named_with_what_is_wrong() {
        let missing = check_tls_secret("lake-tls", None, at(2026)).unwrap_err();
        assert!(missing.contains("lake-tls does not exist"), "{missing}");

        let expired = check_tls_secret("t", Some(&tls_secret(2020, 2024)), at(2026)).unwrap_err();
        assert!(expired.contains("expired at 2024-01-01"), "{expired}");
        let early = check_tls_secret("t", Some(&tls_secret(2030, 2040)), at(2026)).unwrap_err();
        assert!(early.contains("not valid before 2030-01-01"), "{early}");

        for key in ["tls.crt", "tls.key", "ca.crt"] {
            let mut s = tls_secret(2020, 2040);
            s.data.as_mut().unwrap().remove(key);
            let e = check_tls_secret("t", Some(&s), at(2026)).unwrap_err();
            assert_eq!(e, format!("TLS Secret t has no {key}"));

            let mut s = tls_secret(2020, 2040);
            s.data
                .as_mut()
                .unwrap()
                .insert(key.into(), ByteString(b"not pem".to_vec()));
            let e = check_tls_secret("t", Some(&s), at(2026)).unwrap_err();
            assert!(e.contains(key), "{e}");
        }

        // PEM that is not a certificate.
        let mut s = tls_secret(2020, 2040);
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        s.data
            .as_mut()
            .unwrap()
            .insert("tls.crt".into(), ByteString(garbage.as_bytes().to_vec()));
        let e = check_tls_secret("t", Some(&s), at(2026)).unwrap_err();
        assert!(e.contains("certificate 0 of tls.crt"), "{e}");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
