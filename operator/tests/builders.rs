//! The pure builders, from YAML fixtures: `fixtures/clusters/<name>.yaml` in,
//! `fixtures/clusters/<name>.objects.yaml` out (every object, in apply order). Run with
//! `UPDATE_FIXTURES=1` to rewrite the expected files after an intended change, then
//! review the diff.

mod common;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use kube::ResourceExt;
use sluice_operator::controller::cluster::build::{self, ClusterModel, CONFIG_HASH_ANNOTATION};
use sluice_operator::controller::OperatorConfig;
use sluice_operator::crd::SecurityLakeCluster;

use common::{fixture, fixture_path};

fn config() -> OperatorConfig {
    OperatorConfig {
        broker_image: "ghcr.io/sluice-dev/sluice-broker:test".into(),
        operator_namespace: Some("sluice-system".into()),
        ..OperatorConfig::default()
    }
}

fn objects_yaml(cluster: &SecurityLakeCluster, monitor: bool) -> String {
    let config = config();
    let mut model = ClusterModel::new(cluster, &config).unwrap();
    // What the reconciler reads or generates; only a secured cluster uses it.
    model.credentials = Some(build::ClusterCredentials {
        operator: "fixture-password".into(),
        broker: "fixture-broker-password".into(),
    });
    let o = build::build(&model, monitor);
    let mut docs = vec![serde_yaml::to_string(&o.service_account).unwrap()];
    if let Some(secret) = &o.operator_credentials {
        docs.push(serde_yaml::to_string(secret).unwrap());
    }
    docs.extend([
        serde_yaml::to_string(&o.config_map).unwrap(),
        serde_yaml::to_string(&o.headless_service).unwrap(),
        serde_yaml::to_string(&o.bootstrap_service).unwrap(),
    ]);
    if let Some(claim) = &o.bucket_claim {
        docs.push(serde_yaml::to_string(claim).unwrap());
    }
    docs.push(serde_yaml::to_string(&o.stateful_set).unwrap());
    docs.push(serde_yaml::to_string(&o.pod_disruption_budget).unwrap());
    docs.push(serde_yaml::to_string(&o.network_policy).unwrap());
    if let Some(monitor) = &o.service_monitor {
        docs.push(serde_yaml::to_string(monitor).unwrap());
    }
    if let Some(certificate) = build::certificate(&model) {
        docs.push(serde_yaml::to_string(&certificate).unwrap());
    }
    docs.iter().map(|d| format!("---\n{d}")).collect()
}

fn check_golden(name: &str, monitor: bool) {
    let cluster: SecurityLakeCluster = fixture(&format!("clusters/{name}.yaml"));
    let actual = objects_yaml(&cluster, monitor);
    let path = fixture_path(&format!("clusters/{name}.objects.yaml"));
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", path.display()));
    assert!(
        actual == expected,
        "built objects differ from {} (UPDATE_FIXTURES=1 rewrites it):\n{actual}",
        path.display()
    );
}

#[test]
fn s3_cluster_builds_the_expected_objects() {
    check_golden("s3", true);
}

#[test]
fn bucket_cluster_builds_the_expected_objects() {
    check_golden("bucket", false);
}

#[test]
fn lake_cluster_builds_the_expected_objects() {
    check_golden("lake", false);
}

#[test]
fn secure_cluster_builds_the_expected_objects() {
    check_golden("secure", false);
}

#[test]
fn cert_manager_cluster_builds_the_expected_objects() {
    check_golden("cert-manager", false);
}

#[test]
fn a_tls_only_cluster_has_one_ssl_listener_its_brokers_can_forward_on() {
    let mut cluster: SecurityLakeCluster = fixture("clusters/secure.yaml");
    cluster.spec.listeners.kafka.authentication = None;
    cluster.spec.authorization = None;
    let config = config();
    let model = ClusterModel::new(&cluster, &config).unwrap();
    let env = build::config_map(&model).data.unwrap();
    assert_eq!(env["SLUICE_LISTENERS"], "CLIENT://0.0.0.0:9092");
    assert_eq!(env["SLUICE_LISTENER_SECURITY_PROTOCOL_MAP"], "CLIENT:SSL");
    // The broker refuses to start an SSL inter-broker listener without a CA to trust.
    assert_eq!(
        env["SLUICE_INTER_BROKER_SSL_CA_FILE"],
        "/etc/sluice/tls/ca.crt"
    );
    assert!(!env.contains_key("SLUICE_AUTHORIZER"));
    assert!(!env.contains_key("SLUICE_SASL_BOOTSTRAP_USERS_FILE"));
    assert!(build::operator_credentials(&model).is_none());
}

