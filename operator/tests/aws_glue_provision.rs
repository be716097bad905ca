//! The `aws` provider with a Glue catalog (`lake.catalog.uri: glue`) against moto's
//! server (`sluice_testkit::Moto`, one per test, on a free 127.0.0.1 port): the Glue
//! databases of the Feeds' tables and the brokers' Glue permissions. The bucket, role and
//! endpoint themselves are `aws_provision.rs`'s; these clusters have no VPC endpoint.
//!
//! moto missing is a failure, not a skip: set `SLUICE_MOTO_SERVER` or run `scripts/test`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice_operator::crd::cluster::GlueDatabaseStatus;
use sluice_operator::crd::SecurityLakeCluster;
use sluice_operator::provision::aws::calls::CallLog;
use sluice_operator::provision::aws::desired::{role_name, CLUSTER_TAG};
use sluice_operator::provision::aws::AwsProvider;
use sluice_operator::provision::CloudProvider;
use sluice_testkit::Moto;

mod common;
use common::aws::{
    mutating, oidc_provider, policy, request, sdk_config, statement_ids, ACCOUNT, REGION,
};

const ISSUER: &str = "oidc.eks.eu-west-1.amazonaws.com/id/SLUICEGLUE";

struct Env {
    _moto: Moto,
    provider: AwsProvider,
    calls: CallLog,
    iam: aws_sdk_iam::Client,
    glue: aws_sdk_glue::Client,
    oidc_arn: String,
}

async fn env() -> Env {
    let moto = Moto::start();
    let config = sdk_config(moto.endpoint()).await;
    let calls = CallLog::recording();
    let provider = AwsProvider::with_config(config.clone(), calls.clone());
    let iam = aws_sdk_iam::Client::new(&config);
    let glue = aws_sdk_glue::Client::new(&config);
    let oidc_arn = oidc_provider(&iam, ISSUER).await;
    calls.take();
    Env {
        _moto: moto,
        provider,
        calls,
        iam,
        glue,
        oidc_arn,
    }
}

/// A cluster `security/<name>` over `s3://<bucket>/prod` with a Glue catalog.
fn cluster(env: &Env, name: &str, bucket: &str, catalog: Value) -> SecurityLakeCluster {
    let mut lake = json!({ "uri": "glue" });
    lake.as_object_mut()
        .unwrap()
        .extend(catalog.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "SecurityLakeCluster",
        "metadata": { "name": name, "namespace": "security" },
        "spec": {
            "provider": "aws",
            "storage": { "url": format!("s3://{bucket}/prod"), "region": REGION, "deletionPolicy": "Retain" },
            "aws": { "createBucket": true, "oidcProviderArn": env.oidc_arn },
            "lake": { "catalog": lake },
        },
    }))
    .unwrap()
}

async fn role_policy(env: &Env, name: &str) -> Value {
    let out = env
        .iam
        .get_role_policy()
        .role_name(role_name("security", name))
        .policy_name("sluice-broker-storage")
        .send()
        .await
        .unwrap();
    policy(out.policy_document())
}

async fn database_parameters(env: &Env, db: &str) -> Option<BTreeMap<String, String>> {
    match env.glue.get_database().name(db).send().await {
        Ok(out) => Some(
            out.database()
                .and_then(|d| d.parameters())
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        ),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetDatabase {db}: {e:?}"),
    }
}

#[tokio::test]
async fn the_glue_databases_and_permissions_are_provisioned_once() {
    let env = env().await;
    let c = cluster(
        &env,
        "lake",
        "glue-lake",
        json!({ "glueDatabases": ["sluice", "vpc"] }),
    );
    let req = request(&c);

    let first = env.provider.ensure(&req).await.unwrap();
    let calls = env.calls.take();
    assert_eq!(
        mutating(&calls)[mutating(&calls).len() - 2..],
        ["glue:CreateDatabase", "glue:CreateDatabase"]
    );
    assert!(calls.contains(&"glue:GetDatabase".to_string()), "{calls:?}");
    for db in ["sluice", "vpc"] {
        let params = database_parameters(&env, db).await.expect(db);
        assert_eq!(
            params.get(CLUSTER_TAG).map(String::as_str),
            Some("security/lake")
        );
    }
    let status = first.aws.clone().unwrap();
    assert_eq!(
        status.glue_databases,
        ["sluice", "vpc"].map(|db| GlueDatabaseStatus {
            name: db.into(),
            arn: format!("arn:aws:glue:{REGION}:{ACCOUNT}:database/{db}"),
            managed: true,
        })
    );

    // The role policy: the prefix's S3 statements (the default warehouse
    // `prod/tables` is under `prod/`, so nothing more) and the Glue statement.
    let p = role_policy(&env, "lake").await;
    let statements = p["Statement"].as_array().unwrap();
    let sids: Vec<&str> = statements
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["ClusterObjects", "ListClusterPrefix", "GlueTables"]);
    assert_eq!(statements[0]["Resource"], "arn:aws:s3:::glue-lake/prod/*");
    let glue = &statements[2];
    let arn = |r: &str| format!("arn:aws:glue:{REGION}:{ACCOUNT}:{r}");
    assert_eq!(
        glue["Resource"],
        json!([
            arn("catalog"),
            arn("database/sluice"),
            arn("table/sluice/*"),
            arn("database/vpc"),
            arn("table/vpc/*"),
        ])
    );
    assert_eq!(
        glue["Action"],
        json!([
            "glue:GetDatabase",
            "glue:GetDatabases",
            "glue:CreateDatabase",
            "glue:GetTable",
            "glue:GetTables",
            "glue:CreateTable",
            "glue:UpdateTable",
            "glue:DeleteTable",
        ])
    );

    // Steady state: reads only (one GetDatabase per database), the same answer.
    let second = env.provider.ensure(&req).await.unwrap();
    let calls = env.calls.take();
    assert_eq!(mutating(&calls), Vec::<String>::new());
    assert_eq!(
        calls.iter().filter(|c| *c == "glue:GetDatabase").count(),
        2,
        "{calls:?}"
    );
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(second.aws, first.aws);

    // A database deleted behind the operator's back is created again, alone.
    env.glue.delete_database().name("vpc").send().await.unwrap();
    env.calls.take();
    let third = env.provider.ensure(&req).await.unwrap();
    assert_eq!(mutating(&env.calls.take()), ["glue:CreateDatabase"]);
    assert_eq!(third.changes, ["glue:CreateDatabase Glue database vpc"]);
}

