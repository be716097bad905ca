//! The admin client against a secured `sluice-broker`: a SASL_SSL listener with a
//! certificate from a test CA, SCRAM logins, the authorizer on and `admin` a super user.
//! ACLs and SCRAM credentials round-trip, logins succeed and fail as they should, and an
//! untrusted certificate is a TLS error, not a hang.

mod common;

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sluice_auth::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use sluice_auth::Mechanism;
use sluice_operator::kafka::{AdminClient, AdminError, ClientSecurity, ScramLogin, TlsClient};
use sluice_protocol::client::ConnectError;

use common::broker::Broker;

const TIMEOUT: Duration = Duration::from_secs(10);
const ADMIN_PASSWORD: &str = "admin-pw-7f3a";

/// A test CA and a broker certificate it signed for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn ca() -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn pki() -> Pki {
    let (ca_params, ca_key, ca_pem) = ca();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "broker");
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A broker with one SASL_SSL listener; `admin` (a super user) can log in. The files it
/// reads live in `dir`, which must outlive it.
fn secured_broker(pki: &Pki, dir: &tempfile::TempDir) -> Broker {
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let cert = write("broker.crt", &pki.cert_pem);
    let key = write("broker.key", &pki.key_pem);
    let ca = write("ca.crt", &pki.ca_pem);
    let users = write("users", &format!("admin={ADMIN_PASSWORD}\n"));
    Broker::start_with(|bootstrap| {
        [
            "--listeners",
            &format!("SASL_SSL://{bootstrap}"),
            "--ssl-certificate-file",
            &cert,
            "--ssl-key-file",
            &key,
            "--sasl-bootstrap-users-file",
            &users,
            "--super-users",
            "User:admin",
            "--authorizer",
            "on",
            // What a SASL_SSL broker needs to reach the others (it has none here).
            "--inter-broker-user",
            "admin",
            "--inter-broker-ssl-ca-file",
            &ca,
        ]
        .map(String::from)
        .to_vec()
    })
}

fn login(ca_pem: &str, user: &str, password: &str, mechanism: Mechanism) -> ClientSecurity {
    ClientSecurity {
        tls: Some(TlsClient::from_ca_pem(ca_pem.as_bytes()).unwrap()),
        sasl: Some(ScramLogin {
            mechanism,
            user: user.into(),
            password: password.into(),
        }),
    }
}

fn admin_login(ca_pem: &str) -> ClientSecurity {
    login(ca_pem, "admin", ADMIN_PASSWORD, Mechanism::Sha512)
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    host: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: host.into(),
        operation,
        permission,
    }
}

fn sorted(mut acls: Vec<AclBinding>) -> Vec<AclBinding> {
    acls.sort();
    acls
}

