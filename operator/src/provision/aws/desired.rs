//! What a cluster should have on AWS: names, settings and policy documents, computed
//! from the spec alone (pure; no client).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::crd::cluster::VpcEndpointType;
use crate::provision::{CloudRequest, ProvisionError};

/// Tag on every resource: `<namespace>/<name>` of the cluster it belongs to. The operator
/// finds its VPC endpoint by it, and never deletes a bucket that lacks it.
pub const CLUSTER_TAG: &str = "sluice.dev/cluster";
/// Tag on every resource: who manages it.
pub const MANAGED_BY_TAG: &str = "sluice.dev/managed-by";
pub const MANAGED_BY: &str = "sluice-operator";
/// The ServiceAccount annotation EKS's pod identity webhook turns into `AWS_ROLE_ARN` and
/// a projected web identity token in the broker pods.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// IAM path of the brokers' roles.
pub const ROLE_PATH: &str = "/sluice/";
/// The role's one inline policy.
pub const POLICY_NAME: &str = "sluice-broker-storage";
/// Id of the bucket's lifecycle rule.
pub const LIFECYCLE_RULE_ID: &str = "sluice-abort-incomplete-uploads";
/// Days after which an unfinished multipart upload is aborted.
pub const ABORT_INCOMPLETE_UPLOAD_DAYS: i32 = 1;

/// Default encryption of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS with this key, S3 Bucket Keys on (fewer KMS requests).
    Kms(String),
}

/// One lifecycle rule, as far as the operator sets and compares it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LifecycleRule {
    pub id: String,
    /// Key prefix the rule applies to (`""`: the whole bucket).
    pub prefix: String,
    pub enabled: bool,
    pub abort_incomplete_upload_days: Option<i32>,
    /// Any expiration of current objects (the operator never sets one: see docs).
    pub expires_objects: bool,
}

/// The four settings of S3 Block Public Access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// The S3 VPC endpoint the cluster should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointDesired {
    pub vpc_id: String,
    pub type_: VpcEndpointType,
    /// `com.amazonaws.<region>.s3`.
    pub service_name: String,
    pub route_table_ids: BTreeSet<String>,
    pub subnet_ids: BTreeSet<String>,
    /// Empty: the VPC's default group (then the observed groups are not compared).
    pub security_group_ids: BTreeSet<String>,
}

/// The Glue catalog of the Feeds' tables (`lake.catalog.uri: glue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlueDesired {
    /// The Glue-compatible endpoint of `glue:<url>`; `None`: AWS's own.
    pub endpoint: Option<String>,
    /// The databases to create (when missing) and grant.
    pub databases: BTreeSet<String>,
    /// Root of the tables' files: `lake.catalog.warehouse`, default
    /// `s3://<bucket>/<prefix>/tables`. A database is deleted with the cluster only when
    /// all its tables are under it.
    pub warehouse: String,
}

/// Everything the cluster should have on AWS.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub partition: String,
    pub account: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    /// The operator created (or adopted) the bucket and keeps its settings.
    pub manage_bucket: bool,
    pub encryption: Encryption,
    pub lifecycle: Vec<LifecycleRule>,
    pub public_access_block: PublicAccessBlock,
    /// Tags of every resource: the spec's plus `sluice.dev/cluster` and
    /// `sluice.dev/managed-by`.
    pub tags: BTreeMap<String, String>,
    /// `<namespace>/<name>`.
    pub cluster_key: String,
    pub role_name: String,
    pub trust_policy: Value,
    pub policy: Value,
    pub endpoint: Option<EndpointDesired>,
    pub glue: Option<GlueDesired>,
}

impl Desired {
    pub fn bucket_arn(&self) -> String {
        format!("arn:{}:s3:::{}", self.partition, self.bucket)
    }

    pub fn glue_database_arn(&self, database: &str) -> String {
        glue_arn(
            &self.partition,
            &self.region,
            &self.account,
            &format!("database/{database}"),
        )
    }
}

