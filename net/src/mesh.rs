//! The mesh: one bounded SPSC `shared_channel` from every shard to every other shard.
//!
//! A shard that needs work done on a partition another shard owns sends a `Request` with an id (one partition's op,
//! or a fetch's reads or long-poll for every partition that shard owns: `shard_call.rs`) and awaits the `Reply` with
//! the same id, which comes back on the reverse channel. Each shard runs one receive task per peer;
//! that task never blocks on a send (it spawns the work), so two shards whose channels are both full cannot wait on
//! each other. In-flight requests to one peer are bounded by a semaphore, so a full channel is backpressure on the
//! requester and never an unbounded queue.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::join_all;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::Semaphore;

use crate::context::ShardContext;
use crate::metrics::ShardMetrics;
use crate::shard_call::{ShardCall, ShardReply};

/// Messages in flight between two shards per shared channel.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;
/// Requests one shard may have outstanding at one peer.
pub const MESH_INFLIGHT_PER_PEER_MAX: usize = 4096;

pub enum MeshMsg {
    /// `min_metadata_version`: the requester's metadata version; the owner waits (bounded) until it has seen at
    /// least that version, so a topic created through one shard is known to the owner before it is used.
    Request {
        id: u64,
        min_metadata_version: u64,
        request: ShardCall,
    },
    Reply {
        id: u64,
        reply: ShardReply,
    },
}

/// The channel ends of one shard, built on the main thread and moved into the shard's thread.
pub struct MeshEndpoints {
    /// `senders[j]` goes to shard j (None for self).
    pub senders: Vec<Option<SharedSender<MeshMsg>>>,
    /// `receivers[j]` comes from shard j (None for self).
    pub receivers: Vec<Option<SharedReceiver<MeshMsg>>>,
}

/// Builds the full mesh for `shards` shards: `endpoints[i]` belongs to shard i.
pub fn build_mesh(shards: usize) -> Vec<MeshEndpoints> {
    let mut endpoints: Vec<MeshEndpoints> = (0..shards)
        .map(|_| MeshEndpoints {
            senders: (0..shards).map(|_| None).collect(),
            receivers: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(MESH_CHANNEL_CAPACITY);
                endpoints[from].senders[to] = Some(tx);
                endpoints[to].receivers[from] = Some(rx);
            }
        }
    }
    endpoints
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("shard {0} is not reachable (its executor stopped)")]
    PeerGone(u32),
    #[error("shard {0} did not answer within {1:?}")]
    Timeout(u32, Duration),
}

pub struct Mesh {
    senders: Vec<Option<Rc<ConnectedSender<MeshMsg>>>>,
    inflight: Vec<Semaphore>,
    pending: RefCell<HashMap<u64, oneshot::Sender<ShardReply>>>,
    next_id: Cell<u64>,
    metrics: Arc<ShardMetrics>,
}

impl Mesh {
    /// Connects this shard's senders; the receivers are returned to be served by [`serve_peer`].
    pub async fn connect(
        endpoints: MeshEndpoints,
        metrics: Arc<ShardMetrics>,
    ) -> (Mesh, Vec<(u32, ConnectedReceiver<MeshMsg>)>) {
        // glommio's connect() completes only once the other end has connected too, so every end is connected
        // at once: connecting one after another would wait on a peer that is itself waiting on us.
        let senders = join_all(endpoints.senders.into_iter().map(|tx| async move {
            match tx {
                Some(tx) => Some(Rc::new(tx.connect().await)),
                None => None,
            }
        }));
        let receivers = join_all(endpoints.receivers.into_iter().enumerate().filter_map(
            |(peer, rx)| rx.map(|rx| async move { (peer as u32, rx.connect().await) }),
        ));
        let (senders, receivers) = futures::join!(senders, receivers);
        let inflight = (0..senders.len())
            .map(|_| Semaphore::new(MESH_INFLIGHT_PER_PEER_MAX as u64))
            .collect();
        let mesh = Mesh {
            senders,
            inflight,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
            metrics,
        };
        (mesh, receivers)
    }

    /// Runs `request` on shard `peer` and returns its reply, bounded by `deadline`.
    pub async fn call(
        &self,
        peer: u32,
        min_metadata_version: u64,
        request: ShardCall,
        deadline: Duration,
    ) -> Result<ShardReply, MeshError> {
        let sender = self.senders[peer as usize]
            .clone()
            .ok_or(MeshError::PeerGone(peer))?;
        let _permit = self.inflight[peer as usize]
            .acquire_permit(1)
            .await
            .map_err(|_| MeshError::PeerGone(peer))?;
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        self.metrics.mesh_pending.fetch_add(1, Relaxed);
        let _forget = PendingGuard { mesh: self, id };
        let exchange = async {
            sender
                .send(MeshMsg::Request {
                    id,
                    min_metadata_version,
                    request,
                })
                .await
                .map_err(|_| MeshError::PeerGone(peer))?;
            rx.await.map_err(|_| MeshError::PeerGone(peer))
        };
        glommio::timer::timeout(deadline, async { Ok(exchange.await) })
            .await
            .map_err(|_| MeshError::Timeout(peer, deadline))?
    }

    fn complete(&self, id: u64, reply: ShardReply) {
        // A missing entry means the caller gave up (timeout or dropped future): the reply is discarded.
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    async fn reply(&self, peer: u32, id: u64, reply: ShardReply) {
        if let Some(sender) = self.senders[peer as usize].clone() {
            if sender.send(MeshMsg::Reply { id, reply }).await.is_err() {
                tracing::warn!(peer, "mesh reply dropped: peer shard stopped");
            }
        }
    }
}

/// Removes a pending entry when its caller stops waiting, whatever the reason.
struct PendingGuard<'a> {
    mesh: &'a Mesh,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.mesh.pending.borrow_mut().remove(&self.id);
        self.mesh.metrics.mesh_pending.fetch_sub(1, Relaxed);
    }
}

/// Serves the channel from one peer: runs its requests here (each as its own task, in arrival order) and
/// completes the replies to this shard's own requests.
pub async fn serve_peer(ctx: Weak<ShardContext>, peer: u32, receiver: ConnectedReceiver<MeshMsg>) {
    while let Some(msg) = receiver.recv().await {
        let Some(shard) = ctx.upgrade() else { return };
        match msg {
            MeshMsg::Reply { id, reply } => shard.mesh.complete(id, reply),
            MeshMsg::Request {
                id,
                min_metadata_version,
                request,
            } => {
                glommio::spawn_local(async move {
                    let reply =
                        crate::route::run_for_peer(&shard, min_metadata_version, request).await;
                    shard.mesh.reply(peer, id, reply).await;
                })
                .detach();
            }
        }
    }
    tracing::debug!(peer, "mesh channel from peer closed");
}
