//! The group protocol driven step by step with injected time, and the store replayed from a real partition log.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;

use super::codes::*;
use super::group_partition;
use super::records::{GroupRecord, OffsetValue};
use super::state::*;
use crate::codes::NONE;

const LIMITS: Limits = Limits {
    session_timeout_min_ms: 1_000,
    session_timeout_max_ms: 60_000,
    initial_rebalance_delay_ms: 0,
};
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn args(member_id: &str, protocols: &[&str]) -> JoinArgs {
    JoinArgs {
        member_id: member_id.to_owned(),
        instance_id: None,
        client_id: "client".into(),
        client_host: String::new(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

/// KIP-394 two-step join; returns the member id (the join itself may be waiting).
fn join_new(g: &mut Group, now: u64, limits: &Limits, fx: &mut Effects) -> String {
    let JoinStep::Reply(first) = g.join(now, limits, args("", &["range"]), fx) else {
        panic!("a new member first gets MEMBER_ID_REQUIRED")
    };
    assert_eq!(first.error, MEMBER_ID_REQUIRED);
    assert!(first.member_id.starts_with("client-"));
    match g.join(now, limits, args(&first.member_id, &["range"]), fx) {
        JoinStep::Wait(id) => id,
        other => panic!("expected to wait, got {other:?}"),
    }
}

fn joined(fx: &Effects) -> HashMap<String, JoinResult> {
    fx.completions
        .iter()
        .filter_map(|c| match c {
            Completion::Join { member_id, result } => Some((member_id.clone(), result.clone())),
            _ => None,
        })
        .collect()
}

fn synced(fx: &Effects) -> HashMap<String, (i16, Bytes)> {
    fx.completions
        .iter()
        .filter_map(|c| match c {
            Completion::Sync {
                member_id,
                error,
                assignment,
            } => Some((member_id.clone(), (*error, assignment.clone()))),
            _ => None,
        })
        .collect()
}

/// A Stable group of `n` members (all joined before the first rebalance completed), generation 1.
fn stable_group(n: usize) -> (Group, Vec<String>) {
    let limits = Limits {
        initial_rebalance_delay_ms: 100,
        ..LIMITS
    };
    let mut g = Group::new("g");
    let mut fx = Effects::default();
    let ids: Vec<String> = (0..n)
        .map(|_| join_new(&mut g, 0, &limits, &mut fx))
        .collect();
    assert!(
        fx.completions.is_empty(),
        "the initial delay holds the join"
    );
    assert_eq!(g.next_deadline(), Some(100));
    g.expire(100, &limits, &mut fx);
    let results = joined(&fx);
    assert_eq!(results.len(), n);
    assert_eq!(g.phase, Phase::CompletingRebalance);
    let leader = &ids[0];
    assert_eq!(
        results[leader].members.len(),
        n,
        "the leader gets every member"
    );
    for id in &ids[1..] {
        assert!(results[id].members.is_empty());
        assert_eq!(&results[id].leader, leader);
        assert_eq!(results[id].generation, 1);
    }
    let mut fx = Effects::default();
    for id in &ids[1..] {
        let step = g.sync(
            101,
            id,
            None,
            1,
            Some("consumer"),
            Some("range"),
            vec![],
            &mut fx,
        );
        assert_eq!(step, SyncStep::Wait);
    }
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("assign-{id}"))))
        .collect();
    assert_eq!(
        g.sync(102, leader, None, 1, None, None, assignments, &mut fx),
        SyncStep::Wait
    );
    assert!(fx.persist, "the assignment is stored before the answers");
    let answers = synced(&fx);
    for id in &ids {
        assert_eq!(answers[id], (NONE, Bytes::from(format!("assign-{id}"))));
    }
    assert_eq!(g.phase, Phase::Stable);
    (g, ids)
}