/// The desired state of `req`, or why it cannot be computed.
pub fn desired(req: &CloudRequest) -> Result<Desired, ProvisionError> {
    let spec = req
        .aws
        .as_ref()
        .ok_or_else(|| ProvisionError::Spec("provider aws needs spec.aws".into()))?;
    let bucket = req.bucket.clone().ok_or_else(|| {
        ProvisionError::Spec("provider aws needs storage.url s3://BUCKET[/PREFIX]".into())
    })?;
    let region = req
        .region
        .clone()
        .ok_or_else(|| ProvisionError::Spec("provider aws needs storage.region".into()))?;
    let oidc = OidcProvider::parse(&spec.oidc_provider_arn)?;

    let mut tags = spec.tags.clone();
    tags.insert(CLUSTER_TAG.into(), req.cluster_key());
    tags.insert(MANAGED_BY_TAG.into(), MANAGED_BY.into());

    let encryption = match &req.kms_key_arn {
        Some(key) => Encryption::Kms(key.clone()),
        None => Encryption::S3,
    };
    let lifecycle = vec![LifecycleRule {
        id: LIFECYCLE_RULE_ID.into(),
        prefix: key_prefix(&req.prefix),
        enabled: true,
        abort_incomplete_upload_days: Some(ABORT_INCOMPLETE_UPLOAD_DAYS),
        expires_objects: false,
    }];
    let endpoint = spec.vpc_endpoint.as_ref().map(|e| EndpointDesired {
        vpc_id: e.vpc_id.clone(),
        type_: e.type_,
        service_name: format!("com.amazonaws.{region}.s3"),
        route_table_ids: e.route_table_ids.iter().cloned().collect(),
        subnet_ids: e.subnet_ids.iter().cloned().collect(),
        security_group_ids: e.security_group_ids.iter().cloned().collect(),
    });
    let catalog = req.catalog.as_ref();
    let glue = catalog.and_then(|c| {
        let endpoint = c.glue_endpoint()?;
        Some(GlueDesired {
            endpoint: endpoint.map(str::to_string),
            databases: c.glue_databases().into_iter().collect(),
            warehouse: c
                .warehouse
                .clone()
                .unwrap_or_else(|| default_warehouse(&bucket, &req.prefix)),
        })
    });
    let mut policy = broker_policy(
        &oidc.partition,
        &bucket,
        &req.prefix,
        req.kms_key_arn.as_deref(),
    );
    let mut extra = Vec::new();
    if let Some(warehouse) = catalog.and_then(|c| c.warehouse.as_deref()) {
        extra.extend(warehouse_statements(
            &oidc.partition,
            &bucket,
            &req.prefix,
            warehouse,
        ));
    }
    if let Some(glue) = &glue {
        extra.push(glue_statement(
            &oidc.partition,
            &region,
            &oidc.account,
            &glue.databases,
        ));
    }
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.extend(extra);
    }
    Ok(Desired {
        trust_policy: trust_policy(&oidc, &req.namespace, &req.service_account),
        policy,
        role_name: role_name(&req.namespace, &req.name),
        partition: oidc.partition,
        account: oidc.account,
        region,
        bucket,
        prefix: req.prefix.clone(),
        manage_bucket: spec.create_bucket,
        encryption,
        lifecycle,
        public_access_block: PublicAccessBlock::ALL,
        tags,
        cluster_key: req.cluster_key(),
        endpoint,
        glue,
    })
}

/// The brokers' default warehouse: `<storage url>/tables`.
fn default_warehouse(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{}tables", key_prefix(prefix))
}

/// `arn:PARTITION:glue:REGION:ACCOUNT:RESOURCE`.
fn glue_arn(partition: &str, region: &str, account: &str, resource: &str) -> String {
    format!("arn:{partition}:glue:{region}:{account}:{resource}")
}

/// What iceberg-rust's Glue catalog calls, on the account's catalog, the databases and
/// their tables: namespaces are databases, tables are tables whose `metadata_location`
/// parameter points at the current metadata file.
pub const GLUE_ACTIONS: [&str; 8] = [
    "glue:GetDatabase",
    "glue:GetDatabases",
    "glue:CreateDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:DeleteTable",
];

/// The brokers' Glue permissions.
pub fn glue_statement(
    partition: &str,
    region: &str,
    account: &str,
    databases: &BTreeSet<String>,
) -> Value {
    let mut resources = vec![glue_arn(partition, region, account, "catalog")];
    for db in databases {
        resources.push(glue_arn(
            partition,
            region,
            account,
            &format!("database/{db}"),
        ));
        resources.push(glue_arn(
            partition,
            region,
            account,
            &format!("table/{db}/*"),
        ));
    }
    json!({
        "Sid": "GlueTables",
        "Effect": "Allow",
        "Action": GLUE_ACTIONS,
        "Resource": resources,
    })
}

