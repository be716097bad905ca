//! Length-prefixed framing without I/O: a 4-byte big-endian size, then that many bytes.
//! The caller owns the socket: it reads into [`FrameDecoder::unfilled`] and gets whole
//! frames back; [`encode_frame`] builds one frame to write.

use bytes::{Bytes, BytesMut};

use super::ProtocolError;

/// Bytes of the size prefix.
pub const SIZE_LEN: usize = 4;

/// The body length a size prefix announces. A negative size or one over `max_len` is
/// refused before any of the body is read, as Kafka does.
pub fn body_len(size: [u8; SIZE_LEN], max_len: usize) -> Result<usize, ProtocolError> {
    let len = i32::from_be_bytes(size);
    if len < 0 {
        return Err(ProtocolError::NegativeFrameSize(len));
    }
    let len = len as usize;
    if len > max_len {
        return Err(ProtocolError::FrameTooLarge { len, max: max_len });
    }
    Ok(len)
}

/// Builds one frame: `write` appends the body after a size placeholder, which is then
/// filled in with the body's length.
pub fn encode_frame<E>(
    capacity: usize,
    write: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    let mut buf = BytesMut::with_capacity(capacity);
    buf.extend_from_slice(&[0; SIZE_LEN]);
    write(&mut buf)?;
    let len = (buf.len() - SIZE_LEN) as i32;
    buf[..SIZE_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Cuts frames out of a byte stream. The caller reads into [`Self::unfilled`] and reports
/// how many bytes arrived with [`Self::filled`]. Each body gets its own buffer of exactly
/// its size, allocated once the size prefix has passed [`body_len`].
#[derive(Debug)]
pub struct FrameDecoder {
    max_len: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Size { buf: [u8; SIZE_LEN], filled: usize },
    Body { buf: BytesMut, filled: usize },
}

const NO_SIZE: State = State::Size {
    buf: [0; SIZE_LEN],
    filled: 0,
};

impl FrameDecoder {
    /// A decoder refusing frames over `max_len` bytes (size prefix excluded).
    pub fn new(max_len: usize) -> Self {
        FrameDecoder {
            max_len,
            state: NO_SIZE,
        }
    }

    /// Changes the size limit for frames not yet started (e.g. once a client logged in).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// Where the next bytes of the stream go: the rest of the size prefix, then the rest
    /// of the body. Never empty.
    pub fn unfilled(&mut self) -> &mut [u8] {
        match &mut self.state {
            State::Size { buf, filled } => &mut buf[*filled..],
            State::Body { buf, filled } => &mut buf[*filled..],
        }
    }

    /// Takes note of `n` bytes written at the start of [`Self::unfilled`]; returns the
    /// frame they complete, if any.
    pub fn filled(&mut self, n: usize) -> Result<Option<Bytes>, ProtocolError> {
        match &mut self.state {
            State::Size { buf, filled } => {
                *filled += n;
                if *filled < SIZE_LEN {
                    return Ok(None);
                }
                let len = body_len(*buf, self.max_len)?;
                if len == 0 {
                    self.state = NO_SIZE;
                    return Ok(Some(Bytes::new()));
                }
                self.state = State::Body {
                    buf: BytesMut::zeroed(len),
                    filled: 0,
                };
                Ok(None)
            }
            State::Body { buf, filled } => {
                *filled += n;
                if *filled < buf.len() {
                    return Ok(None);
                }
                let body = std::mem::take(buf).freeze();
                self.state = NO_SIZE;
                Ok(Some(body))
            }
        }
    }

    /// The stream ended. Between frames (or inside a size prefix) that is a clean close;
    /// inside a body the frame is truncated.
    pub fn closed(&self) -> Result<(), ProtocolError> {
        match self.state {
            State::Size { .. } => Ok(()),
            State::Body { .. } => Err(ProtocolError::TruncatedFrame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in chunks of at most `chunk` bytes, as a socket might deliver it,
    /// then ends the stream: the frames, or the first error.
    fn decode_all(data: &[u8], chunk: usize, max: usize) -> Result<Vec<Bytes>, ProtocolError> {
        let mut decoder = FrameDecoder::new(max);
        let mut frames = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let dst = decoder.unfilled();
            let n = dst.len().min(chunk).min(rest.len());
            dst[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            frames.extend(decoder.filled(n)?);
        }
        decoder.closed()?;
        Ok(frames)
    }

    #[test]
    fn reads_frames_in_any_chunking_and_then_clean_eof() {
        let data = [
            &5i32.to_be_bytes()[..],
            b"hello",
            &0i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            b"ok",
        ]
        .concat();
        for chunk in [1, 3, 4, 7, 100] {
            let frames = decode_all(&data, chunk, 100).unwrap();
            assert_eq!(frames, [&b"hello"[..], b"", b"ok"], "chunks of {chunk}");
        }
        assert!(decode_all(&[], 4, 100).unwrap().is_empty());
    }

    #[test]
    fn refuses_oversized_negative_and_truncated_frames() {
        let big = 1000i32.to_be_bytes();
        assert!(matches!(
            decode_all(&big, 4, 100),
            Err(ProtocolError::FrameTooLarge {
                len: 1000,
                max: 100
            })
        ));
        let neg = (-1i32).to_be_bytes();
        assert!(matches!(
            decode_all(&neg, 4, 100),
            Err(ProtocolError::NegativeFrameSize(-1))
        ));
        let short = [&5i32.to_be_bytes()[..], b"he"].concat();
        assert!(matches!(
            decode_all(&short, 4, 100),
            Err(ProtocolError::TruncatedFrame)
        ));
        // A stream ending inside the size prefix is a close between frames.
        assert!(decode_all(&[0, 0], 4, 100).unwrap().is_empty());
    }

    #[test]
    fn encoded_frames_decode_back() {
        let frame = encode_frame(8, |buf| {
            buf.extend_from_slice(b"body");
            Ok::<_, ProtocolError>(())
        })
        .unwrap();
        assert_eq!(&frame[..], b"\0\0\0\x04body");
        assert_eq!(decode_all(&frame, 64, 100).unwrap(), [&b"body"[..]]);
    }
}