#[test]
fn three_members_join_one_generation_and_get_their_assignment_bytes_unchanged() {
    let (g, ids) = stable_group(3);
    assert_eq!(g.generation, 1);
    assert_eq!(g.members.len(), 3);
    assert_eq!(g.leader.as_deref(), Some(ids[0].as_str()));
    assert_eq!(g.protocol.as_deref(), Some("range"));
}

#[test]
fn a_single_member_without_delay_completes_the_join_at_once() {
    let mut g = Group::new("g");
    let mut fx = Effects::default();
    let id = join_new(&mut g, 0, &LIMITS, &mut fx);
    let r = &joined(&fx)[&id];
    assert_eq!(
        (r.error, r.generation, r.leader.as_str()),
        (NONE, 1, id.as_str())
    );
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].2, Bytes::from("meta-range"));
}

#[test]
fn session_timeout_outside_the_broker_bounds_is_refused() {
    let mut g = Group::new("g");
    let mut fx = Effects::default();
    for timeout in [999, 60_001, -1] {
        let mut a = args("", &["range"]);
        a.session_timeout_ms = timeout;
        let JoinStep::Reply(r) = g.join(0, &LIMITS, a, &mut fx) else {
            panic!()
        };
        assert_eq!(r.error, INVALID_SESSION_TIMEOUT);
    }
    assert!(g.is_empty());
}

#[test]
fn a_new_member_triggers_a_rebalance_that_waits_for_the_others() {
    let (mut g, ids) = stable_group(2);
    let mut fx = Effects::default();
    let newcomer = join_new(&mut g, 1_000, &LIMITS, &mut fx);
    assert_eq!(g.phase, Phase::PreparingRebalance);
    assert!(joined(&fx).is_empty());
    assert_eq!(g.heartbeat(1_001, &ids[1], None, 1), REBALANCE_IN_PROGRESS);
    assert_eq!(
        g.sync(1_001, &ids[1], None, 1, None, None, vec![], &mut fx),
        SyncStep::Reply(REBALANCE_IN_PROGRESS, Bytes::new())
    );
    for id in &ids {
        assert!(matches!(
            g.join(1_002, &LIMITS, args(id, &["range"]), &mut fx),
            JoinStep::Wait(_)
        ));
    }
    let results = joined(&fx);
    assert_eq!(results.len(), 3);
    assert!(results.values().all(|r| r.generation == 2));
    assert_eq!(
        results[&ids[0]].members.len(),
        3,
        "the old leader stays leader"
    );
    assert!(results.contains_key(&newcomer));
    assert_eq!(g.heartbeat(1_003, &ids[1], None, 1), ILLEGAL_GENERATION);
    assert_eq!(g.heartbeat(1_003, &ids[1], None, 2), NONE);
    assert_eq!(g.heartbeat(1_003, "nobody", None, 2), UNKNOWN_MEMBER_ID);
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let (mut g, ids) = stable_group(2);
    let mut fx = Effects::default();
    assert!(matches!(
        g.join(
            1_000,
            &LIMITS,
            args(&ids[0], &["range", "roundrobin"]),
            &mut fx
        ),
        JoinStep::Wait(_)
    ));
    assert_eq!(
        g.next_deadline(),
        Some(101 + SESSION_MS as u64),
        "ids[1]'s session"
    );
    // ids[1] keeps heartbeating (so its session never lapses) but never rejoins.
    for now in [5_000, 14_000, 23_000] {
        assert_eq!(g.heartbeat(now, &ids[1], None, 1), REBALANCE_IN_PROGRESS);
    }
    assert_eq!(g.next_deadline(), Some(1_000 + REBALANCE_MS as u64));
    g.expire(1_000 + REBALANCE_MS as u64, &LIMITS, &mut fx);
    let results = joined(&fx);
    assert_eq!(results.len(), 1);
    assert_eq!(results[&ids[0]].generation, 2);
    assert_eq!(g.members.len(), 1);
}

