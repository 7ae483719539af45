//! The raft shard's thread: a glommio executor (so the same `shared_channel`s reach every data shard) whose main
//! task runs the synchronous Ready loop of [`MetadataNode`] between awaits.
//!
//! Tasks on the raft executor, all single-threaded:
//! - the main loop: waits for a proposal or the next tick, then runs the node synchronously and files its outputs
//!   into the per-shard outboxes;
//! - per shard, an intake task: moves proposals from the shard's channel into one bounded local inbox (a full inbox
//!   stops the intake, which fills the shard's channel: backpressure up to the proposer's timeout);
//! - per shard, a delivery task: drains that shard's [`Outbox`] into its channel at the shard's pace.
//!
//! Shutdown is noticed at the next tick (at most `tick_ms` later); the tick is raft's clock and runs anyway.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::timer::Timer;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::channels::{self, Proposal, RaftEnd, RaftEvent, ShardLink};
use crate::error::RaftShardError;
use crate::node::{MetadataNode, NodeConfig, Output};
use crate::outbox::Outbox;

/// Where and how the metadata raft group runs.
#[derive(Clone, Debug)]
pub struct RaftShardConfig {
    pub node_id: i32,
    /// `<data>/raft`: raft log, hard state and snapshot (see FORMAT.md).
    pub dir: PathBuf,
    /// The core to pin the raft executor to; `None` leaves it unpinned.
    pub cpu: Option<usize>,
    /// Number of data shards; one [`ShardLink`] is returned per shard.
    pub shard_count: usize,
    /// Raft tick period (100 ms: elections after 10 ticks).
    pub tick_ms: u64,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Messages each channel between the raft shard and one data shard holds, each way (1024).
    pub channel_capacity: usize,
    /// Applied entries between two state machine snapshots, each followed by a log compaction (1000).
    pub snapshot_every_entries: u64,
}

/// The running raft shard; [`RaftShardHandle::shutdown`] stops and joins it.
pub struct RaftShardHandle {
    stop: Arc<AtomicBool>,
    join: ExecutorJoinHandle<Result<(), RaftShardError>>,
}

impl RaftShardHandle {
    /// Stops the raft loop at its next tick and waits for the thread; returns the error that stopped it, if any.
    pub fn shutdown(self) -> Result<(), RaftShardError> {
        self.stop.store(true, Ordering::Release);
        self.join.join().map_err(|_| RaftShardError::Panicked)?
    }
}

/// Recovers the metadata (on the calling thread, so a bad directory is an error here), starts the raft executor,
/// publishes the recovered snapshot to every shard before the election, campaigns, and registers this broker once
/// it leads. Returns the handle and one [`ShardLink`] per shard, in shard order.
pub fn spawn(config: RaftShardConfig) -> Result<(RaftShardHandle, Vec<ShardLink>), RaftShardError> {
    if config.shard_count == 0 || config.channel_capacity == 0 || config.tick_ms == 0 {
        return Err(RaftShardError::Config(format!(
            "shard_count ({}), channel_capacity ({}) and tick_ms ({}) must be > 0",
            config.shard_count, config.channel_capacity, config.tick_ms
        )));
    }
    let node = MetadataNode::open(NodeConfig {
        node_id: config.node_id,
        dir: config.dir.clone(),
        advertised_host: config.advertised_host.clone(),
        advertised_port: config.advertised_port,
        shard_count: config.shard_count as u32,
        snapshot_every_entries: config.snapshot_every_entries,
    })?;
    let (links, ends): (Vec<ShardLink>, Vec<RaftEnd>) = (0..config.shard_count)
        .map(|shard| channels::link(shard as u32, config.channel_capacity))
        .unzip();
    let stop = Arc::new(AtomicBool::new(false));
    let placement = config.cpu.map_or(Placement::Unbound, Placement::Fixed);
    let tick = Duration::from_millis(config.tick_ms);
    let capacity = config.channel_capacity;
    let join = LocalExecutorBuilder::new(placement)
        .name("raft-shard")
        .io_memory(0)
        .spawn({
            let stop = stop.clone();
            move || run(node, ends, tick, capacity, stop)
        })
        .map_err(|e| RaftShardError::Spawn(e.to_string()))?;
    Ok((RaftShardHandle { stop, join }, links))
}

/// The outbox of one shard and the doorbell of its delivery task.
struct ShardOut {
    outbox: RefCell<Outbox>,
    doorbell: LocalSender<()>,
}

impl ShardOut {
    fn ring(&self) {
        // A full doorbell already holds a wake-up for the delivery task; one is enough.
        let _ = self.doorbell.try_send(());
    }
}

