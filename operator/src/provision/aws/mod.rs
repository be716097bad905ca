//! `provider: aws`: the bucket, the brokers' IAM role (IRSA), the S3 VPC endpoint and,
//! with a Glue catalog, the Glue databases of the Feeds' tables, through the official
//! AWS SDK.
//!
//! Each `ensure` observes (read calls only), plans the changing calls ([`plan::plan`],
//! pure) and applies them in order; the first failure stops it with an error naming the
//! call and the resource, and the next reconcile observes again and carries on from
//! there. A converged cluster costs read calls only (see `docs/operator.md`).
//!
//! Long because: one concern, the provider's calls to AWS (observe, apply, release) for
//! its four resources; the decisions live in `desired.rs` and `plan.rs`, and each
//! function here is one SDK conversation.

pub mod calls;
pub mod desired;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::info;

use self::calls::CallLog;
use self::desired::{
    desired, Desired, Encryption, GlueDesired, LifecycleRule, PublicAccessBlock, CLUSTER_TAG,
    MANAGED_BY, MANAGED_BY_TAG, POLICY_NAME, ROLE_ARN_ANNOTATION, ROLE_PATH,
};
use self::plan::{
    plan, EndpointChange, Observed, ObservedBucket, ObservedDatabase, ObservedEndpoint,
    ObservedRole, Step,
};
use super::{CloudProvider, CloudRequest, ProvisionError, Provisioned, Released};
use crate::crd::cluster::{AwsStatus, GlueDatabaseStatus, VpcEndpointType};
use crate::crd::DeletionPolicy;

/// The AWS provider. Credentials, endpoint and retries come from the SDK's standard
/// configuration of the operator process (environment, IRSA web identity, …); the region
/// is each cluster's `storage.region`.
pub struct AwsProvider {
    config: OnceCell<SdkConfig>,
    calls: CallLog,
}

impl AwsProvider {
    /// Loads the standard AWS configuration of the process at the first call, so an
    /// operator without `aws` clusters never looks for credentials.
    pub fn from_environment(calls: CallLog) -> AwsProvider {
        AwsProvider {
            config: OnceCell::new(),
            calls,
        }
    }

    /// A provider with a given configuration (tests point it at an emulator) and call log.
    pub fn with_config(config: SdkConfig, calls: CallLog) -> AwsProvider {
        AwsProvider {
            config: OnceCell::new_with(Some(config)),
            calls,
        }
    }

    /// Counts (and in tests, the order) of the calls made.
    pub fn calls(&self) -> &CallLog {
        &self.calls
    }

    async fn clients(&self, region: &str, glue_endpoint: Option<&str>) -> Clients {
        let base = self
            .config
            .get_or_init(|| async {
                aws_config::defaults(BehaviorVersion::latest())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_attempt_timeout(Duration::from_secs(20))
                            .operation_timeout(Duration::from_secs(60))
                            .build(),
                    )
                    .load()
                    .await
            })
            .await;
        let region = aws_config::Region::new(region.to_string());
        // A custom endpoint (an emulator, or an S3-compatible gateway) takes path-style
        // bucket addressing.
        let path_style = base.endpoint_url().is_some();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(base)
                    .region(region.clone())
                    .force_path_style(path_style)
                    .interceptor(self.calls.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(base)
                    .region(region.clone())
                    .interceptor(self.calls.clone())
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(base)
                    .region(region.clone())
                    .interceptor(self.calls.clone())
                    .build(),
            ),
            // `glue:<url>`: the brokers' Glue-compatible endpoint, the operator's too.
            glue: aws_sdk_glue::Client::from_conf({
                let mut glue = aws_sdk_glue::config::Builder::from(base)
                    .region(region)
                    .interceptor(self.calls.clone());
                if let Some(endpoint) = glue_endpoint {
                    glue = glue.endpoint_url(endpoint);
                }
                glue.build()
            }),
        }
    }
}

