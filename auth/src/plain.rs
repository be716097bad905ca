//! SASL/PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, checked the way Kafka's
//! PlainSaslServer checks it. Verifying the password is the caller's job (for instance
//! against a SCRAM credential with `ScramCredential::verify_password`).

use std::fmt;

use crate::error::SaslError;
use crate::{MAX_MESSAGE_LEN, MAX_USERNAME_LEN};

/// The three fields of a PLAIN message.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Empty, or equal to `username` (Kafka refuses impersonation).
    pub authzid: String,
    pub username: String,
    pub password: String,
}

/// Leaves the password out, so credentials can be logged by accident without harm.
impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses a client's PLAIN message.
pub fn parse(message: &[u8]) -> Result<PlainCredentials, SaslError> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(SaslError::TooLarge);
    }
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(username), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN needs exactly three NUL-separated fields".into(),
        ));
    };
    let text = |field: &[u8], what: &str| {
        std::str::from_utf8(field)
            .map(str::to_owned)
            .map_err(|_| SaslError::Malformed(format!("PLAIN {what} is not UTF-8")))
    };
    let (authzid, username, password) = (
        text(authzid, "authorization id")?,
        text(username, "username")?,
        text(password, "password")?,
    );
    if username.is_empty() {
        return Err(SaslError::Malformed("PLAIN username is empty".into()));
    }
    if password.is_empty() {
        return Err(SaslError::Malformed("PLAIN password is empty".into()));
    }
    if username.len() > MAX_USERNAME_LEN {
        return Err(SaslError::TooLarge);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(SaslError::Unsupported(
            "an authorization id different from the username".into(),
        ));
    }
    Ok(PlainCredentials {
        authzid,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_fields() {
        let c = parse(b"\0alice\0secret").unwrap();
        assert_eq!((c.authzid.as_str(), c.username.as_str()), ("", "alice"));
        assert_eq!(c.password, "secret");
        assert!(
            parse(b"alice\0alice\0p\0ss").is_err(),
            "a NUL inside the password makes four fields"
        );
        let c = parse("bob\0bob\0pässword".as_bytes()).unwrap();
        assert_eq!(
            (c.authzid.as_str(), c.password.as_str()),
            ("bob", "pässword")
        );
    }

    #[test]
    fn refuses_wrong_shapes() {
        for bad in [
            &b""[..],
            b"\0",
            b"alice",
            b"\0alice",
            b"\0alice\0pw\0",
            b"\0\0pw",
            b"\0alice\0",
            b"\0al\xffice\0pw",
            b"\0alice\0p\xc3",
            b"\xff\0alice\0pw",
        ] {
            assert!(
                matches!(parse(bad), Err(SaslError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_impersonation() {
        assert!(matches!(
            parse(b"admin\0alice\0pw"),
            Err(SaslError::Unsupported(_))
        ));
    }

    #[test]
    fn bounds_sizes() {
        let mut big = b"\0alice\0".to_vec();
        big.resize(MAX_MESSAGE_LEN + 1, b'x');
        assert_eq!(parse(&big), Err(SaslError::TooLarge));
        let mut max = b"\0alice\0".to_vec();
        max.resize(MAX_MESSAGE_LEN, b'x');
        assert!(parse(&max).is_ok());
        let long = format!("\0{}\0pw", "u".repeat(MAX_USERNAME_LEN + 1));
        assert_eq!(parse(long.as_bytes()), Err(SaslError::TooLarge));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = parse(b"\0alice\0hunter2").unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
