//! The `aws` provider against an AWS API emulator: moto's server (PyPI `moto[server]`,
//! which `scripts/test` installs) on a free 127.0.0.1 port, one per test, killed at the
//! end (`sluice_testkit::Moto`). The SDK is pointed at it with an endpoint override;
//! every call goes through the provider's call log, so the tests state which calls a
//! reconcile makes.
//!
//! Long because: one concern, the provider's plan → apply → observe cycle against one
//! emulator, with one scenario per AWS resource family; they share the call-log fixtures
//! above, and splitting them would copy those fixtures into each file.
//!
//! moto missing is a failure, not a skip: set `SLUICE_MOTO_SERVER` or run `scripts/test`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice_operator::crd::SecurityLakeCluster;
use sluice_operator::provision::aws::calls::{CallLog, FaultPoint};
use sluice_operator::provision::aws::desired::{role_name, CLUSTER_TAG, ROLE_ARN_ANNOTATION};
use sluice_operator::provision::aws::AwsProvider;
use sluice_operator::provision::{CloudProvider, ProvisionError};
use sluice_testkit::Moto;

mod common;
use common::aws::{mutating, oidc_provider, policy, request, sdk_config, ACCOUNT, REGION};

const ISSUER: &str = "oidc.eks.eu-west-1.amazonaws.com/id/SLUICETEST";

/// The emulator, the provider under test and plain SDK clients to check its work.
struct Env {
    _moto: Moto,
    provider: AwsProvider,
    calls: CallLog,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    ec2: aws_sdk_ec2::Client,
    oidc_arn: String,
    vpc: String,
    route_tables: Vec<String>,
    subnets: Vec<String>,
    security_group: String,
}

async fn env() -> Env {
    let moto = Moto::start();
    let config = sdk_config(moto.endpoint()).await;
    let calls = CallLog::recording();
    let provider = AwsProvider::with_config(config.clone(), calls.clone());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let iam = aws_sdk_iam::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);

    // What the customer's account already has: the EKS cluster's OIDC provider and a VPC.
    let oidc_arn = oidc_provider(&iam, ISSUER).await;
    assert_eq!(
        oidc_arn,
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}")
    );
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    // One S3 gateway endpoint per route table (AWS allows no more): tests that delete
    // endpoints give each cluster its own.
    let mut route_tables = Vec::new();
    for _ in 0..6 {
        route_tables.push(
            ec2.create_route_table()
                .vpc_id(&vpc)
                .send()
                .await
                .expect("CreateRouteTable")
                .route_table
                .unwrap()
                .route_table_id
                .unwrap(),
        );
    }
    let mut subnets = Vec::new();
    for (i, az) in ["eu-west-1a", "eu-west-1b"].iter().enumerate() {
        subnets.push(
            ec2.create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.20.{i}.0/24"))
                .availability_zone(*az)
                .send()
                .await
                .expect("CreateSubnet")
                .subnet
                .unwrap()
                .subnet_id
                .unwrap(),
        );
    }
    let security_group = ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name("sluice-s3-endpoint")
        .description("HTTPS from the brokers")
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id
        .unwrap();
    calls.take();
    Env {
        _moto: moto,
        provider,
        calls,
        s3,
        iam,
        ec2,
        oidc_arn,
        vpc,
        route_tables,
        subnets,
        security_group,
    }
}

/// A cluster `ns/name` over `s3://<bucket>/prod` with a Gateway endpoint on the first two
/// route tables.
fn cluster(env: &Env, ns: &str, name: &str, bucket: &str, extra: Value) -> SecurityLakeCluster {
    let mut c = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "SecurityLakeCluster",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "provider": "aws",
            "storage": { "url": format!("s3://{bucket}/prod"), "region": REGION },
            "aws": {
                "createBucket": true,
                "oidcProviderArn": env.oidc_arn,
                "vpcEndpoint": {
                    "vpcId": env.vpc,
                    "type": "Gateway",
                    "routeTableIds": [env.route_tables[0], env.route_tables[1]],
                },
                "tags": { "owner": "secops", "cost-center": "4711" },
            },
        },
    });
    merge(&mut c, extra);
    serde_json::from_value(c).unwrap()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

