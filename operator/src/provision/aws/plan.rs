//! Observed state and the plan: the changing calls that take what exists to what is
//! desired, in order. Pure, so every drift and every half-done state is a unit test.
//!
//! Order: bucket (claimed with its tags first, then public access block, encryption,
//! lifecycle), then the role (trust, tags, policy), then the VPC endpoint, then the Glue
//! databases. Because the
//! plan is recomputed from a fresh observation at every reconcile, a reconcile that
//! failed halfway resumes at the first step still missing.
//!
//! Long because: the plan is short (under 330 lines); the rest is its unit tests, one per
//! drift and half-done state.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::desired::{
    Desired, Encryption, EndpointDesired, LifecycleRule, PublicAccessBlock, CLUSTER_TAG,
};
use crate::crd::cluster::VpcEndpointType;
use crate::provision::ProvisionError;

/// A bucket as read. Settings are read only for a bucket the operator manages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedBucket {
    pub region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub public_access_block: Option<PublicAccessBlock>,
    pub encryption: Option<Encryption>,
    pub lifecycle: Vec<LifecycleRule>,
}

/// The brokers' role as read.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRole {
    pub arn: String,
    pub trust_policy: Value,
    pub tags: BTreeMap<String, String>,
    /// The inline policy, `None` when missing.
    pub policy: Option<Value>,
}

/// A VPC endpoint carrying the cluster's tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedEndpoint {
    pub id: String,
    pub vpc_id: String,
    pub service_name: String,
    pub type_: String,
    pub route_table_ids: BTreeSet<String>,
    pub subnet_ids: BTreeSet<String>,
    pub security_group_ids: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

/// A Glue database as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedDatabase {
    /// Its parameters: the operator's carry `sluice.dev/cluster`.
    pub parameters: BTreeMap<String, String>,
}

impl ObservedDatabase {
    /// Created by the operator for this cluster.
    pub fn managed_by(&self, cluster_key: &str) -> bool {
        self.parameters.get(CLUSTER_TAG).map(String::as_str) == Some(cluster_key)
    }
}

/// Everything observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub bucket: Option<ObservedBucket>,
    pub role: Option<ObservedRole>,
    /// Live (not deleting or deleted) endpoints tagged for this cluster.
    pub endpoints: Vec<ObservedEndpoint>,
    /// The desired Glue databases that exist.
    pub glue_databases: BTreeMap<String, ObservedDatabase>,
}

/// One changing call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    CreateBucket,
    PutBucketTagging,
    PutPublicAccessBlock,
    PutBucketEncryption,
    PutBucketLifecycle,
    CreateRole,
    UpdateAssumeRolePolicy,
    /// Sets these tags (the rest stay).
    TagRole(BTreeMap<String, String>),
    PutRolePolicy,
    DeleteVpcEndpoint(String),
    CreateVpcEndpoint,
    ModifyVpcEndpoint(EndpointChange),
    /// Sets these tags on the endpoint.
    TagVpcEndpoint(String, BTreeMap<String, String>),
    /// Creates this Glue database.
    CreateGlueDatabase(String),
}

impl Step {
    /// `service:Operation`, as in CloudTrail.
    pub fn call(&self) -> &'static str {
        match self {
            Step::CreateBucket => "s3:CreateBucket",
            Step::PutBucketTagging => "s3:PutBucketTagging",
            Step::PutPublicAccessBlock => "s3:PutPublicAccessBlock",
            Step::PutBucketEncryption => "s3:PutBucketEncryption",
            Step::PutBucketLifecycle => "s3:PutBucketLifecycleConfiguration",
            Step::CreateRole => "iam:CreateRole",
            Step::UpdateAssumeRolePolicy => "iam:UpdateAssumeRolePolicy",
            Step::TagRole(_) => "iam:TagRole",
            Step::PutRolePolicy => "iam:PutRolePolicy",
            Step::DeleteVpcEndpoint(_) => "ec2:DeleteVpcEndpoints",
            Step::CreateVpcEndpoint => "ec2:CreateVpcEndpoint",
            Step::ModifyVpcEndpoint(_) => "ec2:ModifyVpcEndpoint",
            Step::TagVpcEndpoint(..) => "ec2:CreateTags",
            Step::CreateGlueDatabase(_) => "glue:CreateDatabase",
        }
    }
}

