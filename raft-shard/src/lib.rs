//! pinlog's metadata: a Raft group (raft-rs 0.7, one voter for now) run synchronously on its own core, the "raft
//! shard", and the client every data shard uses to read and change the metadata.
//!
//! # The pieces
//!
//! - [`spawn`] recovers the group from `<data>/raft` and starts the raft shard: a glommio executor pinned to its
//!   core, connected to each data shard by a [`ShardLink`] (two bounded SPSC `shared_channel`s).
//! - Each data shard turns its link into a [`MetadataClient`]: [`MetadataClient::current`] is the latest immutable
//!   [`MetadataSnapshot`] (no Raft round trip on reads), [`MetadataClient::propose`] sends a [`MetadataCommand`]
//!   and waits, bounded, for its [`CommandOutcome`], [`MetadataClient::changed`] waits for a newer version.
//!
//! # Start-up
//!
//! 1. Recover (on the caller's thread): load the state machine snapshot (`snapshot`), the raft log after it
//!    (`raft.log`, a torn last write cut off) and the hard state (`hardstate`); apply every committed entry after
//!    the snapshot. An empty directory is a new cluster: its id is drawn and a snapshot at index 0 written first.
//! 2. Start the executor; before anything else, queue the recovered snapshot to every shard. A shard serves
//!    Metadata from it at once; nothing waits for the election.
//! 3. `campaign()` right away: a one-voter group elects itself in the first Ready, no election timeout.
//! 4. Once leader, propose `RegisterBroker` for this node unless the state already has it with the same host,
//!    port and shard count.
//!
//! # The loop
//!
//! The main task waits for one thing: a proposal from any shard or the next tick. Then, with no `.await` and no
//! lock held until it is done, it runs the node (`MetadataNode::process`) until raft has nothing left to do. Each
//! Ready cycle, in order:
//!
//! 1. `propose`/`tick` feed raft. Proposals already queued behind the first are taken too, so one Ready and one
//!    fdatasync cover all of them. A proposal the node cannot take (not leader, too large) is answered Rejected.
//! 2. `ready()`. A one-voter group gets no snapshot from a leader and has no peer to message: both asserted.
//! 3. Apply `committed_entries` (entries already durable and committed) to the state machine.
//! 4. Persist `entries`: append to `raft.log` and fdatasync (blocking std::fs; nothing else runs on this core),
//!    then hand them to raft's in-memory storage.
//! 5. Persist the hard state if it changed (write tmp, fdatasync, rename, fsync dir) — before any message that
//!    depends on it (`persisted_messages`) could leave.
//! 6. `advance()`. On a one-voter group this is where commits happen: the `LightReady` carries the new commit
//!    index, which is written back into the stored hard state (memory and file) before its entries are applied.
//! 7. Apply the LightReady's committed entries, `advance_apply()`.
//! 8. Publish: if the applied index (or the controller) changed, one new `Arc<MetadataSnapshot>` goes to every
//!    shard, then the Applied/Rejected replies of this cycle go to the shards that proposed. A shard therefore
//!    sees the snapshot of an apply before its outcome.
//! 9. Every `snapshot_every_entries` applied entries: write the state machine snapshot (rkyv), then compact the
//!    log to the entries after it.
//!
//! Invariants: `ready()` and `advance()` happen in the same synchronous call, exactly once per cycle; nothing is
//! applied that is not committed, nothing acknowledged (Applied) that is not durable in the log; the published
//! version never goes backwards; a persistence error stops the raft shard (logged at error) rather than letting it
//! run on a log it cannot trust, and proposals then end in `ProposeError::Timeout`.
//!
//! # Delivery
//!
//! The loop never blocks on a shard. Outputs go into a per-shard outbox drained by a delivery task at the shard's
//! pace; the outbox holds at most one snapshot (a newer one replaces it in place) and a bounded number of replies
//! (past that the oldest is dropped and its proposer times out). See `outbox.rs`.
//!
//! # Determinism
//!
//! The state machine reads no clock, randomness or local identity. The only entropy a command needs, the ids of
//! created topics, is drawn by the proposer and stored inside the entry, so replay reproduces the same ids.
//! Files and entry layouts are specified byte by byte in `FORMAT.md`.

mod channels;
mod client;
mod durable;
mod entry;
mod error;
mod executor;
mod frame;
mod hard_state_file;
mod log_file;
mod logger;
mod machine;
mod node;
mod outbox;
mod snapshot_file;
mod state;
mod topic_rules;

#[cfg(test)]
mod node_tests;

pub use channels::{Proposal, RaftEvent, ShardLink};
pub use client::{MetadataClient, ProposeError, FIRST_METADATA_WAIT_MS_MAX};
pub use error::RaftShardError;
pub use executor::{spawn, RaftShardConfig, RaftShardHandle};
pub use state::{
    BrokerMeta, CommandOutcome, ConfigChange, ConfigOp, ConfigResource, MetadataCommand,
    MetadataSnapshot, NewTopic, PartitionGrowth, PartitionMeta, TopicMeta, TopicOutcome,
};
pub use topic_rules::{codes, TOPIC_NAME_CHARS_MAX, TOPIC_PARTITIONS_MAX};

/// A fresh directory on disk (under the target dir, not tmpfs) for a test.
#[cfg(test)]
pub(crate) fn test_dir() -> tempfile::TempDir {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    std::fs::create_dir_all(&base).expect("create target/tmp");
    tempfile::Builder::new()
        .prefix("raft-shard-")
        .tempdir_in(base)
        .expect("temp dir")
}
