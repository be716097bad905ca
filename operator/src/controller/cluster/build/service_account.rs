use k8s_openapi::api::core::v1::ServiceAccount;

use super::ClusterModel;

/// The brokers' identity. Brokers never call the Kubernetes API, so the account gets no
/// Role and its token is not mounted (`automountServiceAccountToken: false`).
pub fn service_account(model: &ClusterModel<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: model.owned_meta(model.broker_name()),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
