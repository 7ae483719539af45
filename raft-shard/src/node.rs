//! The metadata raft node: recovery, and the synchronous Ready loop (walked through in the crate docs).
//!
//! Everything here is synchronous and owned by one thread; the executor around it only feeds ticks and proposals
//! in and carries [`Output`]s out, which is also what lets the tests drive it deterministically.
//!
//! raft ids are node ids plus one: Kafka node ids start at 0, raft reserves id 0 for "nobody".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, EntryType, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, GetEntriesContext, RawNode, StateRole, Storage};

use crate::channels::{Proposal, RaftEvent};
use crate::entry::{LoggedCommand, Origin, INTERNAL_SHARD};
use crate::error::RaftShardError;
use crate::log_file::LogFile;
use crate::machine::Machine;
use crate::snapshot_file::StoredSnapshot;
use crate::state::{BrokerMeta, CommandOutcome, MetadataCommand, MetadataSnapshot};
use crate::{hard_state_file, log_file, logger, snapshot_file};

/// Ticks a follower waits for a leader before it campaigns (raft-rs's default).
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 3;
/// Limits for raft messages to peers (none yet in a one-voter group; raft requires them).
const MESSAGE_BYTES_MAX: u64 = 1 << 20;
const INFLIGHT_MESSAGES_MAX: usize = 256;
/// A command larger than this is refused at propose time (1000 topics with configs fit easily).
pub(crate) const PROPOSAL_BYTES_MAX: usize = 4 << 20;

pub(crate) struct NodeConfig {
    pub node_id: i32,
    pub dir: PathBuf,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub shard_count: u32,
    pub snapshot_every_entries: u64,
}

/// What one Ready cycle wants delivered to the data shards, in this order.
#[derive(Debug)]
pub(crate) enum Output {
    /// To every shard.
    Metadata(Arc<MetadataSnapshot>),
    /// To the one shard that proposed.
    Reply { shard: u32, event: RaftEvent },
}

pub(crate) struct MetadataNode {
    raw: RawNode<MemStorage>,
    log: LogFile,
    machine: Machine,
    config: NodeConfig,
    /// Random per process run; written into every proposal's context so replayed entries answer no one.
    incarnation: u64,
    /// Applied index of the newest snapshot file.
    snapshot_index: u64,
    published: Arc<MetadataSnapshot>,
    register_in_flight: bool,
}

impl MetadataNode {
    /// Recovers snapshot, log and hard state from `config.dir` (creating a new cluster in an empty directory) and
    /// applies every committed entry, so the published snapshot is the full metadata before any election.
    pub fn open(config: NodeConfig) -> Result<MetadataNode, RaftShardError> {
        if config.node_id < 0 {
            return Err(RaftShardError::Config(format!(
                "node id must be >= 0, got {}",
                config.node_id
            )));
        }
        if config.snapshot_every_entries == 0 {
            return Err(RaftShardError::Config(
                "snapshot_every_entries must be > 0".into(),
            ));
        }
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(RaftShardError::io("create directory", &dir))?;
        let id = raft_id(config.node_id);
        let stored = load_or_create_snapshot(&dir, id)?;
        if stored.voters != [id] {
            return Err(RaftShardError::Config(format!(
                "{} holds the raft group of voters {:?}; only a one-voter group of node {} is supported",
                dir.display(),
                stored.voters.iter().map(|v| node_id(*v)).collect::<Vec<_>>(),
                config.node_id
            )));
        }
        let storage = MemStorage::new();
        restore_snapshot(&storage, &stored)?;
        let (log, entries) = LogFile::open(&dir)?;
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.index > stored.index)
            .collect();
        if let Some(first) = entries.first() {
            if first.index != stored.index + 1 {
                let reason = format!(
                    "log starts at {} but the snapshot ends at {}",
                    first.index, stored.index
                );
                return Err(RaftShardError::corrupt(
                    dir.join(log_file::FILE_NAME),
                    reason,
                ));
            }
        }
        storage.wl().append(&entries)?;
        let last_index = stored.index + entries.len() as u64;
        if let Some(mut hs) = hard_state_file::load(&dir)? {
            if hs.commit > last_index {
                let reason = format!(
                    "commit {} beyond the last log index {last_index}",
                    hs.commit
                );
                return Err(RaftShardError::corrupt(
                    dir.join(hard_state_file::FILE_NAME),
                    reason,
                ));
            }
            hs.commit = hs.commit.max(stored.index);
            storage.wl().set_hardstate(hs);
        }
        let commit = storage.rl().hard_state().commit;
        let mut machine = stored.machine();
        for entry in entries.iter().take_while(|e| e.index <= commit) {
            apply_entry(&mut machine, entry);
        }
        let raft_config = Config {
            id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied: commit,
            max_size_per_msg: MESSAGE_BYTES_MAX,
            max_inflight_msgs: INFLIGHT_MESSAGES_MAX,
            ..Config::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(&raft_config, storage, &logger::raft_logger(config.node_id))?;
        let published = Arc::new(machine.snapshot(-1));
        tracing::info!(
            node_id = config.node_id,
            cluster_id = %machine.cluster_id,
            snapshot_index = stored.index,
            applied = commit,
            last_index,
            topics = machine.topics.len(),
            "metadata recovered"
        );
        Ok(MetadataNode {
            raw,
            log,
            machine,
            config,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
            snapshot_index: stored.index,
            published,
            register_in_flight: false,
        })
    }