/// Route tables, subnets and security groups to add to and remove from an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointChange {
    pub id: String,
    pub add_route_table_ids: Vec<String>,
    pub remove_route_table_ids: Vec<String>,
    pub add_subnet_ids: Vec<String>,
    pub remove_subnet_ids: Vec<String>,
    pub add_security_group_ids: Vec<String>,
    pub remove_security_group_ids: Vec<String>,
}

impl EndpointChange {
    fn is_empty(&self) -> bool {
        self.add_route_table_ids.is_empty()
            && self.remove_route_table_ids.is_empty()
            && self.add_subnet_ids.is_empty()
            && self.remove_subnet_ids.is_empty()
            && self.add_security_group_ids.is_empty()
            && self.remove_security_group_ids.is_empty()
    }
}

/// The steps from `observed` to `desired`, or the conflict that stops them.
pub fn plan(desired: &Desired, observed: &Observed) -> Result<Vec<Step>, ProvisionError> {
    let mut steps = Vec::new();
    plan_bucket(desired, observed.bucket.as_ref(), &mut steps)?;
    plan_role(desired, observed.role.as_ref(), &mut steps);
    plan_endpoint(desired, &observed.endpoints, &mut steps);
    plan_glue(desired, &observed.glue_databases, &mut steps);
    Ok(steps)
}

/// Missing databases are created; existing ones (the operator's, or someone else's,
/// another cluster's sharing the catalog) are used as they are.
fn plan_glue(
    desired: &Desired,
    databases: &BTreeMap<String, ObservedDatabase>,
    steps: &mut Vec<Step>,
) {
    let Some(glue) = &desired.glue else { return };
    for db in &glue.databases {
        if !databases.contains_key(db) {
            steps.push(Step::CreateGlueDatabase(db.clone()));
        }
    }
}

fn plan_bucket(
    desired: &Desired,
    bucket: Option<&ObservedBucket>,
    steps: &mut Vec<Step>,
) -> Result<(), ProvisionError> {
    let resource = format!("bucket {}", desired.bucket);
    let Some(bucket) = bucket else {
        if !desired.manage_bucket {
            return Err(ProvisionError::Conflict {
                resource,
                message: "does not exist (or is not visible to the operator); aws.createBucket is false, so the operator does not create it".into(),
            });
        }
        steps.extend([
            Step::CreateBucket,
            Step::PutBucketTagging,
            Step::PutPublicAccessBlock,
            Step::PutBucketEncryption,
            Step::PutBucketLifecycle,
        ]);
        return Ok(());
    };
    if let Some(region) = &bucket.region {
        if region != &desired.region {
            return Err(ProvisionError::Conflict {
                resource,
                message: format!(
                    "is in region {region}, storage.region is {}",
                    desired.region
                ),
            });
        }
    }
    if !desired.manage_bucket {
        return Ok(());
    }
    if let Some(owner) = bucket.tags.get(CLUSTER_TAG) {
        if owner != &desired.cluster_key {
            return Err(ProvisionError::Conflict {
                resource,
                message: format!(
                    "belongs to cluster {owner} (tag {CLUSTER_TAG}); the operator does not take it over"
                ),
            });
        }
    }
    if bucket.tags != desired.tags {
        steps.push(Step::PutBucketTagging);
    }
    if bucket.public_access_block != Some(desired.public_access_block) {
        steps.push(Step::PutPublicAccessBlock);
    }
    if bucket.encryption.as_ref() != Some(&desired.encryption) {
        steps.push(Step::PutBucketEncryption);
    }
    let mut lifecycle = bucket.lifecycle.clone();
    lifecycle.sort();
    if lifecycle != desired.lifecycle {
        steps.push(Step::PutBucketLifecycle);
    }
    Ok(())
}