const FIRST_RECONCILE: [&str; 11] = [
    "s3:HeadBucket",
    "iam:GetRole",
    "ec2:DescribeVpcEndpoints",
    "s3:CreateBucket",
    "s3:PutBucketTagging",
    "s3:PutPublicAccessBlock",
    "s3:PutBucketEncryption",
    "s3:PutBucketLifecycleConfiguration",
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "ec2:CreateVpcEndpoint",
];

const STEADY_STATE: [&str; 8] = [
    "s3:HeadBucket",
    "s3:GetBucketTagging",
    "s3:GetPublicAccessBlock",
    "s3:GetBucketEncryption",
    "s3:GetBucketLifecycleConfiguration",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "ec2:DescribeVpcEndpoints",
];

/// Asserts that everything `c` needs exists with the right settings and documents, and
/// that nothing was made twice.
async fn assert_provisioned(env: &Env, c: &SecurityLakeCluster, bucket: &str) {
    let req = request(c);
    let key = req.cluster_key();
    // Bucket: region, public access block, encryption, lifecycle, tags.
    let location = env
        .s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(location.location_constraint().unwrap().as_str(), REGION);
    let pab = env
        .s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let enc = env
        .s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    match &req.kms_key_arn {
        None => assert_eq!(default.sse_algorithm().as_str(), "AES256"),
        Some(key) => {
            assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
            assert_eq!(default.kms_master_key_id(), Some(key.as_str()));
        }
    }
    let lifecycle = env
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(lifecycle.rules().len(), 1);
    let rule = &lifecycle.rules()[0];
    assert_eq!(rule.id(), Some("sluice-abort-incomplete-uploads"));
    assert_eq!(rule.filter().and_then(|f| f.prefix()), Some("prod/"));
    assert_eq!(
        rule.abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
        Some(1)
    );
    assert!(
        rule.expiration().is_none(),
        "no object, WAL or other, ever expires"
    );
    let tags: BTreeMap<String, String> = env
        .s3
        .get_bucket_tagging()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    let expected_tags = BTreeMap::from([
        (CLUSTER_TAG.to_string(), key.clone()),
        (
            "sluice.dev/managed-by".to_string(),
            "sluice-operator".to_string(),
        ),
        ("owner".to_string(), "secops".to_string()),
        ("cost-center".to_string(), "4711".to_string()),
    ]);
    assert_eq!(tags, expected_tags);

    // Role: path, trust policy for the broker ServiceAccount, least-privilege policy, tags.
    let name = role_name(&req.namespace, &req.name);
    let role = env
        .iam
        .get_role()
        .role_name(&name)
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(role.path(), "/sluice/");
    assert_eq!(
        role.arn(),
        format!("arn:aws:iam::{ACCOUNT}:role/sluice/{name}")
    );
    assert_eq!(
        policy(role.assume_role_policy_document().unwrap()),
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "BrokerServiceAccount",
                "Effect": "Allow",
                "Principal": { "Federated": env.oidc_arn },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": { "StringEquals": {
                    format!("{ISSUER}:sub"): format!("system:serviceaccount:{}:{}-broker", req.namespace, req.name),
                    format!("{ISSUER}:aud"): "sts.amazonaws.com",
                }},
            }],
        })
    );
    let role_tags: BTreeMap<String, String> = role
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(role_tags, expected_tags);
    let inline = env
        .iam
        .get_role_policy()
        .role_name(&name)
        .policy_name("sluice-broker-storage")
        .send()
        .await
        .unwrap();
    let mut statements = vec![
        json!({
            "Sid": "ClusterObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/prod/*"),
        }),
        json!({
            "Sid": "ListClusterPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": format!("arn:aws:s3:::{bucket}"),
            "Condition": { "StringLike": { "s3:prefix": ["prod/*"] } },
        }),
    ];
    if let Some(key) = &req.kms_key_arn {
        statements.push(json!({
            "Sid": "BucketKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key,
        }));
    }
    assert_eq!(
        policy(inline.policy_document()),
        json!({ "Version": "2012-10-17", "Statement": statements })
    );
    let attached = env
        .iam
        .list_attached_role_policies()
        .role_name(&name)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty(), "no managed policy");

    // Endpoint: exactly one, in the VPC, of the asked type, with the asked attachments.
    let endpoints = endpoints_of(env, &key).await;
    assert_eq!(endpoints.len(), 1, "exactly one endpoint: {endpoints:?}");
    let e = &endpoints[0];
    let spec = c.spec.aws.as_ref().unwrap().vpc_endpoint.as_ref().unwrap();
    assert_eq!(e.vpc_id(), Some(env.vpc.as_str()));
    assert_eq!(e.service_name(), Some("com.amazonaws.eu-west-1.s3"));
    assert_eq!(e.vpc_endpoint_type().unwrap().as_str(), spec.type_.as_str());
    let mut rts = e.route_table_ids().to_vec();
    rts.sort();
    let mut want = spec.route_table_ids.clone();
    want.sort();
    assert_eq!(rts, want);
}

