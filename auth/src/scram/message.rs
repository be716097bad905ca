//! The grammar shared by SCRAM messages (RFC 5802 §7): `k=value` attributes separated by
//! commas, `saslname` escaping, printable nonces. Each check returns an error, never panics.

use crate::error::SaslError;
use crate::{MAX_MESSAGE_LEN, MAX_USERNAME_LEN};

/// A whole message as text: bounded, then UTF-8.
pub(crate) fn text(message: &[u8]) -> Result<&str, SaslError> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(SaslError::TooLarge);
    }
    std::str::from_utf8(message).map_err(|_| malformed("message is not UTF-8"))
}

pub(crate) fn malformed(what: &str) -> SaslError {
    SaslError::Malformed(what.to_owned())
}

/// The value of attribute `key` in `part` (`key=value`), or an error naming the key.
pub(crate) fn attribute(part: Option<&str>, key: char) -> Result<&str, SaslError> {
    part.and_then(|p| p.strip_prefix(key))
        .and_then(|p| p.strip_prefix('='))
        .ok_or_else(|| SaslError::Malformed(format!("expected attribute {key}=")))
}

/// An extension `name=value`: the name is letters (Kafka's are words, e.g. `tokenauth`).
pub(crate) fn extension(part: &str) -> Result<(&str, &str), SaslError> {
    match part.split_once('=') {
        Some((name, value))
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            Ok((name, value))
        }
        _ => Err(malformed("extension is not name=value")),
    }
}

/// A nonce: printable ASCII except `,` (RFC 5802 `printable`), at least one character.
pub(crate) fn nonce(value: &str) -> Result<&str, SaslError> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        Ok(value)
    } else {
        Err(malformed("nonce is empty or not printable ASCII"))
    }
}

/// Decodes a `saslname`: `=2C` is `,`, `=3D` is `=`, any other `=` and NUL are errors.
pub(crate) fn decode_saslname(value: &str) -> Result<String, SaslError> {
    if value.is_empty() {
        return Err(malformed("empty name"));
    }
    let mut out = String::with_capacity(value.len().min(MAX_USERNAME_LEN));
    let mut rest = value;
    while let Some(at) = rest.find(['=', '\0']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(r) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = r;
        } else if let Some(r) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = r;
        } else {
            return Err(malformed("name has a bad = escape or a NUL"));
        }
        if out.len() > MAX_USERNAME_LEN {
            return Err(SaslError::TooLarge);
        }
    }
    out.push_str(rest);
    if out.len() > MAX_USERNAME_LEN {
        return Err(SaslError::TooLarge);
    }
    Ok(out)
}

/// Encodes a name as a `saslname`.
pub(crate) fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(decode_saslname("=3D2C").unwrap(), "=2C");
        assert_eq!(decode_saslname("usér").unwrap(), "usér");
        for bad in ["", "=", "a=", "a=2", "a=2c", "a=3d", "a=41", "a\0b", "=é"] {
            assert!(
                matches!(decode_saslname(bad), Err(SaslError::Malformed(_))),
                "{bad:?}"
            );
        }
        for name in ["a,b=c", "=2C", ",,==", "plain"] {
            assert_eq!(decode_saslname(&encode_saslname(name)).unwrap(), name);
        }
        let long = "=2C".repeat(MAX_USERNAME_LEN + 1);
        assert_eq!(decode_saslname(&long), Err(SaslError::TooLarge));
        assert!(decode_saslname(&"=2C".repeat(MAX_USERNAME_LEN)).is_ok());
    }

    #[test]
    fn nonces_and_attributes() {
        assert!(nonce("abc%$!~").is_ok());
        for bad in ["", "a b", "a\tb", "é", "a\u{7f}"] {
            assert!(nonce(bad).is_err(), "{bad:?}");
        }
        assert_eq!(attribute(Some("r=x=y"), 'r').unwrap(), "x=y");
        assert!(attribute(Some("r"), 'r').is_err());
        assert!(attribute(Some("s=x"), 'r').is_err());
        assert!(attribute(None, 'r').is_err());
        assert_eq!(extension("tokenauth=true").unwrap(), ("tokenauth", "true"));
        for bad in ["", "=x", "x", "a1=b", "é=b"] {
            assert!(extension(bad).is_err(), "{bad:?}");
        }
    }
}