async fn run(
    mut node: MetadataNode,
    ends: Vec<RaftEnd>,
    tick: Duration,
    capacity: usize,
    stop: Arc<AtomicBool>,
) -> Result<(), RaftShardError> {
    let (inbox_tx, inbox) = local_channel::new_bounded(capacity);
    let inbox_tx = Rc::new(inbox_tx);
    let mut outs = Vec::with_capacity(ends.len());
    let mut tasks = Vec::with_capacity(2 * ends.len());
    for (shard, end) in ends.into_iter().enumerate() {
        let (doorbell, rung) = local_channel::new_bounded(1);
        let out = Rc::new(ShardOut {
            outbox: RefCell::new(Outbox::new(capacity)),
            doorbell,
        });
        tasks.push(glommio::spawn_local(intake(
            shard as u32,
            end.proposals,
            inbox_tx.clone(),
        )));
        tasks.push(glommio::spawn_local(deliver(
            shard as u32,
            out.clone(),
            rung,
            end.events,
        )));
        outs.push(out);
    }
    let result = drive(&mut node, &inbox, &outs, tick, &stop).await;
    // Drop every channel end now (glommio does not drop tasks left behind when the executor ends): the shards see
    // their links close and fail pending and new proposals at once instead of at their timeouts.
    for task in tasks {
        task.cancel().await;
    }
    if let Err(err) = &result {
        tracing::error!(%err, "metadata raft shard stopped: metadata changes will time out until restart");
    }
    result
}

/// The main loop: every wake-up (a proposal or a tick) ends in a full synchronous `process` of the node.
async fn drive(
    node: &mut MetadataNode,
    inbox: &LocalReceiver<(u32, Proposal)>,
    outs: &[Rc<ShardOut>],
    tick: Duration,
    stop: &AtomicBool,
) -> Result<(), RaftShardError> {
    let mut outputs = Vec::new();
    // Start-up never waits on the election: every shard gets the recovered metadata first.
    outputs.push(Output::Metadata(node.published()));
    dispatch(&mut outputs, outs);
    node.campaign()?;
    node.process(&mut outputs)?;
    dispatch(&mut outputs, outs);
    let mut next_tick = Instant::now() + tick;
    while !stop.load(Ordering::Acquire) {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let proposal = future::or(inbox.recv(), async {
            Timer::new(wait).await;
            None
        })
        .await;
        match proposal {
            Some((shard, proposal)) => {
                node.propose(shard, proposal, &mut outputs);
                // Take whatever else is already queued, so one Ready (one fdatasync) covers all of it.
                while let Some(Some((shard, proposal))) = future::poll_once(inbox.recv()).await {
                    node.propose(shard, proposal, &mut outputs);
                }
            }
            None => {
                node.tick();
                next_tick += tick;
            }
        }
        node.process(&mut outputs)?;
        dispatch(&mut outputs, outs);
    }
    tracing::info!("metadata raft shard stopped");
    Ok(())
}

fn dispatch(outputs: &mut Vec<Output>, outs: &[Rc<ShardOut>]) {
    for output in outputs.drain(..) {
        match output {
            Output::Metadata(snapshot) => {
                for out in outs {
                    out.outbox.borrow_mut().push_metadata(snapshot.clone());
                    out.ring();
                }
            }
            Output::Reply { shard, event } => {
                // Replies only exist for proposals that came in through one of these links.
                let out = &outs[shard as usize];
                if let Some(id) = out.outbox.borrow_mut().push_reply(event) {
                    tracing::warn!(
                        shard,
                        id,
                        "shard is not reading metadata events; dropped the oldest reply"
                    );
                }
                out.ring();
            }
        }
    }
}

async fn intake(
    shard: u32,
    proposals: SharedReceiver<Proposal>,
    inbox: Rc<LocalSender<(u32, Proposal)>>,
) {
    let proposals = proposals.connect().await;
    while let Some(proposal) = proposals.recv().await {
        if inbox.send((shard, proposal)).await.is_err() {
            return;
        }
    }
    tracing::debug!(shard, "shard closed its proposal channel");
}

async fn deliver(
    shard: u32,
    out: Rc<ShardOut>,
    rung: LocalReceiver<()>,
    events: SharedSender<RaftEvent>,
) {
    let events = events.connect().await;
    loop {
        let next = out.outbox.borrow_mut().pop();
        match next {
            Some(event) => {
                if events.send(event).await.is_err() {
                    tracing::debug!(shard, "shard closed its metadata channel");
                    return;
                }
            }
            None => {
                if rung.recv().await.is_none() {
                    return;
                }
            }
        }
    }
}