/// Live endpoints tagged for `key`.
async fn endpoints_of(env: &Env, key: &str) -> Vec<aws_sdk_ec2::types::VpcEndpoint> {
    env.ec2
        .describe_vpc_endpoints()
        .send()
        .await
        .unwrap()
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            e.tags()
                .iter()
                .any(|t| t.key() == Some(CLUSTER_TAG) && t.value() == Some(key))
        })
        .filter(|e| {
            let state = e.state().map(|s| s.as_str().to_ascii_lowercase());
            !matches!(state.as_deref(), Some("deleted" | "deleting"))
        })
        .cloned()
        .collect()
}

async fn bucket_exists(env: &Env, bucket: &str) -> bool {
    env.s3.head_bucket().bucket(bucket).send().await.is_ok()
}

async fn role_exists(env: &Env, name: &str) -> bool {
    env.iam.get_role().role_name(name).send().await.is_ok()
}

#[tokio::test]
async fn first_reconcile_creates_everything_and_the_second_changes_nothing() {
    let env = env().await;
    let c = cluster(&env, "security", "lake", "acme-lake", json!({}));
    let req = request(&c);

    let first = env.provider.ensure(&req).await.unwrap();
    assert_eq!(env.calls.take(), FIRST_RECONCILE);
    assert_provisioned(&env, &c, "acme-lake").await;
    env.calls.take();

    let status = first.aws.clone().unwrap();
    let name = role_name("security", "lake");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/sluice/{name}");
    assert_eq!(status.bucket_arn.as_deref(), Some("arn:aws:s3:::acme-lake"));
    assert_eq!(status.role_arn.as_deref(), Some(role_arn.as_str()));
    assert_eq!(
        status.role_policy_name.as_deref(),
        Some("sluice-broker-storage")
    );
    let endpoint = endpoints_of(&env, "security/lake").await[0]
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    assert_eq!(status.vpc_endpoint_id.as_deref(), Some(endpoint.as_str()));
    assert_eq!(
        first.service_account_annotations,
        BTreeMap::from([(ROLE_ARN_ANNOTATION.to_string(), role_arn.clone())])
    );
    assert_eq!(first.changes.len(), 8, "{:?}", first.changes);

    // Steady state: reads only, and the same answer.
    let second = env.provider.ensure(&req).await.unwrap();
    assert_eq!(env.calls.take(), STEADY_STATE);
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(second.aws, first.aws);
    assert_eq!(
        second.service_account_annotations,
        first.service_account_annotations
    );
}

