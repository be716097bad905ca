//! The SCRAM primitives: H, HMAC and Hi (PBKDF2 with HMAC, one block), for either hash.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::Mechanism;

/// H(data).
pub(crate) fn hash(mechanism: Mechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        Mechanism::Sha256 => Sha256::digest(data).to_vec(),
        Mechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// HMAC(key, data).
pub(crate) fn hmac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    match mechanism {
        Mechanism::Sha256 => hmac_with::<Hmac<Sha256>>(key, data),
        Mechanism::Sha512 => hmac_with::<Hmac<Sha512>>(key, data),
    }
}

/// Hi(password, salt, iterations): PBKDF2's first block, as long as the hash output.
/// Zero iterations count as one (PBKDF2 has no zero); callers bound the count.
pub(crate) fn hi(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    match mechanism {
        Mechanism::Sha256 => hi_with::<Hmac<Sha256>>(password, salt, iterations),
        Mechanism::Sha512 => hi_with::<Hmac<Sha512>>(password, salt, iterations),
    }
}

/// ClientKey = HMAC(SaltedPassword, "Client Key").
pub(crate) fn client_key(mechanism: Mechanism, salted: &[u8]) -> Vec<u8> {
    hmac(mechanism, salted, b"Client Key")
}

/// ServerKey = HMAC(SaltedPassword, "Server Key").
pub(crate) fn server_key(mechanism: Mechanism, salted: &[u8]) -> Vec<u8> {
    hmac(mechanism, salted, b"Server Key")
}

/// a XOR b, over the shorter of the two (callers check the lengths first).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

fn keyed<M: Mac + KeyInit>(key: &[u8]) -> M {
    <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = keyed::<M>(key);
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hi_with<M: Mac + KeyInit + Clone>(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let key = keyed::<M>(password);
    let mut mac = key.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = mac.finalize().into_bytes();
    let mut out = u.clone();
    for _ in 1..iterations {
        let mut mac = key.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes();
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1); its first 32 bytes are Hi's block.
    #[test]
    fn hi_is_pbkdf2_first_block() {
        assert_eq!(
            hex(&hi(Mechanism::Sha256, b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        assert_eq!(
            hi(Mechanism::Sha512, b"p", b"s", 0),
            hi(Mechanism::Sha512, b"p", b"s", 1)
        );
        assert_eq!(hi(Mechanism::Sha512, b"p", b"s", 2).len(), 64);
    }
}
