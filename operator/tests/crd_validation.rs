//! The CRDs: `crds/` is what `sluice-operator crd` prints, every CEL rule compiles, the
//! examples pass the rules, and the bad inputs of the issue are refused with a clear
//! message (CEL evaluated client-side with kube's `cel` feature, as the API server would).

use kube::core::cel::{compile_schema, Validator};
use kube::CustomResourceExt;
use serde_json::{json, Value};
use sluice_operator::crd::feed::{SchemaFormat, ValidationMode};
use sluice_operator::crd::{crds_yaml, Feed, SecurityLakeCluster};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn repo_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The messages of the rules `object` (updating `old`) breaks.
fn violations<K: CustomResourceExt>(object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema::<K>(), object, old) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn crds_directory_and_chart_hold_the_generated_crds() {
    let generated = crds_yaml();
    assert_eq!(
        repo_file("crds/sluice.dev.yaml"),
        generated,
        "run: sluice-operator crd > crds/sluice.dev.yaml"
    );
    assert_eq!(
        repo_file("charts/sluice/crds/sluice.dev.yaml"),
        generated,
        "copy crds/ into the chart"
    );
}

#[test]
fn every_cel_rule_compiles() {
    for (kind, schema) in [
        ("SecurityLakeCluster", schema::<SecurityLakeCluster>()),
        ("Feed", schema::<Feed>()),
    ] {
        let compiled = compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{kind}: {:?}",
            compiled.compilation_errors()
        );
    }
}