#[tokio::test]
async fn acls_round_trip_over_sasl_ssl() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = secured_broker(&pki, &dir);
    let mut admin = AdminClient::connect(&broker.bootstrap, TIMEOUT, &admin_login(&pki.ca_pem))
        .await
        .unwrap();
    assert_eq!(
        admin.describe_acls(&AclFilter::every()).await.unwrap(),
        vec![]
    );

    let read = acl(
        ResourceType::Topic,
        "logs",
        PatternType::Literal,
        "User:alice",
        "*",
        Operation::Read,
        Permission::Allow,
    );
    let write = acl(
        ResourceType::Topic,
        "logs-",
        PatternType::Prefixed,
        "User:alice",
        "*",
        Operation::Write,
        Permission::Allow,
    );
    let deny = acl(
        ResourceType::Group,
        "audit",
        PatternType::Literal,
        "User:bob",
        "10.0.0.1",
        Operation::Describe,
        Permission::Deny,
    );
    let all = vec![read.clone(), write.clone(), deny.clone()];
    admin.create_acls(&all).await.unwrap();
    // Creating what is there already changes nothing.
    admin
        .create_acls(std::slice::from_ref(&read))
        .await
        .unwrap();
    assert_eq!(
        sorted(admin.describe_acls(&AclFilter::every()).await.unwrap()),
        sorted(all.clone())
    );
    let alices = AclFilter {
        principal: Some("User:alice".into()),
        ..AclFilter::every()
    };
    assert_eq!(
        sorted(admin.describe_acls(&alices).await.unwrap()),
        sorted(vec![read.clone(), write.clone()])
    );

    let invalid = AclBinding {
        principal: "alice".into(),
        ..read.clone()
    };
    let err = admin.create_acls(&[invalid]).await.unwrap_err();
    assert_eq!(err.code(), Some(ResponseError::InvalidRequest), "{err}");
    assert!(err.to_string().contains("alice"), "{err}");

    // Exactly the bindings named, each counted once.
    assert_eq!(
        admin
            .delete_acls(&[read.clone(), write.clone(), read.clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(admin.delete_acls(&[read, write]).await.unwrap(), 0);
    assert_eq!(
        admin.describe_acls(&AclFilter::every()).await.unwrap(),
        vec![deny.clone()]
    );
    assert_eq!(admin.delete_acls(&[deny]).await.unwrap(), 1);
    assert_eq!(
        admin.describe_acls(&AclFilter::every()).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn scram_credentials_are_managed_and_log_in() {
    const ALICE_PASSWORD: &str = "alice-pw-91c2";
    const WRONG_PASSWORD: &str = "not-alices-pw-5d0e";
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = secured_broker(&pki, &dir);
    let mut admin = AdminClient::connect(&broker.bootstrap, TIMEOUT, &admin_login(&pki.ca_pem))
        .await
        .unwrap();
    let alice = |password: &str, mechanism| login(&pki.ca_pem, "alice", password, mechanism);

    admin
        .upsert_scram("alice", Mechanism::Sha512, ALICE_PASSWORD, 4096)
        .await
        .unwrap();
    let described = admin
        .describe_scram_users(&["alice".into(), "bob".into(), "alice".into()])
        .await
        .unwrap();
    assert_eq!(described.len(), 1, "bob has no credentials: {described:?}");
    assert_eq!(described["alice"], vec![Mechanism::Sha512]);
    let everyone = admin.describe_scram_users(&[]).await.unwrap();
    assert_eq!(everyone["alice"], vec![Mechanism::Sha512]);
    assert!(everyone.contains_key("admin"), "{everyone:?}");

    // Alice logs in with her password, as herself: no ACL lets her describe ACLs.
    let mut as_alice = AdminClient::connect(
        &broker.bootstrap,
        TIMEOUT,
        &alice(ALICE_PASSWORD, Mechanism::Sha512),
    )
    .await
    .unwrap();
    let refused = as_alice
        .describe_acls(&AclFilter::every())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ResponseError::ClusterAuthorizationFailed),
        "{refused}"
    );

    for (security, what) in [
        (alice(WRONG_PASSWORD, Mechanism::Sha512), "wrong password"),
        (
            alice(ALICE_PASSWORD, Mechanism::Sha256),
            "no SCRAM-SHA-256 credential",
        ),
    ] {
        let err = AdminClient::connect(&broker.bootstrap, TIMEOUT, &security)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: logged in"));
        assert!(
            matches!(
                err,
                AdminError::Refused(ConnectError::Authentication { .. })
            ),
            "{what}: {err:?}"
        );
        assert!(!err.is_transient(), "{what}");
        for shown in [err.to_string(), format!("{err:?}"), format!("{security:?}")] {
            assert!(
                !shown.contains(WRONG_PASSWORD) && !shown.contains(ALICE_PASSWORD),
                "{what}: {shown}"
            );
        }
    }

    let too_few = admin
        .upsert_scram("alice", Mechanism::Sha256, ALICE_PASSWORD, 100)
        .await
        .unwrap_err();
    assert_eq!(
        too_few.code(),
        Some(ResponseError::UnacceptableCredential),
        "{too_few}"
    );

    assert!(admin
        .delete_scram("alice", Mechanism::Sha512)
        .await
        .unwrap());
    assert!(
        !admin
            .delete_scram("alice", Mechanism::Sha512)
            .await
            .unwrap(),
        "already gone"
    );
    assert_eq!(
        admin
            .describe_scram_users(&["alice".into()])
            .await
            .unwrap()
            .get("alice"),
        None
    );
    let err = AdminClient::connect(
        &broker.bootstrap,
        TIMEOUT,
        &alice(ALICE_PASSWORD, Mechanism::Sha512),
    )
    .await
    .err()
    .expect("alice has no credential left");
    assert!(
        matches!(
            err,
            AdminError::Refused(ConnectError::Authentication { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = secured_broker(&pki, &dir);
    let (_, _, other_ca) = ca();
    let wrong_name = TlsClient::from_ca_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .with_server_name("kafka.example.com")
        .unwrap();
    for (tls, what) in [
        (
            TlsClient::from_ca_pem(other_ca.as_bytes()).unwrap(),
            "another CA",
        ),
        (wrong_name, "another name"),
    ] {
        let security = ClientSecurity {
            tls: Some(tls),
            ..admin_login(&pki.ca_pem)
        };
        let started = Instant::now();
        let err = AdminClient::connect(&broker.bootstrap, TIMEOUT, &security)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: connected"));
        assert!(
            matches!(err, AdminError::Refused(ConnectError::Tls { .. })),
            "{what}: {err:?}"
        );
        assert!(!err.is_transient(), "{what}");
        assert!(
            started.elapsed() < TIMEOUT / 2,
            "{what}: took {:?}",
            started.elapsed()
        );
    }
    // The right CA, with the name the certificate carries instead of the address.
    let named = ClientSecurity {
        tls: Some(
            TlsClient::from_ca_pem(pki.ca_pem.as_bytes())
                .unwrap()
                .with_server_name("localhost")
                .unwrap(),
        ),
        ..admin_login(&pki.ca_pem)
    };
    AdminClient::connect(&broker.bootstrap, TIMEOUT, &named)
        .await
        .unwrap();
}