struct Clients {
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    ec2: aws_sdk_ec2::Client,
    glue: aws_sdk_glue::Client,
}

impl CloudProvider for AwsProvider {
    fn ensure<'a>(
        &'a self,
        req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Provisioned, ProvisionError>> {
        Box::pin(async move {
            let want = desired(req)?;
            let clients = self.clients(&want.region, glue_endpoint(&want)).await;
            let observed = observe(&clients, &want).await?;
            let steps = plan(&want, &observed)?;
            let mut outcome = Outcome {
                role_arn: observed.role.as_ref().map(|r| r.arn.clone()),
                ..Outcome::default()
            };
            for step in &steps {
                apply(&clients, &want, step, &mut outcome).await?;
                outcome
                    .changes
                    .push(format!("{} {}", step.call(), resource_of(&want, step)));
            }
            // The endpoint kept is the observed one the plan did not delete.
            if outcome.endpoint_id.is_none() {
                outcome.endpoint_id = observed
                    .endpoints
                    .iter()
                    .map(|e| &e.id)
                    .find(|id| !outcome.deleted_endpoints.contains(id))
                    .cloned();
            }
            if !outcome.changes.is_empty() {
                info!(cluster = %want.cluster_key, changes = ?outcome.changes, "AWS resources changed");
            }
            let role_arn = outcome
                .role_arn
                .clone()
                .ok_or_else(|| ProvisionError::Call {
                    call: "iam:GetRole",
                    resource: format!("role {}", want.role_name),
                    message: "the role has no ARN".into(),
                })?;
            Ok(Provisioned {
                service_account_annotations: BTreeMap::from([(
                    ROLE_ARN_ANNOTATION.to_string(),
                    role_arn.clone(),
                )]),
                aws: Some(AwsStatus {
                    bucket_arn: Some(want.bucket_arn()),
                    bucket_managed: want.manage_bucket,
                    role_arn: Some(role_arn),
                    role_policy_name: Some(POLICY_NAME.into()),
                    glue_databases: glue_status(&want, &observed, &outcome),
                    vpc_endpoint_id: want.endpoint.as_ref().and(outcome.endpoint_id),
                    last_changes: Vec::new(),
                }),
                changes: outcome.changes,
            })
        })
    }

    fn release<'a>(
        &'a self,
        req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Released, ProvisionError>> {
        Box::pin(async move {
            let want = desired(req)?;
            let clients = self.clients(&want.region, glue_endpoint(&want)).await;
            let mut released = Released::default();
            // Reverse order of creation: the private path, the identity, the data.
            let endpoints = observe_endpoints(&clients.ec2, &want).await?;
            if !endpoints.is_empty() {
                let ids: Vec<String> = endpoints.iter().map(|e| e.id.clone()).collect();
                delete_endpoints(&clients.ec2, &ids).await?;
                released
                    .deleted
                    .extend(ids.iter().map(|id| format!("VPC endpoint {id}")));
            }
            if delete_role(&clients.iam, &want.role_name).await? {
                released
                    .deleted
                    .push(format!("IAM role {}", want.role_name));
            }
            let bucket = format!("bucket {}", want.bucket);
            if !want.manage_bucket {
                released
                    .retained
                    .push(format!("{bucket} (not created by the operator)"));
            } else if req.deletion_policy == DeletionPolicy::Retain {
                released
                    .retained
                    .push(format!("{bucket} (deletionPolicy Retain)"));
            } else {
                // The tables go with their data; a database that also holds other
                // tables (another cluster's sharing it) stays.
                if let Some(glue) = &want.glue {
                    release_glue_databases(&clients.glue, &want, glue, &mut released).await?;
                }
                if delete_bucket(&clients.s3, &want).await? {
                    released.deleted.push(bucket);
                }
            }
            Ok(released)
        })
    }
}

/// ARNs and ids learnt while applying.
#[derive(Default)]
struct Outcome {
    role_arn: Option<String>,
    /// The endpoint created by this reconcile.
    endpoint_id: Option<String>,
    deleted_endpoints: Vec<String>,
    /// The Glue databases created by this reconcile.
    created_databases: Vec<String>,
    changes: Vec<String>,
}