#[test]
fn a_secure_cluster_gives_the_operator_and_brokers_their_own_listener_and_nobody_else() {
    let cluster: SecurityLakeCluster = fixture("clusters/secure.yaml");
    let config = config();
    let mut model = ClusterModel::new(&cluster, &config).unwrap();
    model.credentials = Some(build::ClusterCredentials {
        operator: "pw".into(),
        broker: "bpw".into(),
    });
    let o = build::build(&model, false);
    let env = o.config_map.data.as_ref().unwrap();
    assert_eq!(
        env["SLUICE_LISTENER_SECURITY_PROTOCOL_MAP"],
        "CLIENT:SASL_SSL,CONTROL:SASL_SSL"
    );
    assert_eq!(
        env["SLUICE_SUPER_USERS"],
        "User:sluice-operator;User:sluice-broker;User:admin"
    );
    assert_eq!(env["SLUICE_INTER_BROKER_LISTENER_NAME"], "CONTROL");
    assert_eq!(env["SLUICE_AUTHORIZER"], "on");
    assert_eq!(env["SLUICE_SASL_ENABLED_MECHANISMS"], "SCRAM-SHA-512");
    assert!(
        !env.values().any(|v| v.contains("pw")),
        "no password in the ConfigMap"
    );
    // The control port admits the operator's pods and the brokers only.
    let rules = o.network_policy.spec.unwrap().ingress.unwrap();
    let control = rules
        .iter()
        .find(|r| {
            r.ports.as_ref().unwrap()[0].port
                == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9093))
        })
        .expect("a rule for the control port");
    let from = control.from.as_ref().unwrap();
    let names: Vec<&str> = from
        .iter()
        .map(|p| {
            let labels = p
                .pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap();
            labels["app.kubernetes.io/name"].as_str()
        })
        .collect();
    assert_eq!(names, ["sluice-operator", "sluice-broker"]);
    // The operator's password reaches the brokers as a mounted file, never as env.
    let users = o.operator_credentials.unwrap().data.unwrap()["users"]
        .0
        .clone();
    assert_eq!(
        String::from_utf8(users).unwrap(),
        "sluice-operator=pw\nsluice-broker=bpw\n"
    );
    let pod = o.stateful_set.spec.unwrap().template.spec.unwrap();
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    for path in ["/etc/sluice/tls", "/etc/sluice/operator"] {
        let m = mounts.iter().find(|m| m.mount_path == path).unwrap();
        assert_eq!(m.read_only, Some(true), "{path}");
    }
}

fn pod_template(cluster: &SecurityLakeCluster) -> PodTemplateSpec {
    let config = config();
    let model = ClusterModel::new(cluster, &config).unwrap();
    build::build(&model, false)
        .stateful_set
        .spec
        .unwrap()
        .template
}

fn pod_spec(cluster: &SecurityLakeCluster) -> PodSpec {
    pod_template(cluster).spec.unwrap()
}

#[test]
fn node_id_is_the_pod_ordinal_and_each_broker_advertises_its_own_dns_name() {
    let cluster: SecurityLakeCluster = fixture("clusters/s3.yaml");
    let env = pod_spec(&cluster).containers[0].env.clone().unwrap();
    let node_id = env.iter().find(|e| e.name == "SLUICE_NODE_ID").unwrap();
    let field = node_id
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        field.field_path,
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let advertise = env.iter().find(|e| e.name == "SLUICE_ADVERTISE").unwrap();
    assert_eq!(
        advertise.value.as_deref(),
        Some("$(POD_NAME).lake-brokers.security.svc.cluster.local:9092")
    );
    let pod_name = env.iter().position(|e| e.name == "POD_NAME").unwrap();
    let adv = env
        .iter()
        .position(|e| e.name == "SLUICE_ADVERTISE")
        .unwrap();
    assert!(
        pod_name < adv,
        "$(POD_NAME) expands only from variables defined before it"
    );
}

/// The pod template's configuration hash.
fn config_hash(cluster: &SecurityLakeCluster) -> String {
    pod_template(cluster).metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
}