fn plan_role(desired: &Desired, role: Option<&ObservedRole>, steps: &mut Vec<Step>) {
    let Some(role) = role else {
        steps.extend([Step::CreateRole, Step::PutRolePolicy]);
        return;
    };
    if role.trust_policy != desired.trust_policy {
        steps.push(Step::UpdateAssumeRolePolicy);
    }
    let missing: BTreeMap<String, String> = desired
        .tags
        .iter()
        .filter(|(k, v)| role.tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !missing.is_empty() {
        steps.push(Step::TagRole(missing));
    }
    if role.policy.as_ref() != Some(&desired.policy) {
        steps.push(Step::PutRolePolicy);
    }
}

fn plan_endpoint(desired: &Desired, endpoints: &[ObservedEndpoint], steps: &mut Vec<Step>) {
    let Some(want) = &desired.endpoint else {
        // The spec dropped the endpoint: remove the ones made for this cluster.
        for e in endpoints {
            steps.push(Step::DeleteVpcEndpoint(e.id.clone()));
        }
        return;
    };
    let mut sorted: Vec<&ObservedEndpoint> = endpoints.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let keep = sorted.iter().copied().find(|e| fits(want, e));
    for e in &sorted {
        if keep.map(|k| k.id != e.id).unwrap_or(true) {
            steps.push(Step::DeleteVpcEndpoint(e.id.clone()));
        }
    }
    let Some(keep) = keep else {
        steps.push(Step::CreateVpcEndpoint);
        return;
    };
    let mut change = EndpointChange {
        id: keep.id.clone(),
        ..EndpointChange::default()
    };
    let diff = |want: &BTreeSet<String>, have: &BTreeSet<String>| -> (Vec<String>, Vec<String>) {
        (
            want.difference(have).cloned().collect(),
            have.difference(want).cloned().collect(),
        )
    };
    match want.type_ {
        VpcEndpointType::Gateway => {
            (change.add_route_table_ids, change.remove_route_table_ids) =
                diff(&want.route_table_ids, &keep.route_table_ids);
        }
        VpcEndpointType::Interface => {
            (change.add_subnet_ids, change.remove_subnet_ids) =
                diff(&want.subnet_ids, &keep.subnet_ids);
            if !want.security_group_ids.is_empty() {
                (
                    change.add_security_group_ids,
                    change.remove_security_group_ids,
                ) = diff(&want.security_group_ids, &keep.security_group_ids);
            }
        }
    }
    if !change.is_empty() {
        steps.push(Step::ModifyVpcEndpoint(change));
    }
    let missing: BTreeMap<String, String> = desired
        .tags
        .iter()
        .filter(|(k, v)| keep.tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !missing.is_empty() {
        steps.push(Step::TagVpcEndpoint(keep.id.clone(), missing));
    }
}

/// An endpoint can be kept (and modified) when its VPC, service and type are right;
/// otherwise it is replaced.
fn fits(want: &EndpointDesired, e: &ObservedEndpoint) -> bool {
    e.vpc_id == want.vpc_id
        && e.service_name == want.service_name
        && e.type_.eq_ignore_ascii_case(want.type_.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::desired::{desired, LIFECYCLE_RULE_ID};
    use super::*;
    use crate::crd::cluster::{AwsSpec, CatalogSpec, Provider, VpcEndpointSpec};
    use crate::crd::DeletionPolicy;
    use crate::provision::CloudRequest;

    fn request() -> CloudRequest {
        CloudRequest {
            provider: Provider::Aws,
            namespace: "security".into(),
            name: "lake".into(),
            service_account: "lake-broker".into(),
            bucket: Some("acme-lake".into()),
            prefix: "prod".into(),
            region: Some("eu-west-1".into()),
            kms_key_arn: None,
            deletion_policy: DeletionPolicy::Retain,
            aws: Some(AwsSpec {
                create_bucket: true,
                oidc_provider_arn:
                    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X"
                        .into(),
                vpc_endpoint: Some(VpcEndpointSpec {
                    vpc_id: "vpc-0123456789abcdef0".into(),
                    type_: VpcEndpointType::Gateway,
                    route_table_ids: vec!["rtb-00000001".into(), "rtb-00000002".into()],
                    subnet_ids: vec![],
                    security_group_ids: vec![],
                }),
                tags: BTreeMap::from([("owner".into(), "secops".into())]),
            }),
            catalog: None,
        }
    }

    fn glue_request() -> CloudRequest {
        CloudRequest {
            catalog: Some(CatalogSpec {
                uri: "glue".into(),
                warehouse: None,
                properties: BTreeMap::new(),
                properties_secret_ref: None,
                glue_databases: vec!["sluice".into(), "vpc".into()],
            }),
            ..request()
        }
    }

    /// What the cloud holds after a complete reconcile.
    fn converged(d: &Desired) -> Observed {
        let e = d.endpoint.as_ref().unwrap();
        Observed {
            bucket: Some(ObservedBucket {
                region: Some(d.region.clone()),
                tags: d.tags.clone(),
                public_access_block: Some(PublicAccessBlock::ALL),
                encryption: Some(d.encryption.clone()),
                lifecycle: d.lifecycle.clone(),
            }),
            role: Some(ObservedRole {
                arn: "arn:aws:iam::111122223333:role/sluice/x".into(),
                trust_policy: d.trust_policy.clone(),
                tags: d.tags.clone(),
                policy: Some(d.policy.clone()),
            }),
            endpoints: vec![ObservedEndpoint {
                id: "vpce-1".into(),
                vpc_id: e.vpc_id.clone(),
                service_name: e.service_name.clone(),
                type_: "Gateway".into(),
                route_table_ids: e.route_table_ids.clone(),
                subnet_ids: BTreeSet::new(),
                security_group_ids: BTreeSet::new(),
                tags: d.tags.clone(),
            }],
            glue_databases: d
                .glue
                .iter()
                .flat_map(|g| &g.databases)
                .map(|db| (db.clone(), ObservedDatabase::default()))
                .collect(),
        }
    }

    #[test]
    fn nothing_exists_so_everything_is_created_in_order() {
        let d = desired(&request()).unwrap();
        let steps = plan(&d, &Observed::default()).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::CreateBucket,
                Step::PutBucketTagging,
                Step::PutPublicAccessBlock,
                Step::PutBucketEncryption,
                Step::PutBucketLifecycle,
                Step::CreateRole,
                Step::PutRolePolicy,
                Step::CreateVpcEndpoint,
            ]
        );
    }

    #[test]
    fn a_converged_cluster_needs_no_step() {
        let d = desired(&request()).unwrap();
        assert_eq!(plan(&d, &converged(&d)).unwrap(), vec![]);
    }

    #[test]
    fn each_drift_is_corrected_by_its_own_call() {
        let d = desired(&request()).unwrap();
        let mut o = converged(&d);
        let b = o.bucket.as_mut().unwrap();
        b.public_access_block = None;
        b.encryption = Some(Encryption::Kms("arn:aws:kms:eu-west-1:1:key/other".into()));
        b.tags.remove("owner");
        b.lifecycle.push(LifecycleRule {
            id: "someone-elses".into(),
            prefix: "".into(),
            enabled: true,
            abort_incomplete_upload_days: None,
            expires_objects: true,
        });
        let r = o.role.as_mut().unwrap();
        r.trust_policy = serde_json::json!({});
        r.policy = None;
        r.tags.remove("owner");
        let e = &mut o.endpoints[0];
        e.route_table_ids.remove("rtb-00000002");
        e.route_table_ids.insert("rtb-00000009".into());
        let steps = plan(&d, &o).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::PutBucketTagging,
                Step::PutPublicAccessBlock,
                Step::PutBucketEncryption,
                Step::PutBucketLifecycle,
                Step::UpdateAssumeRolePolicy,
                Step::TagRole(BTreeMap::from([("owner".into(), "secops".into())])),
                Step::PutRolePolicy,
                Step::ModifyVpcEndpoint(EndpointChange {
                    id: "vpce-1".into(),
                    add_route_table_ids: vec!["rtb-00000002".into()],
                    remove_route_table_ids: vec!["rtb-00000009".into()],
                    ..EndpointChange::default()
                }),
            ]
        );
    }

    #[test]
    fn a_bucket_of_another_cluster_is_a_conflict() {
        let d = desired(&request()).unwrap();
        let mut o = converged(&d);
        o.bucket
            .as_mut()
            .unwrap()
            .tags
            .insert(CLUSTER_TAG.into(), "other/lake".into());
        let err = plan(&d, &o).unwrap_err();
        assert!(err.needs_a_person());
        assert!(err.to_string().contains("bucket acme-lake"), "{err}");
        assert!(err.to_string().contains("other/lake"), "{err}");
    }

    #[test]
    fn a_bucket_in_another_region_is_a_conflict() {
        let d = desired(&request()).unwrap();
        let mut o = converged(&d);
        o.bucket.as_mut().unwrap().region = Some("us-east-1".into());
        assert!(plan(&d, &o).unwrap_err().to_string().contains("us-east-1"));
    }

    #[test]
    fn an_existing_bucket_is_only_checked() {
        let mut req = request();
        req.aws.as_mut().unwrap().create_bucket = false;
        let d = desired(&req).unwrap();
        let mut o = converged(&d);
        // Whatever the owner set stays: no bucket step.
        o.bucket = Some(ObservedBucket {
            region: Some("eu-west-1".into()),
            ..ObservedBucket::default()
        });
        assert_eq!(plan(&d, &o).unwrap(), vec![]);
        o.bucket = None;
        assert!(plan(&d, &o).unwrap_err().needs_a_person());
    }

    #[test]
    fn an_endpoint_of_the_wrong_type_is_replaced_and_extra_ones_removed() {
        let d = desired(&request()).unwrap();
        let mut o = converged(&d);
        o.endpoints[0].type_ = "Interface".into();
        let mut dup = converged(&d).endpoints[0].clone();
        dup.id = "vpce-2".into();
        let mut dup2 = dup.clone();
        dup2.id = "vpce-3".into();
        o.endpoints.push(dup);
        o.endpoints.push(dup2);
        assert_eq!(
            plan(&d, &o).unwrap(),
            vec![
                Step::DeleteVpcEndpoint("vpce-1".into()),
                Step::DeleteVpcEndpoint("vpce-3".into()),
            ]
        );
    }

    #[test]
    fn dropping_the_endpoint_from_the_spec_deletes_it() {
        let mut req = request();
        let d0 = desired(&req).unwrap();
        req.aws.as_mut().unwrap().vpc_endpoint = None;
        let d = desired(&req).unwrap();
        assert_eq!(
            plan(&d, &converged(&d0)).unwrap(),
            vec![Step::DeleteVpcEndpoint("vpce-1".into())]
        );
    }

    #[test]
    fn the_lifecycle_rule_never_expires_objects() {
        let d = desired(&request()).unwrap();
        assert_eq!(d.lifecycle.len(), 1);
        assert_eq!(d.lifecycle[0].id, LIFECYCLE_RULE_ID);
        assert_eq!(d.lifecycle[0].prefix, "prod/");
        assert!(!d.lifecycle[0].expires_objects);
        assert_eq!(d.lifecycle[0].abort_incomplete_upload_days, Some(1));
    }

    #[test]
    fn glue_databases_are_created_when_missing_and_only_then() {
        let d = desired(&glue_request()).unwrap();
        let mut o = converged(&d);
        assert_eq!(plan(&d, &o).unwrap(), vec![]);
        o.glue_databases.remove("vpc");
        assert_eq!(
            plan(&d, &o).unwrap(),
            vec![Step::CreateGlueDatabase("vpc".into())]
        );
        let steps = plan(&d, &Observed::default()).unwrap();
        assert_eq!(
            steps[steps.len() - 2..],
            [
                Step::CreateGlueDatabase("sluice".into()),
                Step::CreateGlueDatabase("vpc".into())
            ]
        );
    }

    #[test]
    fn a_glue_catalog_adds_its_statement_to_the_role_policy() {
        let plain = desired(&request()).unwrap();
        assert!(plain.glue.is_none());
        let d = desired(&glue_request()).unwrap();
        let glue = d.glue.as_ref().unwrap();
        assert_eq!(glue.endpoint, None);
        assert_eq!(glue.warehouse, "s3://acme-lake/prod/tables");
        let statements = d.policy["Statement"].as_array().unwrap();
        assert_eq!(
            statements.len(),
            plain.policy["Statement"].as_array().unwrap().len() + 1
        );
        let last = statements.last().unwrap();
        assert_eq!(last["Sid"], "GlueTables");
        assert_eq!(
            last["Resource"][1],
            "arn:aws:glue:eu-west-1:111122223333:database/sluice"
        );
        // A drifted policy (the Glue statement removed) is put back.
        let mut o = converged(&d);
        o.role.as_mut().unwrap().policy = Some(plain.policy.clone());
        assert_eq!(plan(&d, &o).unwrap(), vec![Step::PutRolePolicy]);
    }

    #[test]
    fn the_default_glue_database_is_the_default_namespace() {
        let mut req = glue_request();
        let c = req.catalog.as_mut().unwrap();
        c.glue_databases.clear();
        c.uri = "glue:http://127.0.0.1:5000".into();
        c.warehouse = Some("s3://tables-elsewhere/t".into());
        let d = desired(&req).unwrap();
        let glue = d.glue.as_ref().unwrap();
        assert_eq!(glue.databases, BTreeSet::from(["sluice".to_string()]));
        assert_eq!(glue.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let sids: Vec<&str> = d.policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(
            sids,
            [
                "ClusterObjects",
                "ListClusterPrefix",
                "WarehouseObjects",
                "ListWarehousePrefix",
                "GlueTables"
            ]
        );
        // Any other catalog: no Glue.
        req.catalog.as_mut().unwrap().uri = "https://polaris.example/api/catalog".into();
        assert!(desired(&req).unwrap().glue.is_none());
    }
}