#[test]
fn the_examples_pass_every_rule() {
    for (file, kind) in [
        ("examples/security-lake-cluster.yaml", "SecurityLakeCluster"),
        (
            "examples/security-lake-cluster-local-bucket.yaml",
            "SecurityLakeCluster",
        ),
        (
            "examples/security-lake-cluster-aws.yaml",
            "SecurityLakeCluster",
        ),
        ("examples/feed.yaml", "Feed"),
        (
            "examples/secure/security-lake-cluster.yaml",
            "SecurityLakeCluster",
        ),
        ("examples/secure/feed.yaml", "Feed"),
        ("examples/ocsf/dns-activity-feed.yaml", "Feed"),
    ] {
        let object = yaml(&repo_file(file));
        let errors = if kind == "Feed" {
            // Typed parsing too: the example is a Feed the operator can read.
            serde_json::from_value::<Feed>(object.clone()).unwrap();
            violations::<Feed>(&object, Some(&object))
        } else {
            serde_json::from_value::<SecurityLakeCluster>(object.clone()).unwrap();
            violations::<SecurityLakeCluster>(&object, Some(&object))
        };
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

fn feed() -> Value {
    yaml(&repo_file("examples/feed.yaml"))
}

fn cluster() -> Value {
    yaml(&repo_file("examples/security-lake-cluster.yaml"))
}

#[test]
fn partitions_only_grow() {
    let old = feed();
    let mut fewer = feed();
    fewer["spec"]["partitions"] = json!(6);
    assert_eq!(
        violations::<Feed>(&fewer, Some(&old)),
        ["partitions can only grow: Kafka cannot remove partitions"]
    );
    let mut more = feed();
    more["spec"]["partitions"] = json!(24);
    assert!(violations::<Feed>(&more, Some(&old)).is_empty());
    // On creation there is no old object: any count is fine.
    assert!(violations::<Feed>(&fewer, None).is_empty());
}

#[test]
fn the_topic_and_cluster_of_a_feed_are_immutable() {
    let old = feed();
    let mut renamed = feed();
    renamed["spec"]["topicName"] = json!("cloudtrail-v2");
    assert_eq!(
        violations::<Feed>(&renamed, Some(&old)),
        ["the topic name is immutable: create a new Feed for a new topic"]
    );
    // Spelling out the default name is not a rename.
    let mut explicit = feed();
    explicit["spec"]["topicName"] = json!("cloudtrail");
    assert!(violations::<Feed>(&explicit, Some(&old)).is_empty());
    let mut moved = feed();
    moved["spec"]["clusterRef"]["name"] = json!("other");
    assert_eq!(
        violations::<Feed>(&moved, Some(&old)),
        ["clusterRef is immutable: a topic does not move between clusters"]
    );
}

#[test]
fn the_dead_letter_topic_differs_from_the_topic() {
    let mut f = feed();
    f["spec"]["deadLetter"]["topicName"] = json!("cloudtrail");
    assert_eq!(
        violations::<Feed>(&f, None),
        ["the dead-letter topic must differ from the feed's topic"]
    );
}

fn ocsf_feed() -> Value {
    yaml(&repo_file("examples/ocsf/dns-activity-feed.yaml"))
}

#[test]
fn the_ocsf_example_is_a_feed_validating_dns_activity_with_the_shipped_schema() {
    let feed: Feed = serde_json::from_value(ocsf_feed()).unwrap();
    let schema = feed.spec.schema.as_ref().expect("spec.schema");
    assert_eq!(schema.format, SchemaFormat::Json);
    assert_eq!(schema.mode, ValidationMode::DeadLetter);
    assert_eq!(
        feed.schema_subject().as_deref(),
        Some("ocsf-dns-activity-value")
    );
    let inline: Value = serde_json::from_str(schema.schema.as_deref().unwrap()).unwrap();
    let shipped: Value =
        serde_json::from_str(&repo_file("examples/ocsf/schemas/dns_activity.json")).unwrap();
    assert_eq!(
        inline, shipped,
        "the example's inline schema is examples/ocsf/schemas/dns_activity.json"
    );
    assert_eq!(inline["properties"]["class_uid"]["const"], 4003);
}

#[test]
fn dead_letter_mode_needs_a_dead_letter_topic() {
    let mut f = ocsf_feed();
    f["spec"].as_object_mut().unwrap().remove("deadLetter");
    assert_eq!(
        violations::<Feed>(&f, None),
        ["schema.mode deadLetter needs spec.deadLetter: the dead-letter topic the broker writes invalid records to"]
    );
    f["spec"]["schema"]["mode"] = json!("observe");
    assert!(violations::<Feed>(&f, None).is_empty());
    // Without spec.schema there is nothing to check.
    f["spec"].as_object_mut().unwrap().remove("schema");
    assert!(violations::<Feed>(&f, None).is_empty());
}

#[test]
fn a_schema_table_needs_the_feeds_schema() {
    let mut f = feed();
    f["spec"]["table"] = json!({"mode": "schema"});
    assert_eq!(
        violations::<Feed>(&f, None),
        ["table.mode schema needs spec.schema: the table's columns come from the feed's schema"]
    );
    f["spec"]["table"]["mode"] = json!("raw");
    assert!(violations::<Feed>(&f, None).is_empty());
    let mut ocsf = ocsf_feed();
    ocsf["spec"]["table"]["mode"] = json!("schema");
    assert!(violations::<Feed>(&ocsf, None).is_empty());
}

#[test]
fn the_examples_write_tables_and_their_defaults_are_the_brokers() {
    let cloudtrail: Feed = serde_json::from_value(feed()).unwrap();
    let table = cloudtrail.spec.table.expect("spec.table");
    assert!(table.enabled);
    assert_eq!(
        (table.namespace.as_str(), table.partitioning.as_str()),
        ("security", "day")
    );
    let defaults: sluice_operator::crd::feed::TableSpec =
        serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        (
            defaults.namespace.as_str(),
            defaults.partitioning.as_str(),
            defaults.commit_interval.as_str(),
            defaults.target_file_size,
        ),
        (
            sluice_schema::table_config::DEFAULT_NAMESPACE,
            "hour",
            "1m",
            sluice_schema::table_config::DEFAULT_TARGET_FILE_BYTES as i64,
        )
    );
    let lake: SecurityLakeCluster = serde_json::from_value(cluster()).unwrap();
    let catalog = lake.spec.lake.expect("spec.lake").catalog;
    assert!(catalog.uri.starts_with("http://"));
    assert!(catalog.properties_secret_ref.is_some());
}

#[test]
fn a_sqlite_catalog_lives_in_the_shared_bucket() {
    let rule = "a sqlite catalog needs storage.bucket and a path under /var/lib/sluice/bucket/, the one directory every broker shares";
    let mut c = cluster();
    c["spec"]["lake"]["catalog"] = json!({"uri": "sqlite:/var/lib/sluice/bucket/catalog.db"});
    assert_eq!(
        violations::<SecurityLakeCluster>(&c, None),
        [rule],
        "s3 storage"
    );
    let mut bucket = yaml(&repo_file(
        "examples/security-lake-cluster-local-bucket.yaml",
    ));
    for (uri, ok) in [
        ("sqlite:/var/lib/sluice/bucket/tables/catalog.db", true),
        ("sqlite:///var/lib/sluice/bucket/catalog.db?mode=rwc", true),
        ("sqlite:/tmp/catalog.db", false),
        ("sqlite:/var/lib/sluice/bucket/", false),
        ("https://catalog:8181", true),
    ] {
        bucket["spec"]["lake"] = json!({"catalog": {"uri": uri}});
        let errors = violations::<SecurityLakeCluster>(&bucket, None);
        assert_eq!(errors.is_empty(), ok, "{uri}: {errors:?}");
    }
}

#[test]
fn replica_bounds_are_checked() {
    let mut c = cluster();
    c["spec"]["minReplicas"] = json!(13);
    let errors = violations::<SecurityLakeCluster>(&c, None);
    assert!(
        errors.contains(&"minReplicas must not exceed maxReplicas".to_string()),
        "{errors:?}"
    );
    let mut c = cluster();
    c["spec"]["replicas"] = json!(20);
    assert_eq!(
        violations::<SecurityLakeCluster>(&c, None),
        ["replicas must lie between minReplicas and maxReplicas"]
    );
}

#[test]
fn storage_rules() {
    let mut both = cluster();
    both["spec"]["storage"]["bucket"] = json!({"size": "1Gi"});
    assert!(violations::<SecurityLakeCluster>(&both, None)
        .iter()
        .any(|m| m.starts_with("set exactly one of storage.url")));

    let mut delete_existing = cluster();
    delete_existing["spec"]["storage"]["deletionPolicy"] = json!("Delete");
    assert_eq!(
        violations::<SecurityLakeCluster>(&delete_existing, None),
        ["deletionPolicy Delete applies to a bucket the operator provisions; an existing url is never deleted"]
    );

    let old = cluster();
    let mut moved = cluster();
    moved["spec"]["storage"]["url"] = json!("s3://elsewhere/prod");
    assert_eq!(
        violations::<SecurityLakeCluster>(&moved, Some(&old)),
        ["storage.url is immutable: the brokers would lose their data"]
    );

    let mut long = cluster();
    long["metadata"]["name"] = json!("a".repeat(46));
    assert_eq!(
        violations::<SecurityLakeCluster>(&long, None),
        ["a SecurityLakeCluster name has at most 45 characters, so its broker pod names fit in 63"]
    );
}

fn aws_cluster() -> Value {
    yaml(&repo_file("examples/security-lake-cluster-aws.yaml"))
}

#[test]
fn aws_provider_rules() {
    // The aws section goes with the aws provider, both ways.
    let mut no_section = aws_cluster();
    no_section["spec"].as_object_mut().unwrap().remove("aws");
    assert_eq!(
        violations::<SecurityLakeCluster>(&no_section, None),
        ["spec.aws is required with provider aws, and only allowed with it"]
    );
    let mut local_with_aws = aws_cluster();
    local_with_aws["spec"]["provider"] = json!("local");
    assert!(violations::<SecurityLakeCluster>(&local_with_aws, None)
        .contains(&"spec.aws is required with provider aws, and only allowed with it".to_string()));

    // The bucket and region are named; the identity is the role, not a Secret.
    let mut no_region = aws_cluster();
    no_region["spec"]["storage"]
        .as_object_mut()
        .unwrap()
        .remove("region");
    assert_eq!(
        violations::<SecurityLakeCluster>(&no_region, None),
        ["provider aws needs storage.url (the bucket and prefix) and storage.region"]
    );
    let mut secret = aws_cluster();
    secret["spec"]["storage"]["credentialsSecret"] = json!("keys");
    assert_eq!(
        violations::<SecurityLakeCluster>(&secret, None),
        ["provider aws gives the brokers an IAM role (IRSA): storage.credentialsSecret is not used with it"]
    );
    let mut alias = aws_cluster();
    alias["spec"]["storage"]["encryptionKey"] = json!("alias/lake");
    assert_eq!(
        violations::<SecurityLakeCluster>(&alias, None),
        ["with provider aws, storage.encryptionKey is a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), so the brokers' policy can name it"]
    );

    // Delete is allowed for a bucket the operator creates, never for an existing one.
    let mut delete = aws_cluster();
    delete["spec"]["storage"]["deletionPolicy"] = json!("Delete");
    assert!(violations::<SecurityLakeCluster>(&delete, None).is_empty());
    delete["spec"]["aws"]["createBucket"] = json!(false);
    assert_eq!(
        violations::<SecurityLakeCluster>(&delete, None),
        ["deletionPolicy Delete applies to a bucket the operator provisions; an existing url is never deleted"]
    );

    // Gateway endpoints take route tables; Interface endpoints take subnets.
    let mut gateway_subnets = aws_cluster();
    gateway_subnets["spec"]["aws"]["vpcEndpoint"]["subnetIds"] = json!(["subnet-0a1b2c3d"]);
    let endpoint_rule = "a Gateway endpoint takes routeTableIds only; an Interface endpoint takes subnetIds and optionally securityGroupIds";
    assert_eq!(
        violations::<SecurityLakeCluster>(&gateway_subnets, None),
        [endpoint_rule]
    );
    let mut interface = aws_cluster();
    interface["spec"]["aws"]["vpcEndpoint"] = json!({
        "vpcId": "vpc-0a1b2c3d4e5f60718", "type": "Interface",
        "subnetIds": ["subnet-0a1b2c3d", "subnet-0e1f2a3b"], "securityGroupIds": ["sg-0a1b2c3d"],
    });
    assert!(violations::<SecurityLakeCluster>(&interface, None).is_empty());
    interface["spec"]["aws"]["vpcEndpoint"]
        .as_object_mut()
        .unwrap()
        .remove("subnetIds");
    assert_eq!(
        violations::<SecurityLakeCluster>(&interface, None),
        [endpoint_rule]
    );

    // Reserved tag keys.
    let mut reserved = aws_cluster();
    reserved["spec"]["aws"]["tags"]["sluice.dev/cluster"] = json!("other/lake");
    assert_eq!(
        violations::<SecurityLakeCluster>(&reserved, None),
        ["tag keys starting with sluice.dev/ or aws: are reserved"]
    );

    // What would orphan or take over resources cannot change.
    let old = aws_cluster();
    let mut switched = aws_cluster();
    switched["spec"]["aws"]["createBucket"] = json!(false);
    assert_eq!(
        violations::<SecurityLakeCluster>(&switched, Some(&old)),
        ["aws.createBucket is immutable"]
    );
    let mut moved = aws_cluster();
    moved["spec"]["aws"]["vpcEndpoint"]["vpcId"] = json!("vpc-0ffffffffffffffff");
    assert_eq!(
        violations::<SecurityLakeCluster>(&moved, Some(&old)),
        ["vpcEndpoint.vpcId is immutable"]
    );
    let mut to_local = cluster();
    to_local["spec"]["provider"] = json!("aws");
    assert!(
        violations::<SecurityLakeCluster>(&to_local, Some(&cluster()))
            .contains(&"provider is immutable".to_string())
    );
}

/// The example Feed with `replays`.
fn feed_with_replays(replays: Value) -> Value {
    let mut f = feed();
    f["spec"]["replays"] = replays;
    f
}

fn replay(id: &str, from: &str, to: &str) -> Value {
    json!({"id": id, "from": from, "to": to, "reason": "parser bug 42",
           "requestedBy": "alice", "approvedBy": "cloud-security"})
}

#[test]
fn replays_are_windows_of_the_table_with_unique_ids() {
    let ok = feed_with_replays(json!([
        replay("fix-42", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"),
        // 10:30 UTC to 11:00 UTC: compared as times, not as text.
        replay(
            "fix-43",
            "2026-12-01T11:30:00+01:00",
            "2026-12-01T11:00:00Z"
        ),
    ]));
    assert_eq!(violations::<Feed>(&ok, None), Vec::<String>::new());
    let typed: Feed = serde_json::from_value(ok.clone()).unwrap();
    assert_eq!(
        typed.spec.replays[0].bytes_per_second as u64,
        sluice_schema::replay::DEFAULT_REPLAY_BYTES_PER_SECOND
    );
    assert!(!typed.spec.replays[0].dead_letters);
    assert_eq!(
        typed.spec.replays[0].approved_by.as_deref(),
        Some("cloud-security")
    );

    let backwards = feed_with_replays(json!([replay(
        "fix-42",
        "2026-12-01T11:00:00Z",
        "2026-12-01T11:00:00Z"
    )]));
    assert_eq!(
        violations::<Feed>(&backwards, None),
        ["a replay's from must be before its to"]
    );
    let twice = feed_with_replays(json!([
        replay("fix-42", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"),
        replay("fix-42", "2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z"),
    ]));
    assert_eq!(
        violations::<Feed>(&twice, None),
        ["replay ids must be unique"]
    );
    let mut no_table = ok.clone();
    no_table["spec"].as_object_mut().unwrap().remove("table");
    assert_eq!(
        violations::<Feed>(&no_table, None),
        ["spec.replays needs spec.table: a replay replaces rows of the feed's table"]
    );
    no_table["spec"]["replays"] = json!([]);
    assert!(violations::<Feed>(&no_table, None).is_empty());
}

#[test]
fn the_replay_policy_defaults_to_the_feeds_own_team() {
    let mut c = cluster();
    c["spec"]["replayPolicy"] = json!({"approvers": ["secops-leads"]});
    assert!(violations::<SecurityLakeCluster>(&c, None).is_empty());
    let lake: SecurityLakeCluster = serde_json::from_value(c).unwrap();
    let policy = lake.spec.replay_policy.unwrap();
    assert_eq!(policy.approvers, ["secops-leads"]);
    assert!(
        policy.allow_feed_owner,
        "the feed's team approves by default"
    );
}

#[test]
fn client_certificates_need_tls_and_ports_differ() {
    let mut c = cluster();
    c["spec"]["listeners"] = json!({"kafka": {"port": 9092, "authentication": {"type": "tls"}}});
    assert_eq!(
        violations::<SecurityLakeCluster>(&c, None),
        ["authentication type tls needs listeners.kafka.tls: client certificates are checked in the TLS handshake"]
    );
    c["spec"]["listeners"]["kafka"]["tls"] = json!({"secretName": "lake-tls"});
    assert!(violations::<SecurityLakeCluster>(&c, None).is_empty());
    c["spec"]["listeners"]["control"] = json!({"port": 9092});
    assert_eq!(
        violations::<SecurityLakeCluster>(&c, None),
        ["the kafka, control and metrics listeners need different ports"]
    );
}

#[test]
fn a_consumer_group_is_a_name_or_a_prefix() {
    let mut f = feed();
    f["spec"]["access"] =
        json!({"consumers": [{"user": "siem", "groups": [{"name": "a", "prefix": "b"}]}]});
    assert_eq!(
        violations::<Feed>(&f, None),
        ["a group is given by exactly one of name or prefix"]
    );
    f["spec"]["access"]["consumers"][0]["groups"] = json!([{}]);
    assert_eq!(
        violations::<Feed>(&f, None),
        ["a group is given by exactly one of name or prefix"]
    );
    f["spec"]["access"]["consumers"][0]["groups"] = json!([{"prefix": "siem-"}]);
    assert!(violations::<Feed>(&f, None).is_empty());
}

#[test]
fn a_certificate_comes_from_a_secret_or_an_issuer() {
    let mut c = cluster();
    c["spec"]["listeners"] = json!({"kafka": {"port": 9092, "tls": {}}});
    let one_of = ["tls takes exactly one of secretName or issuerRef"];
    assert_eq!(violations::<SecurityLakeCluster>(&c, None), one_of);
    c["spec"]["listeners"]["kafka"]["tls"] =
        json!({"secretName": "t", "issuerRef": {"name": "ca"}});
    assert_eq!(violations::<SecurityLakeCluster>(&c, None), one_of);
    c["spec"]["listeners"]["kafka"]["tls"] = json!({"issuerRef": {"name": "ca"}});
    assert!(violations::<SecurityLakeCluster>(&c, None).is_empty());
}
