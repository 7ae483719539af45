//! Kafka framing: a big-endian i32 size, then that many bytes of request. Sizes are checked against the limit
//! before a byte of the body is read, so an oversized or negative size never allocates.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds max_request_bytes = {max}")]
    TooLarge { size: i64, max: usize },
    #[error("frame size {0} is not a valid request size")]
    BadSize(i32),
    #[error("connection closed by the client")]
    Closed,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Smallest request: api key, api version, correlation id, client id length.
pub const REQUEST_HEADER_BYTES_MIN: i32 = 10;

/// Reads request frames from one socket. A body goes from the socket straight into a fresh, unzeroed buffer of
/// its size: zeroing it first, only to have `recv` overwrite every byte, cost 15 % of the server's CPU at max
/// produce rate (perf, 2026-12-05). Only the bytes the kernel has written are ever exposed.
pub struct FrameReader<R> {
    /// Buffers the size prefixes and small requests; any bytes it holds come before the socket's.
    reader: BufReader<R>,
    /// The socket under `reader`. It must not buffer on its own (glommio's default `NonBuffered` stream does not),
    /// or bytes read through it would come before bytes still held there.
    fd: RawFd,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `fd` is the socket `reader` reads, open for as long as `reader` lives.
    pub fn new(reader: R, fd: RawFd, buffer_bytes: usize) -> Self {
        Self {
            reader: BufReader::with_capacity(buffer_bytes, reader),
            fd,
        }
    }

    /// Reads the next request frame. `Closed` means a clean end of stream between frames.
    pub async fn next_frame(&mut self, max: usize) -> Result<Bytes, FrameError> {
        let mut size = [0u8; 4];
        match self.reader.read_exact(&mut size).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
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
        let size = size as usize;
        let mut body = BytesMut::with_capacity(size);
        while body.len() < size {
            let wanted = size - body.len();
            let buffered = self.reader.buffer();
            if !buffered.is_empty() {
                let n = buffered.len().min(wanted);
                body.extend_from_slice(&buffered[..n]);
                Pin::new(&mut self.reader).consume(n);
                continue;
            }
            match recv_nonblocking(self.fd, &mut body.spare_capacity_mut()[..wanted]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                // SAFETY: `recv` initialized these `n` bytes of the spare capacity, right after `len`.
                Ok(n) => unsafe { body.set_len(body.len() + n) },
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // The socket is empty: wait for data the ordinary way, into `reader`'s buffer.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if self.reader.fill_buf().await?.is_empty() {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(body.freeze())
    }
}

/// One `recv(MSG_DONTWAIT)` into `buf`; `WouldBlock` when the socket holds nothing.
fn recv_nonblocking(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the kernel writes at most that many and never reads.
    let got = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(got as usize)
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::AsyncWriteExt;
    use glommio::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Runs `client` against a `FrameReader` on the accepted socket and returns what `read` made of it.
    fn serve<C, F, R, T>(client: C, read: R) -> T
    where
        C: FnOnce(TcpStream) -> F + Send + 'static,
        F: std::future::Future<Output = ()> + 'static,
        R: AsyncFnOnce(&mut FrameReader<TcpStream>) -> T + Send + 'static,
        T: Send + 'static,
    {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(0)
            .spawn(|| async move {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let writer = glommio::spawn_local(async move {
                    client(TcpStream::connect(addr).await.expect("connect")).await
                });
                let stream = listener.accept().await.expect("accept");
                let fd = stream.as_raw_fd();
                let mut reader = FrameReader::new(stream, fd, 64);
                // A hung read fails the test instead of hanging it.
                let got = glommio::timer::timeout(Duration::from_secs(30), async {
                    Ok(read(&mut reader).await)
                })
                .await
                .expect("frames read within 30 s");
                writer.await;
                got
            })
            .expect("executor")
            .join()
            .expect("executor thread")
    }

    /// Frames larger and smaller than the reader's buffer, written in uneven pieces with pauses (so the reader
    /// finds the socket empty mid-body), arrive whole, in order, byte for byte.
    #[test]
    fn frames_written_in_pieces_arrive_whole_and_in_order() {
        let bodies: Vec<Vec<u8>> = [10usize, 1_000, 300_000, 17, 2_000_000, 64, 65, 5_000]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|b| (b * 31 + i) as u8).collect())
            .collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        let got = serve(
            move |mut stream| async move {
                let mut at = 0;
                let mut piece = 1;
                while at < wire.len() {
                    let end = (at + piece).min(wire.len());
                    stream.write_all(&wire[at..end]).await.expect("write");
                    at = end;
                    piece = piece * 7 % 300_007 + 3;
                    glommio::timer::sleep(Duration::from_micros(100)).await;
                }
                stream.close().await.expect("close");
            },
            async |reader| {
                let mut got = Vec::new();
                loop {
                    match reader.next_frame(4 << 20).await {
                        Ok(body) => got.push(body.to_vec()),
                        Err(FrameError::Closed) => return got,
                        Err(err) => panic!("unexpected {err}"),
                    }
                }
            },
        );
        assert_eq!(got.len(), bodies.len());
        for (i, (got, want)) in got.iter().zip(&bodies).enumerate() {
            assert!(got == want, "frame {i} ({} bytes) differs", want.len());
        }
    }

    /// A stream that ends inside a body is a read error, not a short frame; bad sizes are refused before the body.
    #[test]
    fn a_cut_body_and_bad_sizes_are_errors() {
        type Expected = fn(&FrameError) -> bool;
        let cases: [(Vec<u8>, Expected); 3] = [
            (
                frame(&[7u8; 1000])[..600].to_vec(),
                |e| matches!(e, FrameError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof),
            ),
            (frame(&[1u8; 5]), |e| matches!(e, FrameError::BadSize(5))),
            (frame(&[1u8; 2000]), |e| {
                matches!(
                    e,
                    FrameError::TooLarge {
                        size: 2000,
                        max: 1000
                    }
                )
            }),
        ];
        for (wire, expected) in cases {
            let err = serve(
                move |mut stream| async move {
                    stream.write_all(&wire).await.expect("write");
                    stream.close().await.expect("close");
                },
                async |reader| reader.next_frame(1000).await.expect_err("an error"),
            );
            assert!(expected(&err), "unexpected {err}");
        }
    }
}