fn glue_endpoint(want: &Desired) -> Option<&str> {
    want.glue.as_ref().and_then(|g| g.endpoint.as_deref())
}

/// The desired databases: all exist after a successful apply.
fn glue_status(want: &Desired, observed: &Observed, outcome: &Outcome) -> Vec<GlueDatabaseStatus> {
    let Some(glue) = &want.glue else {
        return Vec::new();
    };
    glue.databases
        .iter()
        .map(|db| GlueDatabaseStatus {
            name: db.clone(),
            arn: want.glue_database_arn(db),
            managed: outcome.created_databases.contains(db)
                || observed
                    .glue_databases
                    .get(db)
                    .is_some_and(|d| d.managed_by(&want.cluster_key)),
        })
        .collect()
}

fn resource_of(want: &Desired, step: &Step) -> String {
    match step {
        Step::CreateBucket
        | Step::PutBucketTagging
        | Step::PutPublicAccessBlock
        | Step::PutBucketEncryption
        | Step::PutBucketLifecycle => format!("bucket {}", want.bucket),
        Step::CreateRole | Step::UpdateAssumeRolePolicy | Step::TagRole(_) => {
            format!("role {}", want.role_name)
        }
        Step::PutRolePolicy => format!("role {} policy {POLICY_NAME}", want.role_name),
        Step::CreateVpcEndpoint => format!(
            "S3 VPC endpoint in {}",
            want.endpoint
                .as_ref()
                .map(|e| e.vpc_id.as_str())
                .unwrap_or("?")
        ),
        Step::DeleteVpcEndpoint(id) | Step::TagVpcEndpoint(id, _) => format!("VPC endpoint {id}"),
        Step::ModifyVpcEndpoint(c) => format!("VPC endpoint {}", c.id),
        Step::CreateGlueDatabase(db) => format!("Glue database {db}"),
    }
}

/// `call on resource: <the SDK's whole error chain>`.
fn sdk_error<E, R>(
    call: &'static str,
    resource: impl Into<String>,
    e: SdkError<E, R>,
) -> ProvisionError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    ProvisionError::Call {
        call,
        resource: resource.into(),
        message: DisplayErrorContext(&e).to_string(),
    }
}

fn build_error(call: &'static str, resource: &str, e: impl std::fmt::Display) -> ProvisionError {
    ProvisionError::Call {
        call,
        resource: resource.to_string(),
        message: format!("building the request: {e}"),
    }
}

/// IAM returns policy documents URL-encoded; emulators sometimes do not.
fn policy_document(text: &str) -> Value {
    serde_json::from_str(text)
        .ok()
        .or_else(|| {
            urlencoding::decode(text)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
        })
        .unwrap_or(Value::Null)
}

// ---- observe ----------------------------------------------------------------------

async fn observe(clients: &Clients, want: &Desired) -> Result<Observed, ProvisionError> {
    Ok(Observed {
        bucket: observe_bucket(&clients.s3, want).await?,
        role: observe_role(&clients.iam, want).await?,
        // Also without aws.vpcEndpoint: one made before the spec dropped it is removed.
        endpoints: observe_endpoints(&clients.ec2, want).await?,
        glue_databases: match &want.glue {
            Some(glue) => observe_glue_databases(&clients.glue, glue).await?,
            None => BTreeMap::new(),
        },
    })
}

/// The desired databases that exist.
async fn observe_glue_databases(
    glue: &aws_sdk_glue::Client,
    want: &GlueDesired,
) -> Result<BTreeMap<String, ObservedDatabase>, ProvisionError> {
    let mut found = BTreeMap::new();
    for db in &want.databases {
        if let Some(d) = observe_glue_database(glue, db).await? {
            found.insert(db.clone(), d);
        }
    }
    Ok(found)
}