#[tokio::test]
async fn drift_is_put_back_with_only_the_calls_it_needs() {
    let env = env().await;
    let c = cluster(&env, "security", "lake", "drift-lake", json!({}));
    let req = request(&c);
    env.provider.ensure(&req).await.unwrap();
    let name = role_name("security", "lake");
    let endpoint = endpoints_of(&env, "security/lake").await[0]
        .vpc_endpoint_id()
        .unwrap()
        .to_string();

    // Someone opens the bucket up, drops the lifecycle rule, widens the broker policy and
    // moves the endpoint to another route table.
    env.s3
        .delete_public_access_block()
        .bucket("drift-lake")
        .send()
        .await
        .unwrap();
    env.s3
        .delete_bucket_lifecycle()
        .bucket("drift-lake")
        .send()
        .await
        .unwrap();
    env.iam
        .put_role_policy()
        .role_name(&name)
        .policy_name("sluice-broker-storage")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    env.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&endpoint)
        .remove_route_table_ids(&env.route_tables[1])
        .add_route_table_ids(&env.route_tables[2])
        .send()
        .await
        .unwrap();
    env.calls.take();

    let fixed = env.provider.ensure(&req).await.unwrap();
    assert_eq!(
        mutating(&env.calls.take()),
        [
            "s3:PutPublicAccessBlock",
            "s3:PutBucketLifecycleConfiguration",
            "iam:PutRolePolicy",
            "ec2:ModifyVpcEndpoint",
        ]
    );
    assert_eq!(fixed.changes.len(), 4, "{:?}", fixed.changes);
    assert!(fixed.changes[3].contains(&endpoint), "{:?}", fixed.changes);
    assert_provisioned(&env, &c, "drift-lake").await;
    env.calls.take();
    env.provider.ensure(&req).await.unwrap();
    assert!(mutating(&env.calls.take()).is_empty());

    // A spec change is drift too: SSE-KMS, another route table, the endpoint dropped.
    let kms = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/0f1e2d3c-aaaa-bbbb-cccc-000000000001");
    let c2 = cluster(
        &env,
        "security",
        "lake",
        "drift-lake",
        json!({"spec": {"storage": {"encryptionKey": kms},
                        "aws": {"vpcEndpoint": {"routeTableIds": [env.route_tables[2]]}}}}),
    );
    env.provider.ensure(&request(&c2)).await.unwrap();
    assert_eq!(
        mutating(&env.calls.take()),
        [
            "s3:PutBucketEncryption",
            "iam:PutRolePolicy",
            "ec2:ModifyVpcEndpoint"
        ]
    );
    assert_provisioned(&env, &c2, "drift-lake").await;
}

#[tokio::test]
async fn dropping_the_endpoint_from_the_spec_deletes_it() {
    let env = env().await;
    let own_table =
        json!({"spec": {"aws": {"vpcEndpoint": {"routeTableIds": [env.route_tables[5]]}}}});
    let c = cluster(&env, "security", "lake", "drop-lake", own_table);
    env.provider.ensure(&request(&c)).await.unwrap();
    assert_eq!(endpoints_of(&env, "security/lake").await.len(), 1);
    env.calls.take();
    let without = cluster(
        &env,
        "security",
        "lake",
        "drop-lake",
        json!({"spec": {"aws": {"vpcEndpoint": null}}}),
    );
    let out = env.provider.ensure(&request(&without)).await.unwrap();
    assert_eq!(mutating(&env.calls.take()), ["ec2:DeleteVpcEndpoints"]);
    assert!(endpoints_of(&env, "security/lake").await.is_empty());
    assert_eq!(out.aws.unwrap().vpc_endpoint_id, None);
}

