//! Confluent's wire framing of a record value: magic byte 0, the schema id as a 4-byte
//! big-endian integer, then the serialized payload.

/// The one magic byte Confluent's serializers write.
pub const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Why a value does not carry Confluent framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// Fewer than [`HEADER_LEN`] bytes.
    TooShort(usize),
    /// The first byte is not [`MAGIC`].
    BadMagic(u8),
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingError::TooShort(n) => write!(f, "{n} bytes, shorter than the 5-byte header"),
            FramingError::BadMagic(b) => write!(f, "magic byte is {b:#04x}, not 0x00"),
        }
    }
}

/// Splits a framed value into its schema id and payload.
pub fn split(value: &[u8]) -> Result<(i32, &[u8]), FramingError> {
    if value.len() < HEADER_LEN {
        return Err(FramingError::TooShort(value.len()));
    }
    if value[0] != MAGIC {
        return Err(FramingError::BadMagic(value[0]));
    }
    let id = i32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    Ok((id, &value[HEADER_LEN..]))
}

/// Frames `payload` with schema `id`, as a Confluent serializer would.
pub fn frame(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_split_round_trip() {
        let v = frame(0x0102_0304, b"xyz");
        assert_eq!(v, [0, 1, 2, 3, 4, b'x', b'y', b'z']);
        assert_eq!(split(&v), Ok((0x0102_0304, &b"xyz"[..])));
        assert_eq!(split(&frame(7, b"")), Ok((7, &b""[..])));
    }

    #[test]
    fn short_or_wrong_magic_is_refused() {
        assert_eq!(split(&[0, 0, 0]), Err(FramingError::TooShort(3)));
        assert_eq!(split(&[1, 0, 0, 0, 1]), Err(FramingError::BadMagic(1)));
    }
}