#[test]
fn expired_sessions_rebalance_and_the_last_one_empties_the_group() {
    let (mut g, ids) = stable_group(2);
    let deadline = g.next_deadline().unwrap();
    assert_eq!(
        deadline,
        101 + SESSION_MS as u64,
        "sessions restart at each sync"
    );
    let mut fx = Effects::default();
    assert_eq!(g.heartbeat(5_000, &ids[0], None, 1), NONE);
    g.expire(deadline, &LIMITS, &mut fx);
    assert_eq!(g.members.len(), 1, "only the silent member expired");
    assert_eq!(g.phase, Phase::PreparingRebalance);
    assert_eq!(g.leader.as_deref(), Some(ids[0].as_str()));
    let mut fx = Effects::default();
    g.expire(5_000 + SESSION_MS as u64, &LIMITS, &mut fx);
    assert_eq!(g.phase, Phase::Empty);
    assert!(fx.persist, "an emptied group is stored");
    assert_eq!(g.generation, 2);
    assert_eq!(g.next_deadline(), None, "an empty group has no timer");
}

#[test]
fn leaving_members_rebalance_the_rest() {
    let (mut g, ids) = stable_group(3);
    let mut fx = Effects::default();
    assert_eq!(g.leave(500, &LIMITS, &ids[0], None, &mut fx), NONE);
    assert_eq!(
        g.leave(500, &LIMITS, &ids[0], None, &mut fx),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(g.phase, Phase::PreparingRebalance);
    for id in &ids[1..] {
        g.join(501, &LIMITS, args(id, &["range"]), &mut fx);
    }
    let results = joined(&fx);
    assert_eq!(results.len(), 2);
    assert_eq!(results[&ids[1]].leader, ids[1], "a new leader is chosen");
    assert_eq!(g.generation, 2);
}

#[test]
fn protocol_is_the_one_every_member_supports_and_mismatches_are_refused() {
    let limits = Limits {
        initial_rebalance_delay_ms: 10,
        ..LIMITS
    };
    let mut g = Group::new("g");
    let mut fx = Effects::default();
    for protocols in [&["range", "roundrobin"][..], &["roundrobin"][..]] {
        let mut a = args("", protocols);
        a.require_known_member_id = false;
        assert!(matches!(g.join(0, &limits, a, &mut fx), JoinStep::Wait(_)));
    }
    let mut a = args("", &["sticky"]);
    a.require_known_member_id = false;
    let JoinStep::Reply(r) = g.join(0, &limits, a, &mut fx) else {
        panic!()
    };
    assert_eq!(r.error, INCONSISTENT_GROUP_PROTOCOL);
    g.expire(10, &limits, &mut fx);
    assert_eq!(g.protocol.as_deref(), Some("roundrobin"));
    let leader = joined(&fx)
        .into_values()
        .find(|r| !r.members.is_empty())
        .unwrap();
    assert!(leader.members.iter().all(|m| m.2 == "meta-roundrobin"));
}

#[test]
fn a_static_member_restarting_fences_its_old_id() {
    let mut g = Group::new("g");
    let mut fx = Effects::default();
    let mut a = args("", &["range"]);
    a.instance_id = Some("inst-1".into());
    let JoinStep::Wait(old) = g.join(0, &LIMITS, a.clone(), &mut fx) else {
        panic!()
    };
    assert!(
        old.starts_with("inst-1-"),
        "static members need no second join"
    );
    g.sync(
        1,
        &old,
        Some("inst-1"),
        1,
        None,
        None,
        vec![(old.clone(), Bytes::from("x"))],
        &mut fx,
    );
    assert_eq!(g.phase, Phase::Stable);
    // The same instance comes back without a member id (a restarted process).
    let JoinStep::Wait(new) = g.join(100, &LIMITS, a, &mut fx) else {
        panic!()
    };
    assert_ne!(new, old);
    assert_eq!(
        g.heartbeat(101, &old, Some("inst-1"), 1),
        FENCED_INSTANCE_ID
    );
    let mut fx = Effects::default();
    assert_eq!(
        g.leave(102, &LIMITS, &old, Some("inst-1"), &mut fx),
        FENCED_INSTANCE_ID
    );
    assert_eq!(g.leave(102, &LIMITS, "", Some("inst-1"), &mut fx), NONE);
    assert_eq!(
        g.leave(102, &LIMITS, "", Some("inst-1"), &mut fx),
        UNKNOWN_MEMBER_ID
    );
}

#[test]
fn commits_check_membership_but_accept_simple_consumers() {
    let mut empty = Group::new("simple");
    assert_eq!(empty.check_commit(0, "", None, -1), NONE);
    let (mut g, ids) = stable_group(1);
    assert_eq!(g.check_commit(0, "", None, -1), UNKNOWN_MEMBER_ID);
    assert_eq!(g.check_commit(0, &ids[0], None, 0), ILLEGAL_GENERATION);
    assert_eq!(g.check_commit(0, &ids[0], None, 1), NONE);
}

#[test]
fn stored_group_restores_as_stable_with_members_and_assignments() {
    let (g, ids) = stable_group(2);
    let value = g.to_value(42);
    let mut back = Group::new("g");
    back.restore(1_000, value);
    assert_eq!(back.phase, Phase::Stable);
    assert_eq!(back.generation, 1);
    assert_eq!(back.leader, g.leader);
    assert_eq!(back.members.len(), 2);
    assert_eq!(
        back.members[1].assignment,
        Bytes::from(format!("assign-{}", ids[1]))
    );
    assert_eq!(back.heartbeat(1_001, &ids[1], None, 1), NONE);
    assert_eq!(back.next_deadline(), Some(1_000 + SESSION_MS as u64));
}

#[test]
fn group_partition_matches_kafka() {
    // Java: "hello".hashCode() == 99162322; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
    assert_eq!(group_partition("hello", 50), 99162322 % 50);
    assert_eq!(group_partition("polygenelubricants", 50), 0);
    assert_eq!(group_partition("", 50), 0);
    for id in ["a", "my-group", "ünïcode", "g-17"] {
        assert!((0..7).contains(&group_partition(id, 7)));
    }
}

fn run<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(0)
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("executor thread");
}

