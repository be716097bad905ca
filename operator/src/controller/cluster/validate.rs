//! Checks of a cluster's spec the operator makes itself, with no client. The CRD's schema
//! and CEL rules refuse most of these at the API server already; an API server without
//! CEL, or an object stored before a rule existed, still gets a clear condition here.

use super::build::BUCKET_MOUNT_PATH;
use crate::crd::cluster::{
    AuthenticationType, CatalogSpec, Provider, SecurityLakeClusterSpec, VpcEndpointType,
};
use crate::crd::DeletionPolicy;

/// Longest cluster name: `<name>-broker-<ordinal>` pods and their
/// `controller-revision-hash` label must stay within 63 characters.
pub const MAX_CLUSTER_NAME: usize = 45;

/// Every problem with the spec, for a condition message.
pub fn validate(name: &str, spec: &SecurityLakeClusterSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if name.len() > MAX_CLUSTER_NAME {
        problems.push(format!(
            "the cluster name is {} characters; at most {MAX_CLUSTER_NAME} fit the broker pod names",
            name.len()
        ));
    }
    if spec.min_replicas > spec.max_replicas {
        problems.push(format!(
            "minReplicas {} exceeds maxReplicas {}",
            spec.min_replicas, spec.max_replicas
        ));
    }
    if spec.replicas < spec.min_replicas || spec.replicas > spec.max_replicas {
        problems.push(format!(
            "replicas {} is outside {}..={}",
            spec.replicas, spec.min_replicas, spec.max_replicas
        ));
    }
    let storage = &spec.storage;
    match (&storage.url, &storage.bucket) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push("set exactly one of storage.url or storage.bucket".into())
        }
        (Some(url), None) if !url.starts_with("s3://") => {
            problems.push(format!("storage.url {url:?} is not an s3:// URL"))
        }
        _ => {}
    }
    if storage.bucket.is_some()
        && (storage.region.is_some()
            || storage.endpoint.is_some()
            || storage.credentials_secret.is_some()
            || storage.encryption_key.is_some())
    {
        problems.push(
            "region, endpoint, credentialsSecret and encryptionKey apply to an s3:// url only"
                .into(),
        );
    }
    let creates_bucket =
        spec.provider == Provider::Aws && spec.aws.as_ref().is_some_and(|a| a.create_bucket);
    if storage.deletion_policy == DeletionPolicy::Delete
        && storage.bucket.is_none()
        && !creates_bucket
    {
        problems.push("deletionPolicy Delete applies to a provisioned bucket only; an existing url is never deleted".into());
    }
    match (spec.provider, &spec.aws) {
        (Provider::Aws, None) => problems.push("provider aws needs spec.aws".into()),
        (Provider::Local, Some(_)) => problems.push("spec.aws applies to provider aws only".into()),
        _ => {}
    }
    if spec.provider == Provider::Aws {
        if storage.url.is_none() || storage.region.is_none() {
            problems.push("provider aws needs storage.url and storage.region".into());
        }
        if storage.credentials_secret.is_some() {
            problems.push("provider aws gives the brokers an IAM role: storage.credentialsSecret is not used with it".into());
        }
        if let Some(key) = &storage.encryption_key {
            if !(key.starts_with("arn:") && key.contains(":kms:") && key.contains(":key/")) {
                problems.push(format!(
                    "storage.encryptionKey {key:?} is not a KMS key ARN"
                ));
            }
        }
        if let Some(aws) = &spec.aws {
            if let Err(e) =
                crate::provision::aws::desired::OidcProvider::parse(&aws.oidc_provider_arn)
            {
                problems.push(e.to_string());
            }
            if let Some(e) = &aws.vpc_endpoint {
                let ok = match e.type_ {
                    VpcEndpointType::Gateway => {
                        !e.route_table_ids.is_empty()
                            && e.subnet_ids.is_empty()
                            && e.security_group_ids.is_empty()
                    }
                    VpcEndpointType::Interface => {
                        !e.subnet_ids.is_empty() && e.route_table_ids.is_empty()
                    }
                };
                if !ok {
                    problems.push("a Gateway endpoint takes routeTableIds only; an Interface endpoint takes subnetIds and optionally securityGroupIds".into());
                }
            }
        }
    }
    if let Some(lake) = &spec.lake {
        check_catalog(&lake.catalog, storage.bucket.is_some(), &mut problems);
    }
    check_listeners(spec, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Distinct ports; mTLS needs the CA of a TLS Secret; super users are `User:` principals.
fn check_listeners(spec: &SecurityLakeClusterSpec, problems: &mut Vec<String>) {
    let listeners = &spec.listeners;
    let ports = [
        ("kafka", listeners.kafka.port),
        ("metrics", listeners.metrics.port),
        ("control", listeners.control.port),
    ];
    for (i, (a, port)) in ports.iter().enumerate() {
        if let Some((b, _)) = ports[i + 1..].iter().find(|(_, p)| p == port) {
            problems.push(format!("the {a} and {b} listeners share port {port}"));
        }
    }
    let kafka = &listeners.kafka;
    if kafka.authentication.as_ref().map(|a| a.type_) == Some(AuthenticationType::Tls)
        && kafka.tls.is_none()
    {
        problems.push(
            "authentication type tls needs listeners.kafka.tls: client certificates are checked in the TLS handshake".into(),
        );
    }
    let super_users = spec.authorization.iter().flat_map(|a| &a.super_users);
    for user in super_users {
        let name = user.strip_prefix("User:").unwrap_or_default();
        if name.is_empty() || name.contains(';') || name.chars().any(char::is_whitespace) {
            problems.push(format!(
                "super user {user:?} is not a principal like User:admin (no spaces or ';')"
            ));
        }
    }
}

/// The catalog's URI names a catalog the brokers can open, one they all share, and its
/// properties survive the brokers' comma-separated `SLUICE_LAKE_CATALOG_PROPS`.
fn check_catalog(catalog: &CatalogSpec, bucket: bool, problems: &mut Vec<String>) {
    let uri = &catalog.uri;
    if let Some(rest) = uri.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let shared = path
            .strip_prefix(BUCKET_MOUNT_PATH)
            .is_some_and(|p| p.len() > 1 && p.starts_with('/'));
        if !bucket || !shared {
            problems.push(format!(
                "lake.catalog.uri {uri:?}: a sqlite catalog needs storage.bucket and a path under {BUCKET_MOUNT_PATH}/, the one directory every broker shares"
            ));
        }
    } else if !(uri.starts_with("http://")
        || uri.starts_with("https://")
        || uri == "glue"
        || uri.strip_prefix("glue:").is_some_and(|e| !e.is_empty()))
    {
        problems.push(format!(
            "lake.catalog.uri {uri:?} is none of sqlite:<path> (SQL catalog), http(s)://… (REST catalog), glue or glue:<endpoint> (AWS Glue)"
        ));
    }
    for (k, v) in &catalog.properties {
        if k.is_empty() || k.contains([',', '=']) || v.contains(',') {
            problems.push(format!(
                "lake.catalog.properties {k:?}: keys are non-empty without ',' or '=', values without ','"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(storage: &str, catalog: &str) -> SecurityLakeClusterSpec {
        serde_yaml::from_str(&format!(
            "{{storage: {storage}, lake: {{catalog: {catalog}}}}}"
        ))
        .unwrap()
    }

    const BUCKET: &str = "{bucket: {size: 1Gi}}";
    const S3: &str = "{url: 's3://lake/prod'}";

    #[test]
    fn a_catalog_the_brokers_can_share_passes() {
        for (storage, catalog) in [
            (BUCKET, "{uri: 'sqlite:/var/lib/sluice/bucket/tables/catalog.db'}"),
            (BUCKET, "{uri: 'sqlite:///var/lib/sluice/bucket/c.db?mode=rwc'}"),
            (S3, "{uri: 'https://catalog:8181/api', properties: {warehouse: w, s3.region: eu-west-1}}"),
            (S3, "{uri: glue}"),
            (S3, "{uri: 'glue:http://moto:5000'}"),
        ] {
            assert_eq!(validate("lake", &spec(storage, catalog)), Ok(()), "{catalog}");
        }
    }

    #[test]
    fn a_catalog_problem_is_named() {
        let problems = |storage, catalog| validate("lake", &spec(storage, catalog)).unwrap_err();
        assert_eq!(
            problems(S3, "{uri: 'sqlite:/var/lib/sluice/bucket/c.db'}"),
            ["lake.catalog.uri \"sqlite:/var/lib/sluice/bucket/c.db\": a sqlite catalog needs storage.bucket and a path under /var/lib/sluice/bucket/, the one directory every broker shares"]
        );
        assert_eq!(problems(BUCKET, "{uri: 'sqlite:/tmp/c.db'}").len(), 1);
        assert_eq!(
            problems(S3, "{uri: 'thrift://metastore:9083'}"),
            ["lake.catalog.uri \"thrift://metastore:9083\" is none of sqlite:<path> (SQL catalog), http(s)://… (REST catalog), glue or glue:<endpoint> (AWS Glue)"]
        );
        assert_eq!(
            problems(S3, "{uri: 'http://c', properties: {'a,b': x, c: 'y,z'}}"),
            [
                "lake.catalog.properties \"a,b\": keys are non-empty without ',' or '=', values without ','",
                "lake.catalog.properties \"c\": keys are non-empty without ',' or '=', values without ','",
            ]
        );
    }
}