/// Read and write on an `s3://` warehouse outside the cluster's prefix (one inside it is
/// covered by the prefix's statements already, as is the default `<prefix>/tables`).
/// Empty for a warehouse under the prefix or on another scheme.
pub fn warehouse_statements(
    partition: &str,
    bucket: &str,
    prefix: &str,
    warehouse: &str,
) -> Vec<Value> {
    let Some((w_bucket, w_prefix)) = crate::provision::parse_s3_url(warehouse) else {
        return Vec::new();
    };
    let covered = w_bucket == bucket
        && (prefix.is_empty() || w_prefix == prefix || w_prefix.starts_with(&format!("{prefix}/")));
    if covered {
        return Vec::new();
    }
    let mut list = json!({
        "Sid": "ListWarehousePrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": format!("arn:{partition}:s3:::{w_bucket}"),
    });
    if !w_prefix.is_empty() {
        list["Condition"] = json!({ "StringLike": { "s3:prefix": [format!("{w_prefix}/*")] } });
    }
    vec![
        json!({
            "Sid": "WarehouseObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": format!("arn:{partition}:s3:::{w_bucket}/{}*", key_prefix(&w_prefix)),
        }),
        list,
    ]
}

/// `prefix/` (or `""` for the whole bucket): the key prefix of the cluster's objects.
fn key_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// The parts of an IAM OIDC provider ARN the policies need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcProvider {
    pub arn: String,
    pub partition: String,
    pub account: String,
    /// The issuer without `https://`, e.g. `oidc.eks.eu-west-1.amazonaws.com/id/ABC`: the
    /// prefix of the `:sub` and `:aud` condition keys.
    pub issuer: String,
}

impl OidcProvider {
    /// `arn:PARTITION:iam::ACCOUNT:oidc-provider/ISSUER`.
    pub fn parse(arn: &str) -> Result<OidcProvider, ProvisionError> {
        let bad = || {
            ProvisionError::Spec(format!(
                "aws.oidcProviderArn {arn:?} is not arn:aws:iam::ACCOUNT:oidc-provider/ISSUER"
            ))
        };
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let issuer = resource.strip_prefix("oidc-provider/").ok_or_else(bad)?;
        if issuer.is_empty() || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Ok(OidcProvider {
            arn: arn.to_string(),
            partition: partition.to_string(),
            account: account.to_string(),
            issuer: issuer.to_string(),
        })
    }
}

/// IRSA: only tokens the cluster's OIDC provider issued to the broker ServiceAccount, for
/// STS, may assume the role.
pub fn trust_policy(oidc: &OidcProvider, namespace: &str, service_account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "BrokerServiceAccount",
            "Effect": "Allow",
            "Principal": { "Federated": oidc.arn },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{}:sub", oidc.issuer): format!("system:serviceaccount:{namespace}:{service_account}"),
                    format!("{}:aud", oidc.issuer): "sts.amazonaws.com",
                }
            }
        }]
    })
}

