//! The shard's listener: every shard binds the same address with SO_REUSEPORT (glommio sets it), so the kernel
//! spreads connections across shards and no shard hands sockets to another.

use std::rc::Rc;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use glommio::net::TcpListener;

use crate::connection;
use crate::context::ShardContext;

const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

pub async fn accept_loop(ctx: Rc<ShardContext>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(err) => {
                // EMFILE and friends: the process is out of descriptors. Keep serving the connections we have and
                // retry the accept after a pause, rather than spinning on an error that repeats at once.
                tracing::error!(%err, shard = ctx.shard_id, "accept failed");
                glommio::timer::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(_) => continue,
        };
        let open = ctx.connections.get();
        if open >= ctx.config.max_connections_per_shard {
            tracing::warn!(%peer, open, limit = ctx.config.max_connections_per_shard, "connection refused: max_connections_per_shard reached");
            ctx.metrics.connections_refused_total.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        }
        ctx.connections.set(open + 1);
        ctx.metrics.connections_open.fetch_add(1, Relaxed);
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            tracing::debug!(%peer, shard = ctx.shard_id, "connection opened");
            connection::serve(ctx.clone(), stream, peer).await;
            ctx.connections.set(ctx.connections.get() - 1);
            ctx.metrics.connections_open.fetch_sub(1, Relaxed);
            tracing::debug!(%peer, shard = ctx.shard_id, "connection closed");
        })
        .detach();
    }
}
