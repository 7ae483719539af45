//! One client connection: a reader that decodes requests in arrival order and starts them, and a writer that sends
//! their responses back in the same order. The queue between them is bounded by
//! `inflight_requests_per_connection_max`: a client that pipelines deeper waits for answers (backpressure).
//!
//! A response in several pieces (a Fetch answer that refers to its record sets, see `response.rs`) goes out in one
//! `sendmsg` of all its pieces while the socket has room; once it is full, glommio's own write waits for room.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;

use crate::api;
use crate::context::ShardContext;
use crate::frame::{FrameError, FrameReader};
use crate::response::ResponseFrame;

/// Bytes read from the socket at a time; most requests arrive in one read.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Pieces handed to one `sendmsg` at most (well below the kernel's IOV_MAX of 1024).
const SEND_PIECES_MAX: usize = 64;

type InFlight = JoinHandle<Option<ResponseFrame>>;

pub async fn serve(ctx: Rc<ShardContext>, stream: TcpStream, peer: SocketAddr) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
    }
    let fd = stream.as_raw_fd();
    let (reader, writer) = futures_lite::io::split(stream);
    let (tx, rx) = local_channel::new_bounded(ctx.config.inflight_requests_per_connection_max);
    let writer = glommio::spawn_local(write_responses(rx, writer, fd, peer));
    read_requests(
        &ctx,
        FrameReader::new(reader, fd, READ_BUFFER_BYTES),
        tx,
        peer,
    )
    .await;
    writer.await;
}

async fn read_requests<R: AsyncRead + Unpin>(
    ctx: &Rc<ShardContext>,
    mut reader: FrameReader<R>,
    tx: LocalSender<InFlight>,
    peer: SocketAddr,
) {
    loop {
        let frame = match reader.next_frame(ctx.config.max_request_bytes).await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return,
            Err(err @ (FrameError::TooLarge { .. } | FrameError::BadSize(_))) => {
                tracing::warn!(%peer, %err, "closing connection");
                ctx.metrics
                    .connections_closed_on_error_total
                    .fetch_add(1, Relaxed);
                return;
            }
            Err(err) => {
                tracing::debug!(%peer, %err, "connection read failed");
                return;
            }
        };
        // Taken here, in arrival order, so a waiting request is never overtaken by a later one from the same
        // connection (the semaphore itself does not queue waiters fairly).
        let bytes = frame.len().min(ctx.config.inflight_request_bytes_max) as u64;
        let Ok(permit) = ctx.request_bytes_budget.acquire_static_permit(bytes).await else {
            return; // the budget is closed only when the shard stops
        };
        let started = Instant::now();
        let (api, pending) = match api::dispatch(ctx, frame) {
            Ok(dispatched) => dispatched,
            Err(err) => {
                tracing::warn!(%peer, %err, "closing connection");
                ctx.metrics
                    .connections_closed_on_error_total
                    .fetch_add(1, Relaxed);
                return;
            }
        };
        let metrics = ctx.metrics.clone();
        metrics.requests_in_flight.fetch_add(1, Relaxed);
        // Dropping the JoinHandle would not cancel the task, and the writer awaits it, so no response is lost.
        let task = glommio::spawn_local(async move {
            let response = pending.await;
            drop(permit);
            metrics.request_done(api, started.elapsed());
            metrics.requests_in_flight.fetch_sub(1, Relaxed);
            response
        })
        .detach();
        if tx.send(task).await.is_err() {
            return; // the writer stopped: the socket is gone
        }
    }
}

/// `fd` is the socket under `writer`; it stays open as long as `writer` lives.
async fn write_responses<W: AsyncWrite + Unpin>(
    rx: LocalReceiver<InFlight>,
    mut writer: W,
    fd: RawFd,
    peer: SocketAddr,
) {
    while let Some(task) = rx.recv().await {
        let Some(Some(frame)) = task.await else {
            continue;
        };
        let sent = match &frame {
            ResponseFrame::Whole(bytes) => writer.write_all(bytes).await,
            ResponseFrame::Pieces(pieces) => send_pieces(&mut writer, fd, pieces).await,
        };
        if let Err(err) = sent {
            tracing::debug!(%peer, %err, "connection write failed");
            return;
        }
    }
    let _ = writer.close().await;
}

