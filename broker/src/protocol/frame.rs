//! Length-prefixed framing: a 4-byte big-endian size, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::ProtocolError;

/// Reads one frame. `Ok(None)` means the peer closed the connection between frames.
/// A frame over `max_len` is refused before its body is read, as Kafka does.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: usize,
) -> Result<Option<Bytes>, ProtocolError> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(ProtocolError::Io(e)),
    }
    let len = i32::from_be_bytes(len_buf);
    if len < 0 {
        return Err(ProtocolError::NegativeFrameSize(len));
    }
    let len = len as usize;
    if len > max_len {
        return Err(ProtocolError::FrameTooLarge { len, max: max_len });
    }
    let mut body = BytesMut::zeroed(len);
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ProtocolError::TruncatedFrame,
            _ => ProtocolError::Io(e),
        })?;
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_frame_and_then_clean_eof() {
        let data = [&5i32.to_be_bytes()[..], b"hello"].concat();
        let mut r = &data[..];
        assert_eq!(
            read_frame(&mut r, 100).await.unwrap().unwrap(),
            Bytes::from_static(b"hello")
        );
        assert!(read_frame(&mut r, 100).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_oversized_negative_and_truncated_frames() {
        let big = 1000i32.to_be_bytes();
        assert!(matches!(
            read_frame(&mut &big[..], 100).await,
            Err(ProtocolError::FrameTooLarge {
                len: 1000,
                max: 100
            })
        ));
        let neg = (-1i32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &neg[..], 100).await,
            Err(ProtocolError::NegativeFrameSize(-1))
        ));
        let short = [&5i32.to_be_bytes()[..], b"he"].concat();
        assert!(matches!(
            read_frame(&mut &short[..], 100).await,
            Err(ProtocolError::TruncatedFrame)
        ));
    }
}