    /// The newest snapshot handed out (the recovered one until the first Ready applies something).
    pub fn published(&self) -> Arc<MetadataSnapshot> {
        self.published.clone()
    }

    /// Starts an election now: a one-voter group wins it in the next Ready, no election timeout to sit out.
    pub fn campaign(&mut self) -> Result<(), RaftShardError> {
        Ok(self.raw.campaign()?)
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Hands a shard's proposal to raft; a proposal raft cannot take is answered with Rejected at once.
    pub fn propose(&mut self, shard: u32, proposal: Proposal, out: &mut Vec<Output>) {
        let Proposal { id, command } = proposal;
        let rejected = |reason: String| Output::Reply {
            shard,
            event: RaftEvent::Rejected { id, reason },
        };
        if !self.is_leader() {
            let reason = match self.controller_id() {
                -1 => "no metadata controller is elected yet".to_owned(),
                leader => format!("node {leader} is the metadata controller"),
            };
            out.push(rejected(reason));
            return;
        }
        let data = LoggedCommand::new(command).encode();
        if data.len() > PROPOSAL_BYTES_MAX {
            out.push(rejected(format!(
                "command of {} bytes exceeds {PROPOSAL_BYTES_MAX}",
                data.len()
            )));
            return;
        }
        let origin = Origin {
            incarnation: self.incarnation,
            shard,
            id,
        };
        if let Err(err) = self.raw.propose(origin.encode(), data) {
            out.push(rejected(format!("raft dropped the proposal: {err}")));
        }
    }

    /// Runs Ready cycles until raft has nothing more to do, appending what the shards must receive to `out`.
    pub fn process(&mut self, out: &mut Vec<Output>) -> Result<(), RaftShardError> {
        while self.raw.has_ready() {
            self.handle_ready(out)?;
            self.maybe_register();
        }
        Ok(())
    }

    /// One `ready -> persist -> apply -> advance` cycle; no await, no lock held past a statement, no early return
    /// between `ready()` and `advance()` except a persistence error, which stops the raft shard.
    fn handle_ready(&mut self, out: &mut Vec<Output>) -> Result<(), RaftShardError> {
        let mut ready = self.raw.ready();
        assert!(
            ready.snapshot().is_empty(),
            "a one-voter group never receives a snapshot"
        );
        let mut unsent = ready.take_messages().len();
        let mut replies = Vec::new();
        self.apply_committed(ready.take_committed_entries(), &mut replies);
        let entries = ready.take_entries();
        if !entries.is_empty() {
            self.log.append(&entries)?;
            self.raw.mut_store().wl().append(&entries)?;
        }
        if let Some(hs) = ready.hs() {
            hard_state_file::store(&self.config.dir, hs)?;
            self.raw.mut_store().wl().set_hardstate(hs.clone());
        }
        if let Some(ss) = ready.ss() {
            tracing::info!(node_id = self.config.node_id, controller = controller_of(ss.leader_id), role = ?ss.raft_state, "metadata controller changed");
            self.register_in_flight = false;
        }
        unsent += ready.take_persisted_messages().len();
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let hs = {
                let mut store = self.raw.mut_store().wl();
                store.mut_hard_state().commit = commit;
                store.hard_state().clone()
            };
            hard_state_file::store(&self.config.dir, &hs)?;
        }
        unsent += light.take_messages().len();
        self.apply_committed(light.take_committed_entries(), &mut replies);
        self.raw.advance_apply();
        assert_eq!(unsent, 0, "a one-voter group has no peer to message");
        self.publish(out, replies);
        self.maybe_snapshot()
    }

    fn apply_committed(&mut self, entries: Vec<Entry>, replies: &mut Vec<Output>) {
        for entry in entries {
            let Some((origin, result)) = apply_entry(&mut self.machine, &entry) else {
                continue;
            };
            if origin.incarnation != self.incarnation {
                continue;
            }
            if origin.shard == INTERNAL_SHARD {
                self.register_in_flight = false;
                continue;
            }
            let event = match result {
                Ok(outcome) => RaftEvent::Applied {
                    id: origin.id,
                    outcome,
                },
                Err(reason) => RaftEvent::Rejected {
                    id: origin.id,
                    reason,
                },
            };
            replies.push(Output::Reply {
                shard: origin.shard,
                event,
            });
        }
    }

    /// A new snapshot goes out before the replies of the entries it includes.
    fn publish(&mut self, out: &mut Vec<Output>, replies: Vec<Output>) {
        let controller_id = self.controller_id();
        if self.machine.applied_index != self.published.version
            || controller_id != self.published.controller_id
        {
            assert!(
                self.machine.applied_index >= self.published.version,
                "metadata version went backwards"
            );
            self.published = Arc::new(self.machine.snapshot(controller_id));
            out.push(Output::Metadata(self.published.clone()));
        }
        out.extend(replies);
    }

