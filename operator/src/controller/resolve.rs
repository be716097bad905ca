//! Out-of-cluster addressing (`--resolve-via-endpoint-slices`).
//!
//! In a cluster the operator reaches brokers by Service DNS names:
//! `<cluster>-bootstrap.<ns>.svc.<domain>` and `<pod>.<cluster>-brokers.<ns>.svc.<domain>`.
//! An operator run outside the cluster (a developer's machine, the e2e harness) cannot
//! resolve them. With the flag set, such a name is resolved the way cluster DNS does it:
//! through the Service's EndpointSlices (`kubernetes.io/service-name=<svc>`), to the
//! address of a ready endpoint — for `<host>.<svc>…`, the endpoint whose `hostname` is
//! `<host>`. Anything else, or a name with no ready endpoint, is returned unchanged.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use tracing::debug;

/// The (host, service, namespace) of an in-cluster name `host:port`, with `host` the
/// endpoint's hostname for per-pod names and `None` for a Service's own name.
pub fn parse_service_name<'a>(
    host: &'a str,
    cluster_domain: &str,
) -> Option<(Option<&'a str>, &'a str, &'a str)> {
    let suffix = format!(".svc.{cluster_domain}");
    let stem = host.strip_suffix(suffix.as_str())?;
    let parts: Vec<&str> = stem.split('.').collect();
    match parts.as_slice() {
        [svc, ns] => Some((None, svc, ns)),
        [pod, svc, ns] => Some((Some(pod), svc, ns)),
        _ => None,
    }
}

/// `addr` (`host:port`) with an in-cluster Service name replaced by an endpoint address.
pub async fn resolve(client: &Client, cluster_domain: &str, addr: &str) -> String {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return addr.to_string();
    };
    let Some((pod, svc, ns)) = parse_service_name(host, cluster_domain) else {
        return addr.to_string();
    };
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let list = match slices.list(&params).await {
        Ok(list) => list,
        Err(e) => {
            debug!(%addr, error = %e, "listing EndpointSlices");
            return addr.to_string();
        }
    };
    let mut found = list
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| pod.is_none_or(|p| e.hostname.as_deref() == Some(p)))
        .filter(|e| {
            e.conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true)
        })
        .filter_map(|e| e.addresses.first().cloned())
        .collect::<Vec<_>>();
    found.sort();
    match found.first() {
        Some(ip) if ip.contains(':') => format!("[{ip}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_service_name;

    #[test]
    fn parses_in_cluster_names() {
        assert_eq!(
            parse_service_name("lake-bootstrap.security.svc.cluster.local", "cluster.local"),
            Some((None, "lake-bootstrap", "security"))
        );
        assert_eq!(
            parse_service_name(
                "lake-broker-2.lake-brokers.security.svc.cluster.local",
                "cluster.local"
            ),
            Some((Some("lake-broker-2"), "lake-brokers", "security"))
        );
        assert_eq!(parse_service_name("10.0.0.1", "cluster.local"), None);
        assert_eq!(parse_service_name("a.b.c.d.svc.cluster.local", "cluster.local"), None);
    }
}