/// Sends `pieces` back to back: as many as the socket takes per non-blocking `sendmsg`; when it takes none, the
/// current piece goes through `writer`, which waits for room, and the rest is tried again the same way.
async fn send_pieces<W: AsyncWrite + Unpin>(
    writer: &mut W,
    fd: RawFd,
    pieces: &[bytes::Bytes],
) -> io::Result<()> {
    let (mut piece, mut at) = (0, 0); // the first piece not fully sent, and how much of it is
    while piece < pieces.len() {
        match send_nonblocking(fd, &pieces[piece..], at) {
            // Nothing taken although the socket did not say it is full: let the writer make progress (or fail).
            Ok(0) => {
                writer.write_all(&pieces[piece][at..]).await?;
                (piece, at) = (piece + 1, 0);
            }
            Ok(mut sent) => {
                while piece < pieces.len() && at + sent >= pieces[piece].len() {
                    sent -= pieces[piece].len() - at;
                    (piece, at) = (piece + 1, 0);
                }
                at += sent;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                writer.write_all(&pieces[piece][at..]).await?;
                (piece, at) = (piece + 1, 0);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// One `sendmsg(MSG_DONTWAIT)` of up to [`SEND_PIECES_MAX`] pieces, skipping the first `skip` bytes of the first.
fn send_nonblocking(fd: RawFd, pieces: &[bytes::Bytes], skip: usize) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; SEND_PIECES_MAX];
    let mut count = 0;
    for (i, piece) in pieces.iter().take(SEND_PIECES_MAX).enumerate() {
        let bytes = if i == 0 { &piece[skip..] } else { &piece[..] };
        iov[i] = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        count = i + 1;
    }
    // SAFETY: a zeroed msghdr is valid (no address, no control data); it is then pointed at `iov`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = count;
    // SAFETY: every iovec points into a live `Bytes` borrowed for this call; the kernel only reads them.
    let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_lite::AsyncReadExt;
    use glommio::net::TcpListener;

    /// A frame much larger than the socket buffers, sent to a reader that reads slowly: the non-blocking
    /// `sendmsg` takes part of it, falls back to waiting writes, and every byte arrives once, in order.
    #[test]
    fn pieces_arrive_whole_and_in_order_through_a_full_socket() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(0)
            .spawn(|| async {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let pieces: Vec<Bytes> = (0..200u32)
                    .map(|i| {
                        let len = if i % 3 == 0 { 7 } else { 40_000 + i as usize };
                        Bytes::from((0..len).map(|b| (b as u32 ^ i) as u8).collect::<Vec<u8>>())
                    })
                    .collect();
                let want: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
                let reader = glommio::spawn_local(async move {
                    let mut stream = listener.accept().await.expect("accept");
                    let mut got = Vec::new();
                    let mut chunk = vec![0u8; 16 << 10];
                    loop {
                        let n = stream.read(&mut chunk).await.expect("read");
                        if n == 0 {
                            return got;
                        }
                        got.extend_from_slice(&chunk[..n]);
                        glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
                    }
                });
                let stream = glommio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect");
                let fd = stream.as_raw_fd();
                let sndbuf: libc::c_int = 64 << 10; // small, so the socket fills long before the frame is sent
                                                    // SAFETY: a valid socket fd and an int option of the size given.
                let rc = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_SNDBUF,
                        &sndbuf as *const libc::c_int as *const libc::c_void,
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0, "setsockopt SO_SNDBUF");
                let (_, mut writer) = futures_lite::io::split(stream);
                // A hung send or read fails the test instead of hanging it.
                let got = glommio::timer::timeout(std::time::Duration::from_secs(30), async {
                    send_pieces(&mut writer, fd, &pieces).await.expect("send");
                    writer.close().await.expect("close");
                    drop(writer);
                    Ok(reader.await)
                })
                .await
                .expect("frame sent and read within 30 s");
                assert_eq!(got.len(), want.len());
                assert!(got == want, "bytes arrive in order");
            })
            .expect("executor")
            .join()
            .expect("executor thread");
    }
}
