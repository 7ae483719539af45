//! Deterministic harness for the metadata node (raft-rs `harness/` style): no executor, no threads, no timers;
//! the test decides every tick, proposal and restart and checks exactly what the shards would receive.

use std::path::Path;
use std::sync::Arc;

use raft::eraftpb::HardState;

use crate::channels::{Proposal, RaftEvent};
use crate::node::{MetadataNode, NodeConfig, Output};
use crate::state::{
    BrokerMeta, CommandOutcome, MetadataCommand, MetadataSnapshot, NewTopic, TopicOutcome,
};
use crate::{hard_state_file, log_file, test_dir};

fn open(dir: &Path, snapshot_every_entries: u64) -> MetadataNode {
    MetadataNode::open(NodeConfig {
        node_id: 0,
        dir: dir.to_owned(),
        advertised_host: "localhost".into(),
        advertised_port: 9092,
        shard_count: 2,
        snapshot_every_entries,
    })
    .expect("open")
}

/// Opens the node and elects it, returning what the shards were sent.
fn start(dir: &Path, snapshot_every_entries: u64) -> (MetadataNode, Vec<Output>) {
    let mut node = open(dir, snapshot_every_entries);
    let mut out = Vec::new();
    node.campaign().expect("campaign");
    node.process(&mut out).expect("process");
    assert!(
        node.is_leader(),
        "a one-voter group elects itself in the first Ready"
    );
    (node, out)
}

fn create(names: &[&str], partitions: i32) -> MetadataCommand {
    let topics = names
        .iter()
        .map(|n| NewTopic {
            name: (*n).into(),
            partitions,
            replication_factor: -1,
            configs: Default::default(),
        })
        .collect();
    MetadataCommand::CreateTopics {
        topics,
        validate_only: false,
    }
}

fn propose(node: &mut MetadataNode, shard: u32, id: u64, command: MetadataCommand) -> Vec<Output> {
    let mut out = Vec::new();
    node.propose(shard, Proposal { id, command }, &mut out);
    node.process(&mut out).expect("process");
    out
}

fn last_metadata(out: &[Output]) -> Arc<MetadataSnapshot> {
    out.iter()
        .rev()
        .find_map(|o| match o {
            Output::Metadata(s) => Some(s.clone()),
            Output::Reply { .. } => None,
        })
        .expect("a metadata output")
}

fn topic_outcomes(out: &[Output], want_shard: u32, want_id: u64) -> Vec<TopicOutcome> {
    out.iter()
        .find_map(|o| match o {
            Output::Reply {
                shard,
                event:
                    RaftEvent::Applied {
                        id,
                        outcome: CommandOutcome::Topics(t),
                    },
            } if *shard == want_shard && *id == want_id => Some(t.clone()),
            _ => None,
        })
        .expect("an Applied reply with topic outcomes")
}

/// The state without the controller, which is not part of the state machine.
fn state_of(snapshot: &MetadataSnapshot) -> MetadataSnapshot {
    MetadataSnapshot {
        controller_id: -1,
        ..snapshot.clone()
    }
}

