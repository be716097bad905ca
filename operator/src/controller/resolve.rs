//! Out-of-cluster addressing (`--resolve-via-api`).
//!
//! In a cluster the operator reaches brokers by Service DNS names:
//! `<cluster>-bootstrap.<ns>.svc.<domain>` and `<pod>.<cluster>-brokers.<ns>.svc.<domain>`.
//! An operator run outside the cluster (a developer's machine, the e2e suite) cannot
//! resolve them. With the flag set, such a name is resolved through the API the way
//! cluster DNS answers it: a Service's name to the IP of a ready pod its selector picks,
//! `<host>.<svc>` to the IP of the pod with that hostname in that subdomain (the pods of
//! a StatefulSet). Anything else, or a name with no ready pod, is returned unchanged.
//!
//! Pods rather than EndpointSlices: EndpointSlices refuse loopback addresses, and the
//! e2e suite's pods have loopback IPs (their brokers run on this machine).

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client};
use tracing::debug;

/// The (host, service, namespace) of an in-cluster name, with `host` the pod's hostname
/// for per-pod names and `None` for a Service's own name.
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

fn ready_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if pod.metadata.deletion_timestamp.is_some() || !ready {
        return None;
    }
    status.pod_ip.clone()
}

async fn lookup(client: &Client, pod: Option<&str>, svc: &str, ns: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    if let Some(host) = pod {
        // StatefulSet pods: hostname = pod name, subdomain = the headless Service.
        let p = pods.get_opt(host).await.ok()??;
        let spec = p.spec.as_ref()?;
        let hostname = spec.hostname.as_deref().unwrap_or(host);
        if hostname != host || spec.subdomain.as_deref() != Some(svc) {
            return None;
        }
        return ready_ip(&p);
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let selector = services.get_opt(svc).await.ok()??.spec?.selector?;
    let selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    let mut ips: Vec<String> = list.items.iter().filter_map(ready_ip).collect();
    ips.sort();
    ips.into_iter().next()
}

/// `addr` (`host:port`) with an in-cluster Service name replaced by a pod's address.
pub async fn resolve(client: &Client, cluster_domain: &str, addr: &str) -> String {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return addr.to_string();
    };
    let Some((pod, svc, ns)) = parse_service_name(host, cluster_domain) else {
        return addr.to_string();
    };
    match lookup(client, pod, svc, ns).await {
        Some(ip) if ip.contains(':') => format!("[{ip}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => {
            debug!(%addr, "no ready pod behind the name");
            addr.to_string()
        }
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
        assert_eq!(
            parse_service_name("a.b.c.d.svc.cluster.local", "cluster.local"),
            None
        );
    }
}