/// Least privilege for a broker: read, write and delete objects under the cluster's
/// prefix, list only that prefix, and use the KMS key when there is one. Conditional
/// writes (`If-None-Match`, `If-Match`) need nothing more than `s3:PutObject`.
pub fn broker_policy(partition: &str, bucket: &str, prefix: &str, kms_key: Option<&str>) -> Value {
    let objects = format!("arn:{partition}:s3:::{bucket}/{}*", key_prefix(prefix));
    let mut list = json!({
        "Sid": "ListClusterPrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": format!("arn:{partition}:s3:::{bucket}"),
    });
    if !prefix.is_empty() {
        list["Condition"] = json!({ "StringLike": { "s3:prefix": [format!("{prefix}/*")] } });
    }
    let mut statements = vec![
        json!({
            "Sid": "ClusterObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": objects,
        }),
        list,
    ];
    if let Some(key) = kms_key {
        statements.push(json!({
            "Sid": "BucketKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key,
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// `sluice-<name>-<hash of namespace/name>`: unique per cluster, at most 64 characters
/// (cluster names have at most 45).
pub fn role_name(namespace: &str, name: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in namespace.bytes().chain([b'/']).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let mut n = format!("sluice-{name}-{:08x}", h as u32);
    n.truncate(64);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oidc_arn_gives_partition_account_and_issuer() {
        let p = OidcProvider::parse(
            "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC",
        )
        .unwrap();
        assert_eq!(p.partition, "aws");
        assert_eq!(p.account, "111122223333");
        assert_eq!(p.issuer, "oidc.eks.eu-west-1.amazonaws.com/id/ABC");
        assert!(OidcProvider::parse("arn:aws:iam::1:oidc-provider/x").is_err());
        assert!(OidcProvider::parse("arn:aws:iam::111122223333:role/x").is_err());
    }

    #[test]
    fn the_broker_policy_is_scoped_to_the_prefix() {
        let p = broker_policy("aws", "lake", "prod", None);
        assert_eq!(p["Statement"][0]["Resource"], "arn:aws:s3:::lake/prod/*");
        assert_eq!(p["Statement"][1]["Resource"], "arn:aws:s3:::lake");
        assert_eq!(
            p["Statement"][1]["Condition"]["StringLike"]["s3:prefix"],
            json!(["prod/*"])
        );
        assert_eq!(p["Statement"].as_array().unwrap().len(), 2);
        let whole = broker_policy(
            "aws",
            "lake",
            "",
            Some("arn:aws:kms:eu-west-1:111122223333:key/k"),
        );
        assert_eq!(whole["Statement"][0]["Resource"], "arn:aws:s3:::lake/*");
        assert!(whole["Statement"][1].get("Condition").is_none());
        assert_eq!(
            whole["Statement"][2]["Action"],
            json!(["kms:Decrypt", "kms:GenerateDataKey"])
        );
    }

    #[test]
    fn glue_permissions_name_the_catalog_the_databases_and_their_tables() {
        let dbs = BTreeSet::from(["sluice".to_string(), "vpc".to_string()]);
        let st = glue_statement("aws", "eu-west-1", "111122223333", &dbs);
        assert_eq!(
            st["Resource"],
            json!([
                "arn:aws:glue:eu-west-1:111122223333:catalog",
                "arn:aws:glue:eu-west-1:111122223333:database/sluice",
                "arn:aws:glue:eu-west-1:111122223333:table/sluice/*",
                "arn:aws:glue:eu-west-1:111122223333:database/vpc",
                "arn:aws:glue:eu-west-1:111122223333:table/vpc/*",
            ])
        );
        let actions = st["Action"].as_array().unwrap();
        for a in ["glue:CreateDatabase", "glue:GetTables", "glue:UpdateTable"] {
            assert!(actions.contains(&json!(a)), "{a}");
        }
        assert!(!actions.contains(&json!("glue:DeleteDatabase")));
    }

    #[test]
    fn a_warehouse_under_the_prefix_needs_no_more_s3_permissions() {
        for w in [
            "s3://lake/prod/tables",
            "s3://lake/prod",
            "s3://lake/prod/x/y/",
        ] {
            assert!(
                warehouse_statements("aws", "lake", "prod", w).is_empty(),
                "{w}"
            );
        }
        assert!(warehouse_statements("aws", "lake", "", "s3://lake/t").is_empty());
        assert!(warehouse_statements("aws", "lake", "prod", "file:///t").is_empty());
        // `prod2` is not under `prod`, nor another bucket.
        let st = warehouse_statements("aws", "lake", "prod", "s3://lake/prod2/tables");
        assert_eq!(st[0]["Resource"], "arn:aws:s3:::lake/prod2/tables/*");
        assert_eq!(
            st[1]["Condition"]["StringLike"]["s3:prefix"],
            json!(["prod2/tables/*"])
        );
        let st = warehouse_statements("aws", "lake", "prod", "s3://tables");
        assert_eq!(st[0]["Resource"], "arn:aws:s3:::tables/*");
        assert_eq!(st[1]["Resource"], "arn:aws:s3:::tables");
        assert!(st[1].get("Condition").is_none());
    }

    #[test]
    fn role_names_are_unique_per_namespace_and_fit_iam() {
        let a = role_name("security", "lake");
        assert!(a.starts_with("sluice-lake-"));
        assert_ne!(a, role_name("other", "lake"));
        assert_eq!(a, role_name("security", "lake"));
        assert!(role_name(&"n".repeat(63), &"c".repeat(45)).len() <= 64);
    }
}
