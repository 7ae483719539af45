//! The data shard's side of its link: the latest metadata snapshot, and bounded proposals.
//!
//! One receive task per shard reads the raft shard's events: a Metadata event swaps the snapshot and wakes the
//! `changed` waiters it satisfies, an Applied/Rejected event resolves the pending proposal with that id. Reads
//! (`current`) never wait. Every `propose` is bounded by its timeout; if the raft shard is gone, pending and new
//! proposals end at once with `Timeout` (the request's answer is REQUEST_TIMED_OUT either way).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures_lite::future;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use glommio::timer::Timer;

use crate::channels::{Proposal, RaftEvent, ShardLink};
use crate::state::{CommandOutcome, MetadataCommand, MetadataSnapshot};

/// The raft shard sends the recovered snapshot first thing; past this, the shard starts with an empty one.
pub const FIRST_METADATA_WAIT_MS_MAX: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// No outcome within the wait (or the raft shard is gone); maps to REQUEST_TIMED_OUT.
    #[error("metadata proposal got no outcome within {0:?}")]
    Timeout(Duration),
    /// The raft shard refused the proposal (not the controller, too large); maps to NOT_CONTROLLER.
    #[error("metadata proposal rejected: {0}")]
    NotController(String),
}

type Reply = Result<CommandOutcome, String>;

struct ClientState {
    current: Arc<MetadataSnapshot>,
    next_id: u64,
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    /// `changed` callers: the version each has seen, and where to send the first newer snapshot.
    watchers: Vec<(u64, oneshot::Sender<Arc<MetadataSnapshot>>)>,
    /// The raft shard closed the event channel: nothing will ever be applied again.
    gone: bool,
}

pub struct MetadataClient {
    shard: u32,
    proposals: ConnectedSender<Proposal>,
    state: RefCell<ClientState>,
}

impl MetadataClient {
    /// Connects the link inside the calling shard's executor and waits (bounded) for the first snapshot.
    pub async fn connect(link: ShardLink) -> Rc<MetadataClient> {
        let shard = link.shard();
        let proposals = link.proposals.connect().await;
        let events = link.events.connect().await;
        let first = future::or(events.recv(), async {
            Timer::new(Duration::from_millis(FIRST_METADATA_WAIT_MS_MAX)).await;
            None
        })
        .await;
        let current = match first {
            Some(RaftEvent::Metadata(snapshot)) => snapshot,
            other => {
                tracing::error!(shard, first = ?other, "no metadata from the raft shard; starting with none");
                Arc::new(empty_snapshot())
            }
        };
        let client = Rc::new(MetadataClient {
            shard,
            proposals,
            state: RefCell::new(ClientState {
                current,
                next_id: 0,
                pending: HashMap::new(),
                watchers: Vec::new(),
                gone: false,
            }),
        });
        glommio::spawn_local(receive(Rc::downgrade(&client), events)).detach();
        client
    }

    /// The newest metadata this shard has; never waits.
    pub fn current(&self) -> Arc<MetadataSnapshot> {
        self.state.borrow().current.clone()
    }

    /// Sends the command and waits for its apply, at most `timeout`. The Metadata event of that apply reaches
    /// this client before the outcome does, so `current()` already shows the change when this returns.
    pub async fn propose(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<CommandOutcome, ProposeError> {
        let started = Instant::now();
        let (id, reply) = {
            let mut state = self.state.borrow_mut();
            if state.gone {
                return Err(ProposeError::Timeout(Duration::ZERO));
            }
            let id = state.next_id;
            state.next_id += 1;
            let (tx, rx) = oneshot::channel();
            state.pending.insert(id, tx);
            (id, rx)
        };
        let _pending = PendingGuard { client: self, id };
        let outcome = async {
            if self.proposals.send(Proposal { id, command }).await.is_err() {
                return Err(ProposeError::Timeout(started.elapsed()));
            }
            match reply.await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(reason)) => Err(ProposeError::NotController(reason)),
                Err(oneshot::Canceled) => Err(ProposeError::Timeout(started.elapsed())),
            }
        };
        future::or(outcome, async {
            Timer::new(timeout).await;
            Err(ProposeError::Timeout(timeout))
        })
        .await
    }

    /// The newest snapshot once its version is greater than `seen_version`; woken by the Metadata event itself.
    pub async fn changed(&self, seen_version: u64) -> Arc<MetadataSnapshot> {
        let newer = {
            let mut state = self.state.borrow_mut();
            if state.current.version > seen_version {
                return state.current.clone();
            }
            let (tx, rx) = oneshot::channel();
            // Waiters that gave up (their future was dropped) go now, so the list stays as long as the live ones.
            state.watchers.retain(|(_, tx)| !tx.is_canceled());
            state.watchers.push((seen_version, tx));
            rx
        };
        match newer.await {
            Ok(snapshot) => snapshot,
            // Watchers are kept until a newer version comes; without one there is nothing to return.
            Err(oneshot::Canceled) => future::pending().await,
        }
    }

    fn on_event(&self, event: RaftEvent) {
        let mut state = self.state.borrow_mut();
        match event {
            RaftEvent::Metadata(snapshot) => {
                if snapshot.version < state.current.version {
                    tracing::warn!(
                        shard = self.shard,
                        version = snapshot.version,
                        "ignoring older metadata"
                    );
                    return;
                }
                let version = snapshot.version;
                state.current = snapshot;
                let (ready, waiting): (Vec<_>, Vec<_>) = state
                    .watchers
                    .drain(..)
                    .partition(|(seen, _)| version > *seen);
                state.watchers = waiting;
                for (_, tx) in ready {
                    let _ = tx.send(state.current.clone());
                }
            }
            RaftEvent::Applied { id, outcome } => {
                if let Some(tx) = state.pending.remove(&id) {
                    let _ = tx.send(Ok(outcome));
                }
            }
            RaftEvent::Rejected { id, reason } => {
                if let Some(tx) = state.pending.remove(&id) {
                    let _ = tx.send(Err(reason));
                }
            }
        }
    }

    fn on_gone(&self) {
        let mut state = self.state.borrow_mut();
        state.gone = true;
        // Dropping the senders ends every pending proposal with Timeout at once.
        state.pending.clear();
        tracing::warn!(
            shard = self.shard,
            "metadata raft shard is gone; metadata changes will time out"
        );
    }
}

async fn receive(client: Weak<MetadataClient>, events: ConnectedReceiver<RaftEvent>) {
    while let Some(event) = events.recv().await {
        let Some(client) = client.upgrade() else {
            return;
        };
        client.on_event(event);
    }
    if let Some(client) = client.upgrade() {
        client.on_gone();
    }
}

/// Forgets a pending proposal when its `propose` future ends or is dropped, so late outcomes find no one.
struct PendingGuard<'a> {
    client: &'a MetadataClient,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.client.state.borrow_mut().pending.remove(&self.id);
    }
}

fn empty_snapshot() -> MetadataSnapshot {
    MetadataSnapshot {
        version: 0,
        cluster_id: String::new(),
        controller_id: -1,
        brokers: Vec::new(),
        topics: Default::default(),
        broker_configs: Default::default(),
    }
}
