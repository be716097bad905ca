use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ClusterModel;

/// The provisioned bucket of the `local` provider: one claim every broker mounts.
///
/// It has no owner reference on purpose: garbage collection would delete it with the
/// cluster. The cluster's finalizer deletes it only under `deletionPolicy: Delete`.
pub fn bucket_claim(model: &ClusterModel<'_>) -> Option<PersistentVolumeClaim> {
    let bucket = model.cluster.spec.storage.bucket.as_ref()?;
    Some(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(model.bucket_claim_name()),
            namespace: Some(model.namespace.clone()),
            labels: Some(model.labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![bucket.access_mode.as_str().to_string()]),
            storage_class_name: bucket.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    bucket.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}
