//! `kubectl sluice evidence <feed>` and `sluice evidence --feed`: the Feed read through a
//! Kubernetes API (a local HTTP server answering as the API server would, reached through
//! a kubeconfig), the report from the broker it stands in for as well.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{query_param, report, run, stderr, stdout, Answer, FakeServer, FROM, TO};
use serde_json::json;
use sluice_cli::feed_target::{resolve, Target};

const KUBECTL_SLUICE: &str = env!("CARGO_BIN_EXE_kubectl-sluice");
const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

const FEEDS: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/feeds";
const CLUSTERS: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/securitylakeclusters";

/// An API server with Feed `security/dns` (topic `dns-events`, cluster `lake`) and
/// cluster `security/lake` (HTTP port 9100), which also serves the feed's report.
fn api_server() -> FakeServer {
    FakeServer::start(|target| {
        let path = target.split('?').next().unwrap_or_default();
        match path {
            p if p == format!("{FEEDS}/dns") => Answer::json(
                "200 OK",
                json!({
                    "apiVersion": "sluice.dev/v1alpha1", "kind": "Feed",
                    "metadata": {"name": "dns", "namespace": "security"},
                    "spec": {"clusterRef": {"name": "lake"}, "topicName": "dns-events",
                             "owner": {"team": "team-dns", "contact": "#dns"}},
                })
                .to_string(),
            ),
            p if p == format!("{CLUSTERS}/lake") => Answer::json(
                "200 OK",
                json!({
                    "apiVersion": "sluice.dev/v1alpha1", "kind": "SecurityLakeCluster",
                    "metadata": {"name": "lake", "namespace": "security"},
                    "spec": {"listeners": {"metrics": {"port": 9100}}},
                })
                .to_string(),
            ),
            "/v1/evidence" if query_param(target, "topic").as_deref() == Some("dns-events") => {
                Answer::json(
                    "200 OK",
                    serde_json::to_string(&report("dns-events", true)).unwrap(),
                )
            }
            _ => Answer::json(
                "404 Not Found",
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": format!("{path} not found"),
                    "reason": "NotFound", "code": 404,
                })
                .to_string(),
            ),
        }
    })
}

/// A kubeconfig whose current context is the fake API server, namespace `security`;
/// removed when dropped.
struct Kubeconfig(PathBuf);

impl Kubeconfig {
    fn new(server: &FakeServer, name: &str) -> Kubeconfig {
        let path = std::env::temp_dir().join(format!(
            "sluice-cli-kubeconfig-{}-{name}.yaml",
            std::process::id()
        ));
        let yaml = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: security\n\
             current-context: fake\n",
            server.url()
        );
        std::fs::write(&path, yaml).unwrap();
        Kubeconfig(path)
    }
}

impl Drop for Kubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `bin evidence <args>` over the window [FROM, TO), reaching Kubernetes through a
/// kubeconfig that points at `server`; `test` names the kubeconfig file, so that tests
/// running at the same time do not share one.
fn evidence(bin: &str, server: &FakeServer, test: &str, args: &[&str]) -> Output {
    let kubeconfig = Kubeconfig::new(server, test);
    let mut all = vec!["evidence"];
    all.extend_from_slice(args);
    all.extend(["--from", FROM, "--to", TO]);
    run(bin, &all, Some(&kubeconfig.0))
}

#[test]
fn the_plugin_reports_on_the_feeds_topic() {
    let server = api_server();
    // No -n: the context's namespace.
    let out = evidence(
        KUBECTL_SLUICE,
        &server,
        "plugin",
        &["dns", "--broker", &server.url()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Evidence report\n  Topic      dns-events\n"),
        "{}",
        stdout(&out)
    );
    let targets = server.targets();
    assert_eq!(targets[0], format!("{FEEDS}/dns"));
    // --broker given: the cluster is not read.
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert_eq!(
        query_param(&targets[1], "topic").as_deref(),
        Some("dns-events")
    );
}

#[test]
fn sluice_reads_a_feed_in_the_namespace_given() {
    let server = api_server();
    let out = evidence(
        SLUICE,
        &server,
        "sluice",
        &[
            "--feed",
            "dns",
            "-n",
            "security",
            "--broker",
            &server.url(),
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let printed: sluice_schema::evidence::Report = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed, report("dns-events", true));
}

#[test]
fn an_unknown_feed_is_named_in_the_error() {
    let server = api_server();
    let out = evidence(
        KUBECTL_SLUICE,
        &server,
        "unknown",
        &["other", "-n", "security"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!("error: Feed security/other not found ({FEEDS}/other not found)\n")
    );
}

#[tokio::test]
async fn without_broker_the_feed_resolves_to_its_clusters_service() {
    let server = api_server();
    let config = kube::Config::new(server.url().parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let target = resolve(client, "security", "dns", None).await.unwrap();
    assert_eq!(
        target,
        Target {
            topic: "dns-events".into(),
            broker: "http://lake-brokers.security.svc:9100".into(),
        }
    );
    assert_eq!(
        server.targets(),
        [format!("{FEEDS}/dns"), format!("{CLUSTERS}/lake")]
    );
}