#[tokio::test]
async fn an_existing_database_is_used_as_it_is_and_only_the_operators_are_deleted() {
    let env = env().await;
    // Someone's database, there before the cluster.
    env.glue
        .create_database()
        .database_input(
            aws_sdk_glue::types::DatabaseInput::builder()
                .name("shared")
                .parameters("owner", "analytics")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let c = cluster(
        &env,
        "lake",
        "glue-lake",
        json!({ "glueDatabases": ["sluice", "shared"], "warehouse": "s3://glue-tables/wh" }),
    );
    let first = env.provider.ensure(&request(&c)).await.unwrap();
    assert_eq!(
        mutating(&env.calls.take())
            .iter()
            .filter(|c| c.starts_with("glue:"))
            .collect::<Vec<_>>(),
        ["glue:CreateDatabase"]
    );
    let managed: Vec<(String, bool)> = first
        .aws
        .unwrap()
        .glue_databases
        .into_iter()
        .map(|d| (d.name, d.managed))
        .collect();
    assert_eq!(
        managed,
        [("shared".to_string(), false), ("sluice".to_string(), true)]
    );
    assert_eq!(
        database_parameters(&env, "shared").await.unwrap(),
        BTreeMap::from([("owner".to_string(), "analytics".to_string())])
    );
    // A warehouse outside the prefix gets its own S3 statements.
    let p = role_policy(&env, "lake").await;
    let sids = statement_ids(&p);
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
    assert_eq!(
        p["Statement"][2]["Resource"],
        "arn:aws:s3:::glue-tables/wh/*"
    );

    // deletionPolicy Retain: the bucket stays, so do the databases.
    let released = env.provider.release(&request(&c)).await.unwrap();
    assert!(
        !mutating(&env.calls.take())
            .iter()
            .any(|c| c.starts_with("glue:")),
        "{released:?}"
    );
    assert!(database_parameters(&env, "sluice").await.is_some());

    // deletionPolicy Delete: the operator's database goes with the bucket, the other
    // stays.
    let mut c = c;
    c.spec.storage.deletion_policy = sluice_operator::crd::DeletionPolicy::Delete;
    env.provider.ensure(&request(&c)).await.unwrap();
    env.calls.take();
    let released = env.provider.release(&request(&c)).await.unwrap();
    let calls = mutating(&env.calls.take());
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("glue:"))
            .collect::<Vec<_>>(),
        ["glue:DeleteDatabase"]
    );
    assert!(
        released
            .deleted
            .contains(&"Glue database sluice".to_string()),
        "{released:?}"
    );
    assert!(
        released
            .retained
            .iter()
            .any(|r| r.starts_with("Glue database shared")),
        "{released:?}"
    );
    assert!(database_parameters(&env, "sluice").await.is_none());
    assert!(database_parameters(&env, "shared").await.is_some());
}

#[tokio::test]
async fn a_database_holding_other_tables_is_not_deleted() {
    let env = env().await;
    let mut c = cluster(&env, "lake", "glue-keep", json!({}));
    c.spec.storage.deletion_policy = sluice_operator::crd::DeletionPolicy::Delete;
    let first = env.provider.ensure(&request(&c)).await.unwrap();
    // The default: the default table namespace's database.
    assert_eq!(first.aws.unwrap().glue_databases[0].name, "sluice");
    // Another cluster's table in it (its files elsewhere).
    env.glue
        .create_table()
        .database_name("sluice")
        .table_input(
            aws_sdk_glue::types::TableInput::builder()
                .name("other_dns")
                .parameters("table_type", "ICEBERG")
                .parameters(
                    "metadata_location",
                    "s3://other-lake/prod/tables/sluice/other_dns/metadata/00000.metadata.json",
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    env.calls.take();
    let released = env.provider.release(&request(&c)).await.unwrap();
    assert!(
        !mutating(&env.calls.take()).contains(&"glue:DeleteDatabase".to_string()),
        "{released:?}"
    );
    assert!(
        released
            .retained
            .iter()
            .any(|r| r.contains("Glue database sluice") && r.contains("other_dns")),
        "{released:?}"
    );
    assert!(database_parameters(&env, "sluice").await.is_some());
}
