use k8s_openapi::api::core::v1::ServiceAccount;

use super::ClusterModel;

/// The brokers' identity. Brokers never call the Kubernetes API, so the account gets no
/// Role and its token is not mounted (`automountServiceAccountToken: false`). With the
/// `aws` provider it is annotated with the brokers' IAM role (IRSA: EKS projects a web
/// identity token for AWS STS, separate from the Kubernetes API token).
pub fn service_account(model: &ClusterModel<'_>) -> ServiceAccount {
    let mut metadata = model.owned_meta(model.broker_name());
    if !model.service_account_annotations.is_empty() {
        metadata.annotations = Some(model.service_account_annotations.clone());
    }
    ServiceAccount {
        metadata,
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
