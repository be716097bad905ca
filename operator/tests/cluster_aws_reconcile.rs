//! The cluster reconciler with `provider: aws`, against a scripted API server and a fake
//! cloud provider: where provisioning sits in the reconcile, what it feeds the
//! ServiceAccount and the status, what a provisioning failure reports, and that the
//! finalizer removes cloud resources only once the brokers are gone.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use http::Method;
use serde_json::{json, Value};
use sluice_operator::controller::cluster::{reconcile, Observation, FINALIZER};
use sluice_operator::crd::cluster::AwsStatus;
use sluice_operator::crd::SecurityLakeCluster;
use sluice_operator::provision::{
    CloudProvider, CloudRequest, ProvisionError, Provisioned, Released,
};
use sluice_operator::Error;

use common::fixture;
use common::mock::{context_with_aws, ApiServer};

const NS: &str = "security";
const BASE: &str = "/apis/sluice.dev/v1alpha1/namespaces/security/securitylakeclusters/lake";
const STS: &str = "/apis/apps/v1/namespaces/security/statefulsets/lake-broker";
const ROLE: &str = "arn:aws:iam::111122223333:role/sluice/sluice-lake-00000000";

/// A provider that answers from a script and records what it was asked.
#[derive(Default)]
struct FakeCloud {
    fail: Option<ProvisionError>,
    calls: Mutex<Vec<String>>,
}

impl CloudProvider for FakeCloud {
    fn ensure<'a>(
        &'a self,
        req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Provisioned, ProvisionError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("ensure {}", req.cluster_key()));
        let fail = self.fail.clone();
        Box::pin(async move {
            if let Some(e) = fail {
                return Err(e);
            }
            Ok(Provisioned {
                service_account_annotations: BTreeMap::from([(
                    "eks.amazonaws.com/role-arn".to_string(),
                    ROLE.to_string(),
                )]),
                aws: Some(AwsStatus {
                    bucket_arn: Some("arn:aws:s3:::acme-security-lake".into()),
                    bucket_managed: true,
                    role_arn: Some(ROLE.into()),
                    role_policy_name: Some("sluice-broker-storage".into()),
                    vpc_endpoint_id: Some("vpce-0123".into()),
                    glue_databases: vec![],
                    last_changes: vec![],
                }),
                changes: vec!["s3:PutPublicAccessBlock bucket acme-security-lake".into()],
            })
        })
    }

    fn release<'a>(
        &'a self,
        req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Released, ProvisionError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("release {}", req.cluster_key()));
        Box::pin(async {
            Ok(Released {
                deleted: vec![
                    "VPC endpoint vpce-0123".into(),
                    "IAM role x".into(),
                    "bucket acme-security-lake".into(),
                ],
                retained: vec![],
            })
        })
    }
}

fn cluster() -> SecurityLakeCluster {
    let mut c: SecurityLakeCluster = fixture("clusters/aws.yaml");
    c.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    c
}

fn stored() -> Value {
    serde_json::to_value(cluster()).unwrap()
}

async fn expect_reads(api: &mut ApiServer) {
    api.expect(Method::GET, STS).await.not_found();
    api.expect(Method::GET, "/apis/monitoring.coreos.com/v1")
        .await
        .not_found();
}

#[tokio::test]
async fn the_role_lands_on_the_service_account_and_the_arns_in_the_status() {
    let cloud = Arc::new(FakeCloud::default());
    let (ctx, mut api) = context_with_aws(Observation::default(), cloud.clone());
    let verifier = tokio::spawn(async move {
        expect_reads(&mut api).await;
        // The cloud change is announced before the brokers' objects are applied.
        let event = api.expect_event(NS).await;
        assert_eq!(event["reason"], "CloudResourcesChanged");
        let sa = api
            .expect(
                Method::PATCH,
                "/api/v1/namespaces/security/serviceaccounts/lake-broker",
            )
            .await;
        assert_eq!(
            sa.body["metadata"]["annotations"],
            json!({"eks.amazonaws.com/role-arn": ROLE})
        );
        assert_eq!(sa.body["automountServiceAccountToken"], false);
        sa.echo();
        for path in [
            "/api/v1/namespaces/security/configmaps/lake-config",
            "/api/v1/namespaces/security/services/lake-brokers",
            "/api/v1/namespaces/security/services/lake-bootstrap",
        ] {
            api.expect(Method::PATCH, path).await.echo();
        }
        let sts = api.expect(Method::PATCH, STS).await;
        let mut body = sts.body.clone();
        body["status"] = json!({"replicas": 0});
        sts.ok(body);
        for path in [
            "/apis/policy/v1/namespaces/security/poddisruptionbudgets/lake-broker",
            "/apis/networking.k8s.io/v1/namespaces/security/networkpolicies/lake-broker",
        ] {
            api.expect(Method::PATCH, path).await.echo();
        }
        api.expect_event(NS).await;
        let status = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        let body = status.body["status"].clone();
        status.with_status_of(stored());
        api.expect_silence().await;
        body
    });
    reconcile(cluster().into(), ctx).await.unwrap();
    let status = verifier.await.unwrap();
    assert_eq!(
        status["aws"],
        json!({
            "bucketArn": "arn:aws:s3:::acme-security-lake",
            "bucketManaged": true,
            "roleArn": ROLE,
            "rolePolicyName": "sluice-broker-storage",
            "vpcEndpointId": "vpce-0123",
            "lastChanges": ["s3:PutPublicAccessBlock bucket acme-security-lake"],
        })
    );
    assert_eq!(*cloud.calls.lock().unwrap(), ["ensure security/lake"]);
}

