//! What travels between the raft shard and the data shards: one pair of bounded SPSC glommio `shared_channel`s
//! per data shard, proposals one way and events the other.

use std::sync::Arc;

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};

use crate::state::{CommandOutcome, MetadataCommand, MetadataSnapshot};

/// A command a shard wants applied; `id` is the shard's own, echoed back in the outcome event.
#[derive(Debug)]
pub struct Proposal {
    pub id: u64,
    pub command: MetadataCommand,
}

#[derive(Debug)]
pub enum RaftEvent {
    /// A new snapshot (a newer applied index, or a new controller at the same index).
    Metadata(Arc<MetadataSnapshot>),
    /// The proposal `id` of this shard was committed and applied; the Metadata event of that apply came first.
    Applied { id: u64, outcome: CommandOutcome },
    /// The proposal `id` was not accepted (not the controller, too large, raft dropped it).
    Rejected { id: u64, reason: String },
}

/// One per data shard; `Send`, moved into the shard's thread and turned into a `MetadataClient` there.
pub struct ShardLink {
    pub(crate) shard: u32,
    pub(crate) proposals: SharedSender<Proposal>,
    pub(crate) events: SharedReceiver<RaftEvent>,
}

impl ShardLink {
    /// The data shard this link belongs to.
    pub fn shard(&self) -> u32 {
        self.shard
    }
}

/// The raft shard's halves of one link.
pub(crate) struct RaftEnd {
    pub proposals: SharedReceiver<Proposal>,
    pub events: SharedSender<RaftEvent>,
}

/// Both ends of the link of `shard`, each channel holding at most `capacity` messages.
pub(crate) fn link(shard: u32, capacity: usize) -> (ShardLink, RaftEnd) {
    let (proposal_tx, proposal_rx) = shared_channel::new_bounded(capacity);
    let (event_tx, event_rx) = shared_channel::new_bounded(capacity);
    (
        ShardLink {
            shard,
            proposals: proposal_tx,
            events: event_rx,
        },
        RaftEnd {
            proposals: proposal_rx,
            events: event_tx,
        },
    )
}