async fn observe_glue_database(
    glue: &aws_sdk_glue::Client,
    db: &str,
) -> Result<Option<ObservedDatabase>, ProvisionError> {
    match glue.get_database().name(db).send().await {
        Ok(out) => Ok(Some(ObservedDatabase {
            parameters: out
                .database()
                .and_then(|d| d.parameters())
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_error(
            "glue:GetDatabase",
            format!("Glue database {db}"),
            e,
        )),
    }
}

async fn observe_bucket(
    s3: &aws_sdk_s3::Client,
    want: &Desired,
) -> Result<Option<ObservedBucket>, ProvisionError> {
    let resource = format!("bucket {}", want.bucket);
    let head = match s3.head_bucket().bucket(&want.bucket).send().await {
        Ok(h) => h,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
        Err(e) => return Err(sdk_error("s3:HeadBucket", resource, e)),
    };
    let mut bucket = ObservedBucket {
        region: head.bucket_region().map(str::to_string),
        ..ObservedBucket::default()
    };
    if !want.manage_bucket {
        return Ok(Some(bucket));
    }
    match s3.get_bucket_tagging().bucket(&want.bucket).send().await {
        Ok(t) => {
            bucket.tags = t
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        }
        Err(e) if e.code() == Some("NoSuchTagSet") => {}
        Err(e) => return Err(sdk_error("s3:GetBucketTagging", resource, e)),
    }
    match s3
        .get_public_access_block()
        .bucket(&want.bucket)
        .send()
        .await
    {
        Ok(p) => {
            bucket.public_access_block =
                p.public_access_block_configuration()
                    .map(|c| PublicAccessBlock {
                        block_public_acls: c.block_public_acls().unwrap_or(false),
                        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                        block_public_policy: c.block_public_policy().unwrap_or(false),
                        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                    })
        }
        Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => {}
        Err(e) => return Err(sdk_error("s3:GetPublicAccessBlock", resource, e)),
    }
    match s3.get_bucket_encryption().bucket(&want.bucket).send().await {
        Ok(out) => {
            bucket.encryption = out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| match d.sse_algorithm() {
                    aws_sdk_s3::types::ServerSideEncryption::Aes256 => Encryption::S3,
                    _ => Encryption::Kms(d.kms_master_key_id().unwrap_or_default().to_string()),
                })
        }
        Err(e) if e.code() == Some("ServerSideEncryptionConfigurationNotFoundError") => {}
        Err(e) => return Err(sdk_error("s3:GetBucketEncryption", resource, e)),
    }
    match s3
        .get_bucket_lifecycle_configuration()
        .bucket(&want.bucket)
        .send()
        .await
    {
        Ok(out) => {
            bucket.lifecycle = out
                .rules()
                .iter()
                .map(|r| LifecycleRule {
                    id: r.id().unwrap_or_default().to_string(),
                    #[allow(deprecated)]
                    prefix: r
                        .filter()
                        .and_then(|f| f.prefix())
                        .or(r.prefix())
                        .unwrap_or_default()
                        .to_string(),
                    enabled: r.status() == &aws_sdk_s3::types::ExpirationStatus::Enabled,
                    abort_incomplete_upload_days: r
                        .abort_incomplete_multipart_upload()
                        .and_then(|a| a.days_after_initiation()),
                    expires_objects: r
                        .expiration()
                        .is_some_and(|e| e.days().is_some() || e.date().is_some()),
                })
                .collect()
        }
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => {}
        Err(e) => return Err(sdk_error("s3:GetBucketLifecycleConfiguration", resource, e)),
    }
    Ok(Some(bucket))
}

async fn observe_role(
    iam: &aws_sdk_iam::Client,
    want: &Desired,
) -> Result<Option<ObservedRole>, ProvisionError> {
    let resource = format!("role {}", want.role_name);
    let role = match iam.get_role().role_name(&want.role_name).send().await {
        Ok(out) => match out.role {
            Some(role) => role,
            None => return Ok(None),
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(sdk_error("iam:GetRole", resource, e)),
    };
    let policy = match iam
        .get_role_policy()
        .role_name(&want.role_name)
        .policy_name(POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => Some(policy_document(out.policy_document())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => {
            return Err(sdk_error(
                "iam:GetRolePolicy",
                format!("{resource} policy {POLICY_NAME}"),
                e,
            ))
        }
    };
    Ok(Some(ObservedRole {
        arn: role.arn().to_string(),
        trust_policy: role
            .assume_role_policy_document()
            .map(policy_document)
            .unwrap_or(Value::Null),
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        policy,
    }))
}

/// Live endpoints tagged for this cluster.
async fn observe_endpoints(
    ec2: &aws_sdk_ec2::Client,
    want: &Desired,
) -> Result<Vec<ObservedEndpoint>, ProvisionError> {
    use aws_sdk_ec2::types::Filter;
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let out = ec2
            .describe_vpc_endpoints()
            .filters(
                Filter::builder()
                    .name(format!("tag:{CLUSTER_TAG}"))
                    .values(&want.cluster_key)
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    "ec2:DescribeVpcEndpoints",
                    format!("VPC endpoints tagged {CLUSTER_TAG}={}", want.cluster_key),
                    e,
                )
            })?;
        for e in out.vpc_endpoints() {
            let tags: BTreeMap<String, String> = e
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            // The filter is checked again: an emulator or a partial filter implementation
            // must never make the operator touch someone else's endpoint.
            if tags.get(CLUSTER_TAG) != Some(&want.cluster_key) {
                continue;
            }
            // EC2 spells states `deleted`, the SDK's enum `Deleted`: compare the text.
            let state = e.state().map(|s| s.as_str().to_ascii_lowercase());
            if matches!(state.as_deref(), Some("deleted" | "deleting")) {
                continue;
            }
            found.push(ObservedEndpoint {
                id: e.vpc_endpoint_id().unwrap_or_default().to_string(),
                vpc_id: e.vpc_id().unwrap_or_default().to_string(),
                service_name: e.service_name().unwrap_or_default().to_string(),
                type_: e
                    .vpc_endpoint_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                route_table_ids: e.route_table_ids().iter().cloned().collect(),
                subnet_ids: e.subnet_ids().iter().cloned().collect(),
                security_group_ids: e
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string))
                    .collect::<BTreeSet<_>>(),
                tags,
            });
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

// ---- apply ------------------------------------------------------------------------

async fn apply(
    clients: &Clients,
    want: &Desired,
    step: &Step,
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    let resource = resource_of(want, step);
    let call = step.call();
    let s3 = &clients.s3;
    let bucket = want.bucket.as_str();
    match step {
        Step::CreateBucket => {
            use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
            let mut req = s3.create_bucket().bucket(bucket);
            if want.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(want.region.as_str()))
                        .build(),
                );
            }
            match req.send().await {
                Ok(_) => {}
                // Created by an earlier attempt whose answer was lost: carry on.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
                Err(e) => return Err(sdk_error(call, resource, e)),
            }
        }
        Step::PutBucketTagging => {
            use aws_sdk_s3::types::{Tag, Tagging};
            let tags = want
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| build_error(call, &resource, e))?;
            let tagging = Tagging::builder()
                .set_tag_set(Some(tags))
                .build()
                .map_err(|e| build_error(call, &resource, e))?;
            s3.put_bucket_tagging()
                .bucket(bucket)
                .tagging(tagging)
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::PutPublicAccessBlock => {
            let p = want.public_access_block;
            s3.put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(
                    aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                        .block_public_acls(p.block_public_acls)
                        .ignore_public_acls(p.ignore_public_acls)
                        .block_public_policy(p.block_public_policy)
                        .restrict_public_buckets(p.restrict_public_buckets)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::PutBucketEncryption => {
            use aws_sdk_s3::types::{
                ServerSideEncryption, ServerSideEncryptionByDefault,
                ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
            };
            let default = match &want.encryption {
                Encryption::S3 => ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256),
                Encryption::Kms(key) => ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::AwsKms)
                    .kms_master_key_id(key),
            }
            .build()
            .map_err(|e| build_error(call, &resource, e))?;
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default)
                .bucket_key_enabled(matches!(want.encryption, Encryption::Kms(_)))
                .build();
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| build_error(call, &resource, e))?;
            s3.put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::PutBucketLifecycle => {
            use aws_sdk_s3::types::{
                AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
                LifecycleRule as SdkRule, LifecycleRuleFilter,
            };
            let rules = want
                .lifecycle
                .iter()
                .map(|r| {
                    let mut b = SdkRule::builder()
                        .id(&r.id)
                        .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build())
                        .status(if r.enabled {
                            ExpirationStatus::Enabled
                        } else {
                            ExpirationStatus::Disabled
                        });
                    if let Some(days) = r.abort_incomplete_upload_days {
                        b = b.abort_incomplete_multipart_upload(
                            AbortIncompleteMultipartUpload::builder()
                                .days_after_initiation(days)
                                .build(),
                        );
                    }
                    b.build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| build_error(call, &resource, e))?;
            let config = BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(|e| build_error(call, &resource, e))?;
            s3.put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(config)
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::CreateRole => {
            let tags = iam_tags(&want.tags).map_err(|e| build_error(call, &resource, e))?;
            let out = clients
                .iam
                .create_role()
                .role_name(&want.role_name)
                .path(ROLE_PATH)
                .description(format!(
                    "Sluice brokers of cluster {} (managed by sluice-operator)",
                    want.cluster_key
                ))
                .assume_role_policy_document(want.trust_policy.to_string())
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
            outcome.role_arn = out.role().map(|r| r.arn().to_string());
        }
        Step::UpdateAssumeRolePolicy => {
            clients
                .iam
                .update_assume_role_policy()
                .role_name(&want.role_name)
                .policy_document(want.trust_policy.to_string())
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::TagRole(tags) => {
            let tags = iam_tags(tags).map_err(|e| build_error(call, &resource, e))?;
            clients
                .iam
                .tag_role()
                .role_name(&want.role_name)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::PutRolePolicy => {
            clients
                .iam
                .put_role_policy()
                .role_name(&want.role_name)
                .policy_name(POLICY_NAME)
                .policy_document(want.policy.to_string())
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::DeleteVpcEndpoint(id) => {
            delete_endpoints(&clients.ec2, std::slice::from_ref(id)).await?;
            outcome.deleted_endpoints.push(id.clone());
        }
        Step::CreateVpcEndpoint => {
            use aws_sdk_ec2::types::{ResourceType, TagSpecification, VpcEndpointType as SdkType};
            let e = want.endpoint.as_ref().ok_or_else(|| {
                ProvisionError::Spec("CreateVpcEndpoint planned without aws.vpcEndpoint".into())
            })?;
            let mut req = clients
                .ec2
                .create_vpc_endpoint()
                .vpc_id(&e.vpc_id)
                .service_name(&e.service_name)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::VpcEndpoint)
                        .set_tags(Some(ec2_tags(&want.tags)))
                        .build(),
                );
            req = match e.type_ {
                VpcEndpointType::Gateway => req
                    .vpc_endpoint_type(SdkType::Gateway)
                    .set_route_table_ids(Some(e.route_table_ids.iter().cloned().collect())),
                VpcEndpointType::Interface => {
                    let groups: Vec<String> = e.security_group_ids.iter().cloned().collect();
                    req.vpc_endpoint_type(SdkType::Interface)
                        .set_subnet_ids(Some(e.subnet_ids.iter().cloned().collect()))
                        .set_security_group_ids((!groups.is_empty()).then_some(groups))
                        .private_dns_enabled(true)
                }
            };
            let out = req
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
            outcome.endpoint_id = out
                .vpc_endpoint()
                .and_then(|v| v.vpc_endpoint_id())
                .map(str::to_string);
        }
        Step::ModifyVpcEndpoint(change) => {
            let EndpointChange {
                id,
                add_route_table_ids,
                remove_route_table_ids,
                add_subnet_ids,
                remove_subnet_ids,
                add_security_group_ids,
                remove_security_group_ids,
            } = change;
            let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
            clients
                .ec2
                .modify_vpc_endpoint()
                .vpc_endpoint_id(id)
                .set_add_route_table_ids(some(add_route_table_ids))
                .set_remove_route_table_ids(some(remove_route_table_ids))
                .set_add_subnet_ids(some(add_subnet_ids))
                .set_remove_subnet_ids(some(remove_subnet_ids))
                .set_add_security_group_ids(some(add_security_group_ids))
                .set_remove_security_group_ids(some(remove_security_group_ids))
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::TagVpcEndpoint(id, tags) => {
            clients
                .ec2
                .create_tags()
                .resources(id)
                .set_tags(Some(ec2_tags(tags)))
                .send()
                .await
                .map_err(|e| sdk_error(call, &resource, e))?;
        }
        Step::CreateGlueDatabase(db) => {
            use aws_sdk_glue::types::DatabaseInput;
            let input = DatabaseInput::builder()
                .name(db)
                .description(format!(
                    "Iceberg tables of Sluice cluster {} (managed by sluice-operator)",
                    want.cluster_key
                ))
                .parameters(CLUSTER_TAG, &want.cluster_key)
                .parameters(MANAGED_BY_TAG, MANAGED_BY)
                .build()
                .map_err(|e| build_error(call, &resource, e))?;
            match clients
                .glue
                .create_database()
                .database_input(input)
                .send()
                .await
            {
                Ok(_) => outcome.created_databases.push(db.clone()),
                // Created meanwhile (by the brokers, or an earlier attempt whose answer
                // was lost): used as it is, the next observation tells whose it is.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) => {}
                Err(e) => return Err(sdk_error(call, &resource, e)),
            }
        }
    }
    Ok(())
}

fn iam_tags(
    tags: &BTreeMap<String, String>,
) -> Result<Vec<aws_sdk_iam::types::Tag>, aws_sdk_iam::error::BuildError> {
    tags.iter()
        .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

// ---- release ----------------------------------------------------------------------

async fn delete_endpoints(ec2: &aws_sdk_ec2::Client, ids: &[String]) -> Result<(), ProvisionError> {
    let resource = format!("VPC endpoints {}", ids.join(", "));
    let out = ec2
        .delete_vpc_endpoints()
        .set_vpc_endpoint_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| sdk_error("ec2:DeleteVpcEndpoints", &resource, e))?;
    let failed: Vec<String> = out
        .unsuccessful()
        .iter()
        .filter(|u| {
            // Already gone is what was wanted.
            u.error().and_then(|e| e.code()).is_none_or(|c| {
                c != "InvalidVpcEndpoint.NotFound" && c != "InvalidVpcEndpointId.NotFound"
            })
        })
        .map(|u| {
            format!(
                "{}: {}",
                u.resource_id().unwrap_or("?"),
                u.error().and_then(|e| e.message()).unwrap_or("failed")
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ProvisionError::Call {
            call: "ec2:DeleteVpcEndpoints",
            resource,
            message: failed.join("; "),
        })
    }
}

/// Deletes the Glue databases the operator created for this cluster (Glue deletes their
/// tables with them), unless one holds a table outside the cluster's warehouse: that one
/// is retained and named.
async fn release_glue_databases(
    glue: &aws_sdk_glue::Client,
    want: &Desired,
    desired: &GlueDesired,
    released: &mut Released,
) -> Result<(), ProvisionError> {
    for db in &desired.databases {
        let resource = format!("Glue database {db}");
        let Some(observed) = observe_glue_database(glue, db).await? else {
            continue;
        };
        if !observed.managed_by(&want.cluster_key) {
            released.retained.push(format!(
                "{resource} (not created by the operator for this cluster)"
            ));
            continue;
        }
        let foreign = foreign_tables(glue, db, &desired.warehouse).await?;
        if !foreign.is_empty() {
            released.retained.push(format!(
                "{resource} (holds tables outside {}: {})",
                desired.warehouse,
                foreign.join(", ")
            ));
            continue;
        }
        match glue.delete_database().name(db).send().await {
            Ok(_) => released.deleted.push(resource),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) => {}
            Err(e) => return Err(sdk_error("glue:DeleteDatabase", resource, e)),
        }
    }
    Ok(())
}

/// Tables of `db` whose files are not under `warehouse`.
async fn foreign_tables(
    glue: &aws_sdk_glue::Client,
    db: &str,
    warehouse: &str,
) -> Result<Vec<String>, ProvisionError> {
    let root = format!("{}/", warehouse.trim_end_matches('/'));
    let mut foreign = Vec::new();
    let mut token = None;
    loop {
        let out = glue
            .get_tables()
            .database_name(db)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("glue:GetTables", format!("Glue database {db}"), e))?;
        for t in out.table_list() {
            let location = t
                .parameters()
                .and_then(|p| p.get("metadata_location"))
                .map(String::as_str)
                .or_else(|| t.storage_descriptor().and_then(|s| s.location()))
                .unwrap_or_default();
            if !location.starts_with(&root) {
                foreign.push(t.name().to_string());
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(foreign)
}

/// Deletes the role's inline policy, then the role. False when it was already gone.
async fn delete_role(iam: &aws_sdk_iam::Client, role: &str) -> Result<bool, ProvisionError> {
    match iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(POLICY_NAME)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) => {}
        Err(e) => {
            return Err(sdk_error(
                "iam:DeleteRolePolicy",
                format!("role {role} policy {POLICY_NAME}"),
                e,
            ))
        }
    }
    match iam.delete_role().role_name(role).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(sdk_error("iam:DeleteRole", format!("role {role}"), e)),
    }
}

