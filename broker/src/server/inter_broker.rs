//! The inter-broker settings from the broker's flags (`--inter-broker-listener-name`,
//! `--inter-broker-user`, `--inter-broker-ssl-ca-file`), checked at start-up: a listener
//! this broker cannot log in to or verify is refused here rather than failing every
//! dead-letter forward later ([`crate::security::inter_broker`]).

use anyhow::{anyhow, Context};
use sluice_auth::Mechanism;
use sluice_protocol::client::{ClientSecurity, ScramLogin, TlsClient};
use tracing::warn;

use crate::config::BrokerArgs;
use crate::security::inter_broker::InterBroker;
use crate::security::sasl::SaslMechanism;
use crate::security::tls::ClientAuth;
use crate::security::SecurityProtocol;

impl BrokerArgs {
    /// The settings `--inter-broker-listener-name`, `--inter-broker-user` and
    /// `--inter-broker-ssl-ca-file` give, checked against the listener's protocol: a
    /// listener this broker cannot log in to or verify is refused here, at start-up,
    /// rather than failing every forward later.
    pub fn inter_broker(&self) -> anyhow::Result<InterBroker> {
        let args = self;
        let specs = args.listener_specs()?;
        let spec = match args.inter_broker_listener_name.as_deref().map(str::trim) {
            None | Some("") => specs.first().context("no listener")?,
            Some(name) => {
                let upper = name.to_ascii_uppercase();
                specs.iter().find(|s| s.name == upper).ok_or_else(|| {
                    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    anyhow!(
                        "--inter-broker-listener-name {name}: no such listener (the listeners are {})",
                        names.join(", ")
                    )
                })?
            }
        };
        let (listener, protocol) = (spec.name.clone(), spec.protocol);
        let tls = if protocol.uses_tls() {
            Some(tls_client(args, &listener, protocol)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(scram_login(args, &listener, protocol)?)
        } else {
            if let Some(user) = &args.inter_broker_user {
                warn!(%listener, %protocol, user = %user, "--inter-broker-user is ignored: the inter-broker listener takes no SASL login");
            }
            None
        };
        Ok(InterBroker {
            listener,
            protocol,
            security: ClientSecurity { tls, sasl },
        })
    }
}

/// TLS to the peers: their certificates must chain to `--inter-broker-ssl-ca-file`
/// (default `--ssl-client-ca-file`) and name the host they advertise.
fn tls_client(
    args: &BrokerArgs,
    listener: &str,
    protocol: SecurityProtocol,
) -> anyhow::Result<TlsClient> {
    anyhow::ensure!(
        args.ssl_client_auth != ClientAuth::Required,
        "inter-broker listener {listener} ({protocol}) requires client certificates (--ssl-client-auth required), and brokers present none to each other: choose a listener without TLS with --inter-broker-listener-name, or --ssl-client-auth requested"
    );
    let (flag, path) = match (&args.inter_broker_ssl_ca_file, &args.ssl_client_ca_file) {
        (Some(path), _) => ("--inter-broker-ssl-ca-file", path),
        (None, Some(path)) => ("--ssl-client-ca-file", path),
        (None, None) => anyhow::bail!(
            "inter-broker listener {listener} uses {protocol}: give --inter-broker-ssl-ca-file (SLUICE_INTER_BROKER_SSL_CA_FILE), the PEM bundle of the CA that signed the brokers' certificates"
        ),
    };
    let pem = std::fs::read(path).with_context(|| format!("reading {flag} {}", path.display()))?;
    TlsClient::from_ca_pem(&pem).with_context(|| format!("{flag} {}", path.display()))
}

/// The SCRAM login of `--inter-broker-user`, its password from its line in
/// `--sasl-bootstrap-users-file`.
fn scram_login(
    args: &BrokerArgs,
    listener: &str,
    protocol: SecurityProtocol,
) -> anyhow::Result<ScramLogin> {
    let user = args
        .inter_broker_user
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "inter-broker listener {listener} uses {protocol}: give --inter-broker-user (SLUICE_INTER_BROKER_USER), a user with a USER=PASSWORD line in --sasl-bootstrap-users-file, for the brokers to log in to each other as"
            )
        })?;
    anyhow::ensure!(
        args.sasl_bootstrap_users_file.is_some(),
        "--inter-broker-user {user}: its password is its line in --sasl-bootstrap-users-file, and none is given"
    );
    let password = args
        .bootstrap_users()?
        .into_iter()
        .find_map(|(u, p)| (u == user).then_some(p))
        .ok_or_else(|| {
            anyhow!(
                "--inter-broker-user {user} has no {user}=PASSWORD line in --sasl-bootstrap-users-file"
            )
        })?;
    let scram: Vec<Mechanism> = args
        .sasl_mechanisms()?
        .into_iter()
        .filter_map(|m| match m {
            SaslMechanism::Scram(m) => Some(m),
            SaslMechanism::Plain => None,
        })
        .collect();
    let mechanism = if scram.contains(&Mechanism::Sha512) {
        Mechanism::Sha512
    } else {
        *scram.first().ok_or_else(|| {
            anyhow!(
                "inter-broker listener {listener} uses {protocol}, but no SCRAM mechanism is enabled (--sasl-enabled-mechanisms): brokers log in to each other with SCRAM"
            )
        })?
    };
    if let Ok(true) = args.authorizer_enabled() {
        let principal = format!("User:{user}");
        if !args.super_users.iter().any(|s| s.trim() == principal) {
            warn!(%principal, "the inter-broker user is not in --super-users: forwarded dead letters need its ACLs (WRITE on every dead-letter topic)");
        }
    }
    Ok(ScramLogin {
        mechanism,
        user: user.to_string(),
        password,
    })
}