#[tokio::test]
async fn a_failed_call_degrades_the_cluster_and_applies_nothing() {
    let cloud = Arc::new(FakeCloud {
        fail: Some(ProvisionError::Call {
            call: "iam:PutRolePolicy",
            resource: "role sluice-lake-00000000 policy sluice-broker-storage".into(),
            message: "AccessDenied: not authorized".into(),
        }),
        ..FakeCloud::default()
    });
    let (ctx, mut api) = context_with_aws(Observation::default(), cloud);
    let verifier = tokio::spawn(async move {
        expect_reads(&mut api).await;
        let event = api.expect_event(NS).await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "ProvisioningFailed");
        let status = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        let body = status.body["status"].clone();
        status.with_status_of(stored());
        // No ServiceAccount, no StatefulSet: brokers without their role would only fail.
        api.expect_silence().await;
        body
    });
    let err = reconcile(cluster().into(), ctx).await.unwrap_err();
    let status = verifier.await.unwrap();
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        chain.contains("iam:PutRolePolicy on role sluice-lake-00000000"),
        "{chain}"
    );
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ProvisioningFailed");
    assert!(degraded["message"].as_str().unwrap().contains(
        "iam:PutRolePolicy on role sluice-lake-00000000 policy sluice-broker-storage: AccessDenied"
    ));
}

#[tokio::test]
async fn a_conflict_stalls_and_waits_for_a_person() {
    let cloud = Arc::new(FakeCloud {
        fail: Some(ProvisionError::Conflict {
            resource: "bucket acme-security-lake".into(),
            message: "belongs to cluster other/lake".into(),
        }),
        ..FakeCloud::default()
    });
    let (ctx, mut api) = context_with_aws(Observation::default(), cloud);
    let verifier = tokio::spawn(async move {
        expect_reads(&mut api).await;
        assert_eq!(api.expect_event(NS).await["reason"], "ProvisioningConflict");
        let status = api.expect(Method::PATCH, &format!("{BASE}/status")).await;
        let stalled = status.body["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Stalled")
            .unwrap()["status"]
            .clone();
        status.with_status_of(stored());
        api.expect_silence().await;
        stalled
    });
    let action = reconcile(cluster().into(), ctx).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(300))
    );
    assert_eq!(verifier.await.unwrap(), "True");
}

fn deleting(mut c: SecurityLakeCluster) -> SecurityLakeCluster {
    c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    c
}

#[tokio::test]
async fn deletion_stops_the_brokers_before_removing_cloud_resources() {
    let cloud = Arc::new(FakeCloud::default());
    let (ctx, mut api) = context_with_aws(Observation::default(), cloud.clone());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, STS).await.ok(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "lake-broker", "namespace": NS},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "lake-brokers", "template": {}},
            "status": {"replicas": 3},
        }));
        let delete = api.expect(Method::DELETE, STS).await;
        assert_eq!(delete.body["propagationPolicy"], "Foreground");
        delete.ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
        // The finalizer stays.
        api.expect_silence().await;
    });
    let err = reconcile(deleting(cluster()).into(), ctx)
        .await
        .unwrap_err();
    verifier.await.unwrap();
    let chain = format!("{:?}", err);
    assert!(chain.contains("WaitingForBrokers"), "{chain}");
    assert!(matches!(err, Error::Finalizer { .. }));
    assert!(
        cloud.calls.lock().unwrap().is_empty(),
        "nothing released yet"
    );
}

#[tokio::test]
async fn once_the_brokers_are_gone_the_cloud_resources_are_released() {
    let cloud = Arc::new(FakeCloud::default());
    let (ctx, mut api) = context_with_aws(Observation::default(), cloud.clone());
    let verifier = tokio::spawn(async move {
        api.expect(Method::GET, STS).await.not_found();
        let event = api.expect_event(NS).await;
        assert_eq!(event["reason"], "CloudResourcesDeleted");
        assert!(event["note"]
            .as_str()
            .unwrap()
            .contains("bucket acme-security-lake"));
        let call = api.expect(Method::PATCH, BASE).await;
        assert_eq!(
            call.body[1],
            json!({"op": "remove", "path": "/metadata/finalizers/0"})
        );
        call.ok(stored());
        api.expect_silence().await;
    });
    reconcile(deleting(cluster()).into(), ctx).await.unwrap();
    verifier.await.unwrap();
    assert_eq!(*cloud.calls.lock().unwrap(), ["release security/lake"]);
}
