//! The reconcile wrapper both controllers share: one reconcile inside kube's finalizer
//! helper, timed and counted, the backoff reset after a success; the error policy that
//! logs, counts and backs off a failed one. A kind plugs in through [`Reconciled`].

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::{object_key, Context};
use crate::{Error, Result};

/// A kind the operator reconciles: its controller's name (metrics, logs), its finalizer
/// and what to do on a finalizer event. Everything around that is [`reconcile`]'s.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name in metrics and logs.
    const CONTROLLER: &'static str;
    /// Holds a deleted object until its cleanup has succeeded.
    const FINALIZER: &'static str;

    /// `Apply`: bring what the object describes in line with its spec and write its
    /// status. `Cleanup`: the object is deleted; runs before its finalizer is removed.
    fn on_event<'a>(
        event: Event<Self>,
        api: &'a Api<Self>,
        namespace: &'a str,
        ctx: &'a Context,
    ) -> impl Future<Output = Result<Action>> + Send + 'a;
}

/// One reconcile of one object.
pub async fn reconcile<K: Reconciled>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let key = object_key(obj.as_ref());
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::MissingField(format!("{} {key} has no namespace", K::kind(&()))))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, K::FINALIZER, obj, |event| {
        K::on_event(event, &api, &namespace, &ctx)
    })
    .await
    .map_err(|e| Error::Finalizer {
        name: key.clone(),
        source: Box::new(e),
    });
    ctx.metrics.reconciled(K::CONTROLLER, start.elapsed());
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// The requeue after a failed reconcile: log, count, back off.
pub fn error_policy<K: Reconciled>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(obj.as_ref());
    let delay = ctx.backoff(&key);
    ctx.metrics.failed(K::CONTROLLER, error.metric_label());
    warn!(controller = K::CONTROLLER, object = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Logs what the controller's stream reports as failed (the error policy has counted
/// reconcile failures already; these include the watches').
pub async fn log_outcome<K: Reconciled, T, E: Display>(outcome: std::result::Result<T, E>) {
    if let Err(e) = outcome {
        warn!(error = %e, "{} controller", K::CONTROLLER);
    }
}
