use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ClusterModel;

/// At most one broker away at a time for voluntary disruptions (node drains): brokers
/// hold no data, but each one leaving moves its partitions' leadership.
pub fn pod_disruption_budget(model: &ClusterModel<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: model.owned_meta(model.broker_name()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(model.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