    fn maybe_snapshot(&mut self) -> Result<(), RaftShardError> {
        let applied = self.machine.applied_index;
        if applied - self.snapshot_index < self.config.snapshot_every_entries {
            return Ok(());
        }
        let term = self.raw.store().term(applied)?;
        let stored = StoredSnapshot::of(&self.machine, term, vec![raft_id(self.config.node_id)]);
        snapshot_file::store(&self.config.dir, &stored)?;
        self.raw.mut_store().wl().compact(applied)?;
        let store = self.raw.store();
        let remaining = store.entries(
            applied + 1,
            store.last_index()? + 1,
            None,
            GetEntriesContext::empty(false),
        )?;
        self.log.rewrite(&remaining)?;
        self.snapshot_index = applied;
        tracing::info!(
            index = applied,
            kept_entries = remaining.len(),
            "metadata snapshot written, raft log compacted"
        );
        Ok(())
    }

    /// The leader registers its own broker (host, port, shard count) unless the state already says exactly that.
    fn maybe_register(&mut self) {
        if self.register_in_flight || !self.is_leader() {
            return;
        }
        let wanted = BrokerMeta {
            node_id: self.config.node_id,
            host: self.config.advertised_host.clone(),
            port: self.config.advertised_port,
            shard_count: self.config.shard_count,
        };
        if self.machine.brokers.get(&wanted.node_id) == Some(&wanted) {
            return;
        }
        let BrokerMeta {
            node_id,
            host,
            port,
            shard_count,
        } = wanted;
        let command = MetadataCommand::RegisterBroker {
            node_id,
            host,
            port,
            shard_count,
        };
        let origin = Origin {
            incarnation: self.incarnation,
            shard: INTERNAL_SHARD,
            id: 0,
        };
        match self
            .raw
            .propose(origin.encode(), LoggedCommand::new(command).encode())
        {
            Ok(()) => {
                self.register_in_flight = true;
                tracing::info!(node_id, "registering broker");
            }
            Err(err) => tracing::warn!(node_id, %err, "cannot propose the broker registration"),
        }
    }

    fn controller_id(&self) -> i32 {
        controller_of(self.raw.raft.leader_id)
    }
}

/// Applies one committed entry; returns its origin (if it has one) and its outcome, or why it could not be decoded.
fn apply_entry(
    machine: &mut Machine,
    entry: &Entry,
) -> Option<(Origin, Result<CommandOutcome, String>)> {
    if entry.data.is_empty() || entry.entry_type != EntryType::EntryNormal {
        // The empty entry of a new leader; conf changes are never proposed in a one-voter group.
        machine.skip(entry.index);
        return None;
    }
    let origin = Origin::decode(&entry.context);
    match LoggedCommand::decode(&entry.data) {
        Ok(logged) => {
            let outcome = machine.apply(entry.index, &logged);
            origin.map(|o| (o, Ok(outcome)))
        }
        Err(err) => {
            tracing::error!(index = entry.index, %err, "undecodable metadata entry skipped");
            machine.skip(entry.index);
            origin.map(|o| (o, Err(format!("undecodable command: {err}"))))
        }
    }
}

fn load_or_create_snapshot(dir: &Path, id: u64) -> Result<StoredSnapshot, RaftShardError> {
    if let Some(stored) = snapshot_file::load(dir)? {
        return Ok(stored);
    }
    for name in [log_file::FILE_NAME, hard_state_file::FILE_NAME] {
        if dir.join(name).exists() {
            return Err(RaftShardError::corrupt(
                dir.join(snapshot_file::FILE_NAME),
                "missing next to the raft log",
            ));
        }
    }
    let cluster_id = uuid::Uuid::new_v4().to_string();
    let stored = StoredSnapshot::of(&Machine::new(cluster_id.clone()), 0, vec![id]);
    snapshot_file::store(dir, &stored)?;
    tracing::info!(%cluster_id, dir = %dir.display(), "new metadata cluster");
    Ok(stored)
}

fn restore_snapshot(storage: &MemStorage, stored: &StoredSnapshot) -> Result<(), RaftShardError> {
    let conf_state = ConfState::from((stored.voters.clone(), Vec::new()));
    if stored.index == 0 {
        storage.wl().set_conf_state(conf_state);
        return Ok(());
    }
    let mut snapshot = Snapshot::default();
    let meta = snapshot.mut_metadata();
    meta.index = stored.index;
    meta.term = stored.term;
    meta.set_conf_state(conf_state);
    Ok(storage.wl().apply_snapshot(snapshot)?)
}

fn raft_id(node_id: i32) -> u64 {
    node_id as u64 + 1
}

fn node_id(raft_id: u64) -> i32 {
    (raft_id - 1) as i32
}

fn controller_of(leader: u64) -> i32 {
    if leader == raft::INVALID_ID {
        -1
    } else {
        node_id(leader)
    }
}
