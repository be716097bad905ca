use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretEnvSource, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::security::security_volumes;
use super::{
    stable_hash, ClusterModel, BROKER_CONTAINER, BUCKET_MOUNT_PATH, CONFIG_HASH_ANNOTATION,
    LAKE_SECRET_FILE, LAKE_SECRET_MOUNT_PATH, POD_INDEX_LABEL,
};

/// Brokers run as this non-root user; the bucket volume is group-owned by it.
const BROKER_UID: i64 = 65532;

/// The broker workload: a StatefulSet, for stable ordinals (the node id) and stable DNS
/// names (the advertised address) through the headless Service. Pods start in parallel:
/// brokers share nothing but the bucket, so no start order is needed.
pub fn stateful_set(model: &ClusterModel<'_>, config_map: &ConfigMap) -> StatefulSet {
    let spec = &model.cluster.spec;
    let config_hash = stable_hash(config_map.data.as_ref().unwrap_or(&BTreeMap::new()));

    let mut env_from = vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: model.config_map_name(),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }];
    if let Some(secret) = &spec.storage.credentials_secret {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        });
    }

    let field_env = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    // The named listeners of a secured cluster, or the one PLAINTEXT listener.
    let advertised = match model.advertised_listeners_template() {
        Some(listeners) => ("SLUICE_ADVERTISED_LISTENERS", listeners),
        None => ("SLUICE_ADVERTISE", model.advertise_template()),
    };
    let env = vec![
        field_env("POD_NAME", "metadata.name"),
        // The pod's ordinal is the broker's node id: stable across restarts of that pod.
        field_env(
            "SLUICE_NODE_ID",
            &format!("metadata.labels['{POD_INDEX_LABEL}']"),
        ),
        EnvVar {
            name: advertised.0.into(),
            value: Some(advertised.1),
            ..EnvVar::default()
        },
    ];

    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };

    let mut volume_mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    if spec.storage.bucket.is_some() {
        volume_mounts.push(VolumeMount {
            name: "bucket".into(),
            mount_path: BUCKET_MOUNT_PATH.into(),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "bucket".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: model.bucket_claim_name(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
    }

    if let Some(secret) = spec
        .lake
        .as_ref()
        .and_then(|l| l.catalog.properties_secret_ref.as_ref())
    {
        volume_mounts.push(VolumeMount {
            name: "lake-catalog".into(),
            mount_path: LAKE_SECRET_MOUNT_PATH.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "lake-catalog".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: secret.key.clone(),
                    path: LAKE_SECRET_FILE.into(),
                    mode: None,
                }]),
                // Readable by the broker's group (fsGroup) only.
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Volume::default()
        });
    }

    for (volume, mount) in security_volumes(model) {
        volumes.push(volume);
        volume_mounts.push(mount);
    }

    let mut ports = vec![
        ContainerPort {
            name: Some("kafka".into()),
            container_port: model.kafka_port(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some("metrics".into()),
            container_port: model.metrics_port(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
    ];
    if model.secured() {
        ports.push(ContainerPort {
            name: Some("control".into()),
            container_port: model.control_port(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        });
    }
    let container = Container {
        name: BROKER_CONTAINER.into(),
        image: Some(model.image()),
        env: Some(env),
        env_from: Some(env_from),
        ports: Some(ports),
        // Ready once the broker recovered its state from the bucket and serves clients.
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };

    let mut template_labels = model.labels();
    template_labels.extend(model.selector_labels());
    StatefulSet {
        metadata: model.owned_meta(model.broker_name()),
        spec: Some(StatefulSetSpec {
            replicas: Some(model.replicas),
            service_name: Some(model.headless_name()),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(model.selector_labels()),
                ..LabelSelector::default()
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_string(),
                        config_hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(model.broker_name()),
                    automount_service_account_token: Some(false),
                    // SIGTERM makes a broker flush and checkpoint before it exits.
                    termination_grace_period_seconds: Some(60),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(BROKER_UID),
                        run_as_group: Some(BROKER_UID),
                        fs_group: Some(BROKER_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}