/// A fresh directory on disk (O_DIRECT does not work on tmpfs), removed by the test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tmp")
        .join(format!("group-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn replay_rebuilds_groups_and_offsets_with_tombstones_applied() {
    let dir = scratch_dir("replay");
    let path = dir.clone();
    run(move || async move {
        let log = pinlog_engine::PartitionLog::open(&path, pinlog_engine::LogConfig::default())
            .await
            .unwrap();
        let (g, _) = stable_group(2);
        let offset = |group: &str, partition, value: Option<i64>| GroupRecord::Offset {
            group: group.into(),
            topic: "t".into(),
            partition,
            value: value.map(|offset| OffsetValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 1,
            }),
        };
        let batches = [
            vec![GroupRecord::Group {
                group: "g".into(),
                value: Some(g.to_value(7)),
            }],
            vec![offset("g", 0, Some(10)), offset("g", 1, Some(20))],
            vec![offset("g", 0, Some(11)), offset("g", 1, None)],
            vec![offset("gone", 0, Some(5))],
            vec![
                offset("gone", 0, None),
                GroupRecord::Group {
                    group: "gone".into(),
                    value: None,
                },
            ],
        ];
        let mut last = 0;
        for batch in &batches {
            last = super::store::append(&log, 0, batch).unwrap();
        }
        log.wait_durable(last).await.unwrap();
        let mut groups = HashMap::new();
        let applied = super::store::replay(&log, 0, &mut groups).await.unwrap();
        assert_eq!(applied, 8);
        assert!(!groups.contains_key("gone"), "deleted groups stay deleted");
        let back = &groups["g"];
        assert_eq!(back.phase, Phase::Stable);
        assert_eq!(back.members.len(), 2);
        assert_eq!(back.offsets.len(), 1);
        assert_eq!(back.offsets[&("t".to_owned(), 0)].offset, 11);
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(dir).unwrap();
}