/// Empties (every version and delete marker) and deletes a bucket the operator created,
/// after checking it still carries this cluster's tag. False when it was already gone.
async fn delete_bucket(s3: &aws_sdk_s3::Client, want: &Desired) -> Result<bool, ProvisionError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let resource = format!("bucket {}", want.bucket);
    let Some(observed) = observe_bucket(s3, want).await? else {
        return Ok(false);
    };
    if observed.tags.get(CLUSTER_TAG) != Some(&want.cluster_key) {
        return Err(ProvisionError::Conflict {
            resource,
            message: format!(
                "does not carry the tag {CLUSTER_TAG}={}: not deleting it",
                want.cluster_key
            ),
        });
    }
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(&want.bucket)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .map_err(|e| sdk_error("s3:ListObjectVersions", &resource, e))?;
        let mut objects = Vec::new();
        let versions = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        for (key, version) in versions {
            let Some(key) = key else { continue };
            let id = ObjectIdentifier::builder()
                .key(key)
                .set_version_id(version.filter(|v| *v != "null").map(str::to_string))
                .build()
                .map_err(|e| build_error("s3:DeleteObjects", &resource, e))?;
            objects.push(id);
        }
        if !objects.is_empty() {
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| build_error("s3:DeleteObjects", &resource, e))?;
            let out = s3
                .delete_objects()
                .bucket(&want.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| sdk_error("s3:DeleteObjects", &resource, e))?;
            if let Some(err) = out.errors().first() {
                return Err(ProvisionError::Call {
                    call: "s3:DeleteObjects",
                    resource: format!("{resource} key {}", err.key().unwrap_or("?")),
                    message: err.message().unwrap_or("failed").to_string(),
                });
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    match s3.delete_bucket().bucket(&want.bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("NoSuchBucket") => Ok(false),
        Err(e) => Err(sdk_error("s3:DeleteBucket", resource, e)),
    }
}
