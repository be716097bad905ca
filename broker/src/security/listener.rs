//! Named listeners as Kafka configures them: `listeners`, `advertised.listeners` and
//! `listener.security.protocol.map`, parsed and checked together.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use super::SecurityProtocol;

/// One listener to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    /// Host and port for clients; None: the bound address.
    pub advertised: Option<(String, u16)>,
}

/// Parses the three settings (each a list of entries). Every listener needs a known
/// protocol; names and ports are unique; advertised names must be listeners.
pub fn parse(
    listeners: &[String],
    advertised: &[String],
    protocol_map: &[String],
) -> Result<Vec<ListenerSpec>, String> {
    let mut protocols = BTreeMap::new();
    for entry in protocol_map.iter().filter(|e| !e.trim().is_empty()) {
        let (name, protocol) = entry
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("listener protocol {entry:?} is not NAME:PROTOCOL"))?;
        protocols.insert(
            name.to_ascii_uppercase(),
            protocol.parse::<SecurityProtocol>()?,
        );
    }
    let mut specs: Vec<ListenerSpec> = Vec::new();
    for entry in listeners.iter().filter(|e| !e.trim().is_empty()) {
        let (name, host, port) = split(entry)?;
        let protocol = match protocols.get(&name) {
            Some(p) => *p,
            None => name.parse().map_err(|_| {
                format!("listener {name} has no protocol: add {name}:PROTOCOL to the listener security protocol map")
            })?,
        };
        let host = if host.is_empty() {
            "0.0.0.0"
        } else {
            host.as_str()
        };
        let bind = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("listener {entry:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("listener {entry:?}: {host} has no address"))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(format!("listener {name} is given twice"));
        }
        if port != 0 && specs.iter().any(|s| s.bind.port() == port) {
            return Err(format!("two listeners use port {port}"));
        }
        specs.push(ListenerSpec {
            name,
            protocol,
            bind,
            advertised: None,
        });
    }
    for entry in advertised.iter().filter(|e| !e.trim().is_empty()) {
        let (name, host, port) = split(entry)?;
        let spec = specs
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("advertised listener {name} is not a listener"))?;
        if host.is_empty() {
            return Err(format!("advertised listener {entry:?} needs a host"));
        }
        spec.advertised = Some((host, port));
    }
    Ok(specs)
}

/// `NAME://HOST:PORT` (HOST may be empty or a bracketed IPv6 address).
fn split(entry: &str) -> Result<(String, String, u16), String> {
    let bad = || format!("listener {entry:?} is not NAME://HOST:PORT");
    let (name, rest) = entry.trim().split_once("://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok((name.to_ascii_uppercase(), host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kafka_style_listeners() {
        let specs = parse(
            &v(&[
                "INTERNAL://127.0.0.1:9092",
                "EXTERNAL://:9093",
                "SSL://[::1]:9094",
            ]),
            &v(&["EXTERNAL://kafka.example.com:443"]),
            &v(&["INTERNAL:SASL_PLAINTEXT", "EXTERNAL:SASL_SSL"]),
        )
        .unwrap();
        assert_eq!(specs[0].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(specs[1].bind, "0.0.0.0:9093".parse().unwrap());
        assert_eq!(specs[1].advertised, Some(("kafka.example.com".into(), 443)));
        assert_eq!(specs[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(specs[2].bind, "[::1]:9094".parse().unwrap());
    }

    #[test]
    fn refused_settings() {
        let p = |l: &[&str], a: &[&str], m: &[&str]| parse(&v(l), &v(a), &v(m)).unwrap_err();
        assert!(p(&["INTERNAL://:9092"], &[], &[]).contains("no protocol"));
        assert!(p(&["PLAINTEXT://:9092", "SSL://:9092"], &[], &[]).contains("port 9092"));
        assert!(p(&["PLAINTEXT://:9092"], &["SSL://h:1"], &[]).contains("not a listener"));
        assert!(p(&["PLAINTEXT:9092"], &[], &[]).contains("NAME://HOST:PORT"));
        assert!(p(&["X://:1"], &[], &["X:TLS"]).contains("not a security protocol"));
    }
}