/// Fails the n-th changing call of a first reconcile (before it is sent, or after AWS
/// carried it out), then reconciles again: the second run resumes and ends in exactly the
/// state of an uninterrupted run, with no resource made twice.
#[tokio::test]
async fn a_failure_halfway_resumes_cleanly() {
    let env = env().await;
    let first: Vec<String> = FIRST_RECONCILE.iter().map(|c| c.to_string()).collect();
    let steps = mutating(&first).len();
    assert_eq!(steps, 8);
    for point in [FaultPoint::BeforeSend, FaultPoint::AfterSend] {
        for n in 1..=steps {
            let name = format!(
                "l{n}{}",
                if point == FaultPoint::BeforeSend {
                    "b"
                } else {
                    "a"
                }
            );
            let bucket = format!("resume-{name}");
            let c = cluster(&env, "security", &name, &bucket, json!({}));
            let req = request(&c);
            env.calls.fail_mutating_call(n, point);
            let err = env.provider.ensure(&req).await.unwrap_err();
            let failed_call = mutating(&env.calls.take())[n - 1].clone();
            match &err {
                ProvisionError::Call {
                    call,
                    resource,
                    message,
                } => {
                    assert_eq!(*call, failed_call, "{err}");
                    assert!(!resource.is_empty(), "{err}");
                    assert!(message.contains("injected fault"), "{err}");
                }
                other => panic!("{point:?} #{n}: unexpected {other}"),
            }
            let resumed =
                env.provider.ensure(&req).await.unwrap_or_else(|e| {
                    panic!("{point:?} #{n} ({failed_call}): resume failed: {e}")
                });
            let redone = mutating(&env.calls.take());
            // Only what had not been done (or not been confirmed) is done again.
            assert!(
                redone.len() <= steps - n + 1,
                "{point:?} #{n}: resumed with {redone:?}"
            );
            assert!(resumed.aws.as_ref().unwrap().role_arn.is_some());
            assert_provisioned(&env, &c, &bucket).await;
            env.calls.take();
            env.provider.ensure(&req).await.unwrap();
            assert_eq!(env.calls.take(), STEADY_STATE, "{point:?} #{n}");
        }
    }
}