#[test]
fn a_configuration_change_rolls_the_brokers_and_nothing_else_does() {
    let cluster: SecurityLakeCluster = fixture("clusters/s3.yaml");
    let mut lingered = cluster.clone();
    lingered.spec.wal.linger_ms = 50;
    assert_ne!(
        config_hash(&cluster),
        config_hash(&lingered),
        "a WAL setting changes the template"
    );
    let mut scaled = cluster.clone();
    scaled.spec.replicas = 5;
    assert_eq!(
        config_hash(&cluster),
        config_hash(&scaled),
        "scaling does not restart brokers"
    );
}

#[test]
fn building_twice_gives_identical_objects() {
    let cluster: SecurityLakeCluster = fixture("clusters/s3.yaml");
    assert_eq!(objects_yaml(&cluster, true), objects_yaml(&cluster, true));
}

#[test]
fn the_bucket_claim_has_no_owner_so_deleting_the_cluster_cannot_delete_the_data() {
    let cluster: SecurityLakeCluster = fixture("clusters/bucket.yaml");
    let config = config();
    let model = ClusterModel::new(&cluster, &config).unwrap();
    let objects = build::build(&model, false);
    let claim = objects.bucket_claim.expect("a provisioned bucket");
    assert!(claim.owner_references().is_empty());
    assert_eq!(model.storage_url(), "file:///var/lib/sluice/bucket");
    // Every other object is owned by the cluster (garbage-collected with it).
    assert_eq!(objects.stateful_set.owner_references()[0].name, "dev");
    assert_eq!(
        objects.stateful_set.owner_references()[0].controller,
        Some(true)
    );
    assert_eq!(objects.config_map.owner_references().len(), 1);
}

#[test]
fn listeners_without_allow_from_admit_everyone_and_with_it_admit_the_operator_too() {
    let cluster: SecurityLakeCluster = fixture("clusters/s3.yaml");
    let config = config();
    let model = ClusterModel::new(&cluster, &config).unwrap();
    let policy = build::network_policy(&model).spec.unwrap();
    let rules = policy.ingress.unwrap();
    let kafka_from = rules[0].from.clone().expect("kafka is restricted");
    assert_eq!(kafka_from.len(), 2, "the allowFrom peer and the operator");
    let operator = &kafka_from[1];
    assert_eq!(
        operator
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["kubernetes.io/metadata.name"],
        "sluice-system"
    );
    assert!(rules[1].from.is_none(), "metrics without allowFrom: open");
}

#[test]
fn the_lake_catalog_reaches_the_brokers_and_its_secret_is_a_file_never_an_env_value() {
    let config = config();
    let cluster: SecurityLakeCluster = fixture("clusters/lake.yaml");
    let model = ClusterModel::new(&cluster, &config).unwrap();
    let data = build::config_map(&model).data.unwrap();
    let lake: Vec<(&str, &str)> = data
        .iter()
        .filter(|(k, _)| k.starts_with("SLUICE_LAKE_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        lake,
        [
            (
                "SLUICE_LAKE_CATALOG",
                "https://catalog.lakehouse.svc:8181/catalog"
            ),
            (
                "SLUICE_LAKE_CATALOG_PROPS",
                "s3.region=eu-west-1,warehouse=security"
            ),
            (
                "SLUICE_LAKE_CATALOG_PROPS_FILE",
                "/etc/sluice/lake/catalog.properties"
            ),
            ("SLUICE_LAKE_WAREHOUSE", "s3://security-lake/tables"),
        ]
    );
    let pod = pod_spec(&cluster);
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "lake-catalog")
        .unwrap();
    let secret = volume.secret.unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("lake-catalog"));
    let item = &secret.items.unwrap()[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str()),
        ("credentials", "catalog.properties")
    );
    let mount = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "lake-catalog")
        .unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/sluice/lake", Some(true))
    );

    // Without a lake section the brokers keep their defaults: nothing is set.
    for name in ["s3", "bucket"] {
        let cluster: SecurityLakeCluster = fixture(&format!("clusters/{name}.yaml"));
        let model = ClusterModel::new(&cluster, &config).unwrap();
        let data = build::config_map(&model).data.unwrap();
        assert!(
            !data.keys().any(|k| k.starts_with("SLUICE_LAKE_")),
            "{name}"
        );
        assert!(!pod_spec(&cluster)
            .volumes
            .unwrap()
            .iter()
            .any(|v| v.name == "lake-catalog"));
    }

    // A catalog change rolls the brokers, as every configuration change does.
    let mut moved = cluster.clone();
    moved.spec.lake.as_mut().unwrap().catalog.uri = "https://other:8181/catalog".into();
    assert_ne!(config_hash(&cluster), config_hash(&moved));
}