#[cfg(test)]
mod tests {
    use crate::governance::dead_letter::peer_address;
    use std::collections::BTreeMap;

    use clap::Parser;

    use super::*;
    use crate::coordination::metadata::{Endpoint, NodeInfo};

    fn args(extra: &[&str]) -> BrokerArgs {
        let mut all = vec!["sluice-broker", "--storage=memory://"];
        all.extend_from_slice(extra);
        BrokerArgs::try_parse_from(all).unwrap()
    }

    fn node(listeners: &[(&str, &str, i32)]) -> NodeInfo {
        NodeInfo {
            host: "default".into(),
            port: 1,
            incarnation: 1,
            alive: true,
            draining: false,
            http_port: None,
            listeners: listeners
                .iter()
                .map(|(name, host, port)| {
                    (
                        name.to_string(),
                        Endpoint {
                            host: host.to_string(),
                            port: *port,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn by_default_peers_are_reached_on_the_first_listener_in_plaintext() {
        let ib = args(&[]).inter_broker().unwrap();
        assert_eq!(ib.listener, "PLAINTEXT");
        assert!(ib.security.tls.is_none() && ib.security.sasl.is_none());
        let ib = args(&[
            "--listeners=EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            "--listener-security-protocol-map=EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT",
        ])
        .inter_broker()
        .unwrap();
        assert_eq!(ib.listener, "EXTERNAL");
    }

    #[test]
    fn the_named_listener_is_dialed_and_older_peers_by_their_one_address() {
        let ib = args(&[
            "--listeners=EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            "--listener-security-protocol-map=EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT",
            "--inter-broker-listener-name=internal",
        ])
        .inter_broker()
        .unwrap();
        assert_eq!(ib.listener, "INTERNAL");
        let peer = node(&[
            ("EXTERNAL", "kafka.example.com", 443),
            ("INTERNAL", "b-1", 9093),
        ]);
        assert_eq!(peer_address(&ib, &peer).as_deref(), Some("b-1:9093"));
        assert_eq!(peer_address(&ib, &node(&[])).as_deref(), Some("default:1"));
        assert_eq!(peer_address(&ib, &node(&[("EXTERNAL", "x", 1)])), None);
        assert_eq!(
            peer_address(&ib, &node(&[("INTERNAL", "::1", 9093)])).as_deref(),
            Some("[::1]:9093")
        );

        let err = args(&["--inter-broker-listener-name=CONTROL"])
            .inter_broker()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such listener") && err.contains("PLAINTEXT"),
            "{err}"
        );
    }

    fn users_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_sasl_listener_needs_a_user_with_a_bootstrap_password() {
        let users = users_file("admin=a\nbroker=b-pw\n");
        let users_arg = format!("--sasl-bootstrap-users-file={}", users.path().display());
        let base = [
            "--listeners=SASL_PLAINTEXT://127.0.0.1:0",
            users_arg.as_str(),
        ];

        let err = args(&base).inter_broker().unwrap_err().to_string();
        assert!(
            err.contains("SASL_PLAINTEXT") && err.contains("--inter-broker-user"),
            "{err}"
        );
        let err = args(&[&base[..], &["--inter-broker-user=carol"]].concat())
            .inter_broker()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("carol") && err.contains("no carol=PASSWORD line"),
            "{err}"
        );
        let err = args(&[
            "--listeners=SASL_PLAINTEXT://127.0.0.1:0",
            "--inter-broker-user=broker",
        ])
        .inter_broker()
        .unwrap_err()
        .to_string();
        assert!(err.contains("--sasl-bootstrap-users-file"), "{err}");

        let ib = args(&[&base[..], &["--inter-broker-user=broker"]].concat())
            .inter_broker()
            .unwrap();
        let login = ib.security.sasl.unwrap();
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("broker", "b-pw")
        );
        assert_eq!(login.mechanism, Mechanism::Sha512);
        assert!(ib.security.tls.is_none());

        let only_256 = [
            &base[..],
            &[
                "--inter-broker-user=broker",
                "--sasl-enabled-mechanisms=PLAIN,SCRAM-SHA-256",
            ],
        ]
        .concat();
        let ib = args(&only_256).inter_broker().unwrap();
        assert_eq!(ib.security.sasl.unwrap().mechanism, Mechanism::Sha256);
        let plain_only = [
            &base[..],
            &[
                "--inter-broker-user=broker",
                "--sasl-enabled-mechanisms=PLAIN",
            ],
        ]
        .concat();
        let err = args(&plain_only).inter_broker().unwrap_err().to_string();
        assert!(err.contains("no SCRAM mechanism"), "{err}");
    }

    #[test]
    fn a_tls_listener_needs_a_ca_and_no_required_client_certificates() {
        let base = [
            "--listeners=SSL://127.0.0.1:0",
            "--ssl-certificate-file=/nonexistent/tls.crt",
            "--ssl-key-file=/nonexistent/tls.key",
        ];
        let err = args(&base).inter_broker().unwrap_err().to_string();
        assert!(err.contains("--inter-broker-ssl-ca-file"), "{err}");
        let err = args(
            &[
                &base[..],
                &["--inter-broker-ssl-ca-file=/nonexistent/ca.crt"],
            ]
            .concat(),
        )
        .inter_broker()
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/ca.crt"),
            "{err:#}"
        );
        let not_pem = users_file("not a certificate");
        let ca = format!("--ssl-client-ca-file={}", not_pem.path().display());
        let err = args(&[&base[..], &[ca.as_str()]].concat())
            .inter_broker()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("--ssl-client-ca-file")
                && format!("{err:#}").contains("CA bundle"),
            "{err:#}"
        );
        let err = args(&[&base[..], &[ca.as_str(), "--ssl-client-auth=required"]].concat())
            .inter_broker()
            .unwrap_err()
            .to_string();
        assert!(err.contains("client certificates"), "{err}");
    }
}