#[tokio::test]
async fn deletion_retains_the_bucket_by_default_and_deletes_it_only_when_asked() {
    let env = env().await;
    // Retain (the default): role and endpoint go, the bucket and its data stay.
    let keep = cluster(
        &env,
        "security",
        "keep",
        "keep-lake",
        json!({"spec": {"aws": {"vpcEndpoint": {"routeTableIds": [env.route_tables[3]]}}}}),
    );
    env.provider.ensure(&request(&keep)).await.unwrap();
    env.s3
        .put_object()
        .bucket("keep-lake")
        .key("prod/wal/0/1/00000000000000000001")
        .body(b"fence".to_vec().into())
        .send()
        .await
        .unwrap();
    env.calls.take();
    let released = env.provider.release(&request(&keep)).await.unwrap();
    assert_eq!(
        mutating(&env.calls.take()),
        [
            "ec2:DeleteVpcEndpoints",
            "iam:DeleteRolePolicy",
            "iam:DeleteRole"
        ]
    );
    assert_eq!(released.deleted.len(), 2, "{released:?}");
    assert_eq!(
        released.retained,
        ["bucket keep-lake (deletionPolicy Retain)"]
    );
    assert!(bucket_exists(&env, "keep-lake").await);
    assert!(env
        .s3
        .get_object()
        .bucket("keep-lake")
        .key("prod/wal/0/1/00000000000000000001")
        .send()
        .await
        .is_ok());
    assert!(!role_exists(&env, &role_name("security", "keep")).await);
    assert!(endpoints_of(&env, "security/keep").await.is_empty());
    // Releasing again finds nothing left to do.
    let again = env.provider.release(&request(&keep)).await.unwrap();
    assert!(again.deleted.is_empty(), "{again:?}");

    // Delete: the bucket is emptied (every object, every version) and deleted, last.
    let gone = cluster(
        &env,
        "security",
        "gone",
        "gone-lake",
        json!({"spec": {"storage": {"deletionPolicy": "Delete"},
                        "aws": {"vpcEndpoint": {"routeTableIds": [env.route_tables[4]]}}}}),
    );
    env.provider.ensure(&request(&gone)).await.unwrap();
    for i in 0..5 {
        env.s3
            .put_object()
            .bucket("gone-lake")
            .key(format!("prod/log/t/0/{i:020}"))
            .body(b"segment".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    env.calls.take();
    let released = env.provider.release(&request(&gone)).await.unwrap();
    let calls = mutating(&env.calls.take());
    assert_eq!(
        calls,
        [
            "ec2:DeleteVpcEndpoints",
            "iam:DeleteRolePolicy",
            "iam:DeleteRole",
            "s3:DeleteObjects",
            "s3:DeleteBucket"
        ]
    );
    assert_eq!(released.deleted.last().unwrap(), "bucket gone-lake");
    assert!(!bucket_exists(&env, "gone-lake").await);
}

#[tokio::test]
async fn an_existing_bucket_is_checked_never_changed_nor_deleted() {
    let env = env().await;
    env.s3
        .create_bucket()
        .bucket("customer-lake")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let c = cluster(
        &env,
        "security",
        "byob",
        "customer-lake",
        json!({"spec": {"aws": {"createBucket": false, "vpcEndpoint": null}}}),
    );
    env.provider.ensure(&request(&c)).await.unwrap();
    let calls = env.calls.take();
    assert_eq!(
        calls,
        [
            "s3:HeadBucket",
            "iam:GetRole",
            "ec2:DescribeVpcEndpoints",
            "iam:CreateRole",
            "iam:PutRolePolicy"
        ]
    );
    assert!(
        env.s3
            .get_bucket_tagging()
            .bucket("customer-lake")
            .send()
            .await
            .is_err(),
        "the customer's bucket gets no tags"
    );
    let released = env.provider.release(&request(&c)).await.unwrap();
    assert!(bucket_exists(&env, "customer-lake").await);
    assert_eq!(
        released.retained,
        ["bucket customer-lake (not created by the operator)"]
    );

    env.calls.take();
    // A bucket that is not there is reported, not created.
    let missing = cluster(
        &env,
        "security",
        "byob2",
        "no-such-lake",
        json!({"spec": {"aws": {"createBucket": false}}}),
    );
    let err = env.provider.ensure(&request(&missing)).await.unwrap_err();
    assert!(err.needs_a_person(), "{err}");
    assert!(err.to_string().contains("bucket no-such-lake"), "{err}");
    assert!(mutating(&env.calls.take()).is_empty());
}

#[tokio::test]
async fn a_bucket_of_another_cluster_is_neither_taken_over_nor_deleted() {
    let env = env().await;
    let a = cluster(&env, "team-a", "lake", "shared-name", json!({}));
    env.provider.ensure(&request(&a)).await.unwrap();
    let b = cluster(
        &env,
        "team-b",
        "lake",
        "shared-name",
        json!({"spec": {"storage": {"deletionPolicy": "Delete"}}}),
    );
    env.calls.take();
    let err = env.provider.ensure(&request(&b)).await.unwrap_err();
    assert!(err.needs_a_person(), "{err}");
    assert!(err.to_string().contains("team-a/lake"), "{err}");
    assert!(mutating(&env.calls.take()).is_empty());
    let err = env.provider.release(&request(&b)).await.unwrap_err();
    assert!(err.to_string().contains("not deleting"), "{err}");
    assert!(bucket_exists(&env, "shared-name").await);
}

#[tokio::test]
async fn an_interface_endpoint_goes_into_the_subnets_with_the_security_groups() {
    let env = env().await;
    let c = cluster(
        &env,
        "security",
        "private",
        "private-lake",
        json!({"spec": {"aws": {"vpcEndpoint": {
            "type": "Interface",
            "routeTableIds": null,
            "subnetIds": env.subnets,
            "securityGroupIds": [env.security_group],
        }}}}),
    );
    env.provider.ensure(&request(&c)).await.unwrap();
    let endpoints = endpoints_of(&env, "security/private").await;
    assert_eq!(endpoints.len(), 1);
    let e = &endpoints[0];
    assert_eq!(e.vpc_endpoint_type().unwrap().as_str(), "Interface");
    let mut subnets = e.subnet_ids().to_vec();
    subnets.sort();
    let mut want = env.subnets.clone();
    want.sort();
    assert_eq!(subnets, want);
    let groups: Vec<_> = e.groups().iter().filter_map(|g| g.group_id()).collect();
    assert_eq!(groups, [env.security_group.as_str()]);
    env.calls.take();
    env.provider.ensure(&request(&c)).await.unwrap();
    assert!(mutating(&env.calls.take()).is_empty());

    // Switching the type replaces the endpoint.
    let gw = cluster(&env, "security", "private", "private-lake", json!({}));
    env.provider.ensure(&request(&gw)).await.unwrap();
    assert_eq!(
        mutating(&env.calls.take()),
        ["ec2:DeleteVpcEndpoints", "ec2:CreateVpcEndpoint"]
    );
    assert_provisioned(&env, &gw, "private-lake").await;
}
