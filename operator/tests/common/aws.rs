//! What the `aws` provider's moto tests share: an SDK config for the emulator, the
//! customer's EKS OIDC provider, and readers of the calls and policies it made.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use serde_json::Value;
use sluice_operator::crd::SecurityLakeCluster;
use sluice_operator::provision::aws::calls::is_mutating;
use sluice_operator::provision::CloudRequest;

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";

/// Static test credentials, the emulator's endpoint, bounded calls.
pub async fn sdk_config(endpoint: String) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await
}

/// The EKS cluster's OIDC provider for `issuer`, as the customer's account has it; its ARN.
pub async fn oidc_provider(iam: &aws_sdk_iam::Client, issuer: &str) -> String {
    iam.create_open_id_connect_provider()
        .url(format!("https://{issuer}"))
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
        .send()
        .await
        .expect("CreateOpenIDConnectProvider")
        .open_id_connect_provider_arn
        .unwrap()
}

pub fn request(c: &SecurityLakeCluster) -> CloudRequest {
    CloudRequest::from_cluster(c).unwrap()
}

/// The changing calls among `calls` (`service:Operation`).
pub fn mutating(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| is_mutating(c.split_once(':').unwrap().1))
        .cloned()
        .collect()
}

/// A policy document as IAM returns it (URL-encoded or not).
pub fn policy(text: &str) -> Value {
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&urlencoding::decode(text).unwrap()))
        .unwrap()
}

/// The statement ids of a policy, in order.
pub fn statement_ids(policy: &Value) -> Vec<&str> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect()
}
