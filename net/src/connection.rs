//! One client connection: a reader that decodes requests in arrival order and starts them, and a writer that sends
//! their responses back in the same order. The queue between them is bounded by
//! `inflight_requests_per_connection_max`: a client that pipelines deeper waits for answers (backpressure).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;

use crate::api;
use crate::context::ShardContext;
use crate::frame::{read_frame, FrameError};

/// Bytes read from the socket at a time; most requests arrive in one read.
const READ_BUFFER_BYTES: usize = 64 * 1024;

type InFlight = JoinHandle<Option<bytes::Bytes>>;

pub async fn serve(ctx: Rc<ShardContext>, stream: TcpStream, peer: SocketAddr) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
    }
    let (reader, writer) = futures_lite::io::split(stream);
    let (tx, rx) = local_channel::new_bounded(ctx.config.inflight_requests_per_connection_max);
    let writer = glommio::spawn_local(write_responses(rx, writer, peer));
    read_requests(
        &ctx,
        BufReader::with_capacity(READ_BUFFER_BYTES, reader),
        tx,
        peer,
    )
    .await;
    writer.await;
}

async fn read_requests<R: AsyncRead + Unpin>(
    ctx: &Rc<ShardContext>,
    mut reader: R,
    tx: LocalSender<InFlight>,
    peer: SocketAddr,
) {
    loop {
        let frame = match read_frame(&mut reader, ctx.config.max_request_bytes).await {
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

async fn write_responses<W: AsyncWrite + Unpin>(
    rx: LocalReceiver<InFlight>,
    mut writer: W,
    peer: SocketAddr,
) {
    while let Some(task) = rx.recv().await {
        let Some(Some(frame)) = task.await else {
            continue;
        };
        if let Err(err) = writer.write_all(&frame).await {
            tracing::debug!(%peer, %err, "connection write failed");
            return;
        }
    }
    let _ = writer.close().await;
}
