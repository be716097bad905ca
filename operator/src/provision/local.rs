//! `provider: local`: nothing outside Kubernetes. The bucket is an existing URL (its
//! owner made it) or a PersistentVolumeClaim, which the cluster reconciler builds and the
//! finalizer deletes like its other objects.

use futures::future::BoxFuture;

use super::{CloudProvider, CloudRequest, ProvisionError, Provisioned, Released};

/// Makes no call and returns nothing to add.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalProvider;

impl CloudProvider for LocalProvider {
    fn ensure<'a>(
        &'a self,
        _req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Provisioned, ProvisionError>> {
        Box::pin(async { Ok(Provisioned::default()) })
    }

    fn release<'a>(
        &'a self,
        _req: &'a CloudRequest,
    ) -> BoxFuture<'a, Result<Released, ProvisionError>> {
        Box::pin(async { Ok(Released::default()) })
    }
}