#[test]
fn first_start_publishes_before_the_election_then_elects_and_registers() {
    let dir = test_dir();
    let node = open(dir.path(), 1000);
    let recovered = node.published();
    assert_eq!((recovered.version, recovered.controller_id), (0, -1));
    assert!(!recovered.cluster_id.is_empty());
    drop(node);

    let (node, out) = start(dir.path(), 1000);
    let snapshot = last_metadata(&out);
    assert_eq!(snapshot.controller_id, 0);
    assert_eq!(
        snapshot.cluster_id, recovered.cluster_id,
        "the cluster id is drawn once"
    );
    assert_eq!(
        snapshot.brokers,
        vec![BrokerMeta {
            node_id: 0,
            host: "localhost".into(),
            port: 9092,
            shard_count: 2
        }]
    );
    // Versions only grow, and nothing is addressed to a shard: nobody proposed.
    let versions: Vec<u64> = out
        .iter()
        .filter_map(|o| {
            if let Output::Metadata(s) = o {
                Some(s.version)
            } else {
                None
            }
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
    assert!(out.iter().all(|o| matches!(o, Output::Metadata(_))));
    assert_eq!(node.published(), snapshot);
}

#[test]
fn a_proposal_is_answered_after_the_snapshot_that_contains_it() {
    let dir = test_dir();
    let (mut node, _) = start(dir.path(), 1000);
    let out = propose(&mut node, 1, 7, create(&["orders", "bad name"], 3));
    assert_eq!(
        out.len(),
        2,
        "one snapshot for every shard, one reply for the proposer: {out:?}"
    );
    let Output::Metadata(snapshot) = &out[0] else {
        panic!("the snapshot comes first: {out:?}")
    };
    let outcomes = topic_outcomes(&out, 1, 7);
    assert_eq!(
        outcomes.iter().map(|o| o.error_code).collect::<Vec<_>>(),
        vec![0, 17]
    );
    let topic = snapshot
        .topic("orders")
        .expect("in the snapshot sent before the reply");
    assert_eq!(topic.topic_id, outcomes[0].topic_id);
    assert_ne!(topic.topic_id, [0; 16]);
    assert_eq!(
        snapshot
            .topic_by_id(topic.topic_id)
            .map(|t| t.name.as_str()),
        Some("orders")
    );
    assert_eq!(topic.partitions.len(), 3);
    assert!(topic
        .partitions
        .iter()
        .all(|p| p.shard < 2 && p.leader == 0));

    let out = propose(
        &mut node,
        0,
        8,
        MetadataCommand::DeleteTopics {
            names: vec!["orders".into(), "x".into()],
        },
    );
    assert_eq!(
        topic_outcomes(&out, 0, 8)
            .iter()
            .map(|o| o.error_code)
            .collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert!(last_metadata(&out).topics.is_empty());
}

#[test]
fn proposals_before_the_election_are_rejected() {
    let dir = test_dir();
    let mut node = open(dir.path(), 1000);
    let mut out = Vec::new();
    node.propose(
        0,
        Proposal {
            id: 1,
            command: create(&["t"], 1),
        },
        &mut out,
    );
    assert!(matches!(
        &out[..],
        [Output::Reply {
            shard: 0,
            event: RaftEvent::Rejected { id: 1, .. }
        }]
    ));
}

#[test]
fn restart_recovers_the_same_metadata_and_does_not_register_again() {
    let dir = test_dir();
    let (mut node, _) = start(dir.path(), 1000);
    propose(&mut node, 0, 1, create(&["a", "b"], 4));
    let before = node.published();
    drop(node);

    let recovered = open(dir.path(), 1000).published();
    assert_eq!(
        state_of(&recovered),
        state_of(&before),
        "recovered before any election"
    );
    let (node, _) = start(dir.path(), 1000);
    let after = node.published();
    // The new term's empty entry is the only new entry: the broker was already registered as configured.
    assert_eq!(after.version, before.version + 1);
    assert_eq!(
        (after.brokers.clone(), after.topics.clone()),
        (before.brokers.clone(), before.topics.clone())
    );
}

#[test]
fn an_acknowledged_entry_whose_commit_was_not_yet_durable_is_applied_again_with_the_same_ids_and_no_reply(
) {
    let dir = test_dir();
    let (mut node, _) = start(dir.path(), 1000);
    let commit_before = node.published().version;
    let out = propose(&mut node, 1, 1, create(&["t"], 2));
    let created = topic_outcomes(&out, 1, 1)[0].topic_id;
    drop(node);
    // Crash after the entry was durable in the log but before the new commit index reached the hard state file.
    let mut hs: HardState = hard_state_file::load(dir.path())
        .expect("load")
        .expect("exists");
    hs.commit = commit_before;
    hard_state_file::store(dir.path(), &hs).expect("store");

    let recovered = open(dir.path(), 1000).published();
    assert!(
        recovered.topic("t").is_none(),
        "not committed as far as the disk knows"
    );
    let (node, out) = start(dir.path(), 1000);
    assert_eq!(
        node.published().topic("t").map(|t| t.topic_id),
        Some(created)
    );
    assert!(
        out.iter().all(|o| matches!(o, Output::Metadata(_))),
        "an entry of an earlier run answers no one"
    );
}

#[test]
fn snapshots_compact_the_log_and_restart_from_snapshot_plus_log() {
    let dir = test_dir();
    let (mut node, _) = start(dir.path(), 3);
    for i in 0..7 {
        propose(&mut node, 0, i, create(&[&format!("t{i}")], 1));
    }
    let before = node.published();
    drop(node);
    let log_entries = log_file::LogFile::open(dir.path()).expect("log").1;
    assert!(
        log_entries.len() < 3,
        "the log keeps only the entries after the snapshot: {}",
        log_entries.len()
    );
    assert!(log_entries.iter().all(|e| e.index > before.version - 3));

    let recovered = open(dir.path(), 3).published();
    assert_eq!(state_of(&recovered), state_of(&before));
    assert_eq!(recovered.topics.len(), 7);
}

#[test]
fn ticks_keep_a_lone_leader_leading() {
    let dir = test_dir();
    let (mut node, _) = start(dir.path(), 1000);
    let version = node.published().version;
    let mut out = Vec::new();
    for _ in 0..50 {
        node.tick();
        node.process(&mut out).expect("process");
    }
    assert!(node.is_leader());
    assert!(out.is_empty(), "idle ticks publish nothing: {out:?}");
    assert_eq!(node.published().version, version);
}
