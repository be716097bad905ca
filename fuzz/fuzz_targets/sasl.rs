//! Arbitrary bytes through the broker's authentication parsers: a SASL/PLAIN message, a
//! SCRAM exchange (client-first, then client-final, for both mechanisms and for a known and
//! an unknown user) and `ssl.principal.mapping.rules` with a distinguished name. These read
//! bytes from unauthenticated clients, so any panic is a finding.
//!
//! Layout: the SCRAM client-final is what follows the first `\n` (`r=*` in it becomes the
//! exchange's real nonce, so the proof check is reachable); the mapping rules are what
//! precedes the first NUL, the distinguished name what follows it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_auth::{
    plain, Mechanism, PrincipalMapper, ScramCredential, ScramServer, MAX_MESSAGE_LEN,
};

/// Stored credentials of the user "user" (password "pencil"), derived once: Hi is slow.
fn credential(mechanism: Mechanism) -> ScramCredential {
    static CREDENTIALS: OnceLock<Vec<ScramCredential>> = OnceLock::new();
    let all = CREDENTIALS.get_or_init(|| {
        Mechanism::ALL
            .into_iter()
            .map(|m| ScramCredential::from_password(m, "pencil", b"fuzz salt", 4096))
            .collect()
    });
    all[usize::from(mechanism == Mechanism::Sha512)].clone()
}

fn lookup(mechanism: Mechanism) -> impl FnOnce(&str) -> Option<ScramCredential> {
    move |name| (name == "user").then(|| credential(mechanism))
}

fn scram(mechanism: Mechanism, client_first: &[u8], client_final: &[u8]) {
    let Ok((server, server_first)) = ScramServer::start(mechanism, client_first, lookup(mechanism))
    else {
        return;
    };
    assert!(server_first.starts_with(b"r=") && server_first.len() <= 2 * MAX_MESSAGE_LEN);
    let nonce = server_first
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default();
    let client_final = splice(client_final, b"r=*", nonce);
    if let Ok((user, server_final)) = server.finish(&client_final) {
        assert_eq!(user, "user");
        assert!(server_final.starts_with(b"v="));
    }
}

/// `haystack` with the first `needle` replaced.
fn splice(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match haystack.windows(needle.len()).position(|w| w == needle) {
        Some(at) => [&haystack[..at], with, &haystack[at + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = plain::parse(data) {
        assert!(!c.username.is_empty() && !c.password.is_empty());
    }

    let (client_first, client_final) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    for mechanism in Mechanism::ALL {
        scram(mechanism, client_first, client_final);
    }

    let (rules, dn) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    if let (Ok(rules), Ok(dn)) = (std::str::from_utf8(rules), std::str::from_utf8(dn)) {
        if let Ok(mapper) = PrincipalMapper::parse(rules) {
            let _ = mapper.map(dn);
            // Display gives back a setting that parses.
            assert!(PrincipalMapper::parse(&mapper.to_string()).is_ok());
        }
    }
});
