//! Kafka framing: a big-endian i32 size, then that many bytes of request. Sizes are checked against the limit
//! before a byte of the body is read, so an oversized or negative size never allocates.

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds max_request_bytes = {max}")]
    TooLarge { size: i64, max: usize },
    #[error("frame size {0} is not a valid request size")]
    BadSize(i32),
    #[error("connection closed by the client")]
    Closed,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Smallest request: api key, api version, correlation id, client id length.
pub const REQUEST_HEADER_BYTES_MIN: i32 = 10;

/// Reads the next request frame. `Closed` means a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Closed)
        }
        Err(err) => return Err(err.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < REQUEST_HEADER_BYTES_MIN {
        return Err(FrameError::BadSize(size));
    }
    if size as usize > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    let mut body = BytesMut::zeroed(size as usize);
    reader.read_exact(&mut body).await?;
    Ok(body.freeze())
}

/// Starts a response frame: room for the size, then the correlation id (response header v0).
pub fn begin_response(correlation_id: i32, capacity: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(capacity + 8);
    out.put_i32(0);
    out.put_i32(correlation_id);
    out
}

/// Writes the size prefix once the whole frame is in `out`.
pub fn finish_response(mut out: BytesMut) -> Bytes {
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    out.freeze()
}
