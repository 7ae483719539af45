//! The classic group protocol of one group, as a pure state machine: no I/O, no clock, no tasks. Every call takes
//! `now` (milliseconds on a monotonic clock) and reports what must happen next through [`Effects`]: join and sync
//! answers to deliver to members that were waiting, and whether the group's metadata record must be written.
//! The coordinator turns those into oneshot replies and log appends; the tests drive the machine directly.
//!
//! States and transitions follow Kafka's `GroupCoordinator`:
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / deadline──▶ CompletingRebalance ──leader sync──▶ Stable
//!   ▲                    ▲   │ (no member left)                      │ member joins, leaves, expires │
//!   └────────────────────┼───┘                                       ▼                               ▼
//!                        └────────────────────────────── PreparingRebalance ◀────────────────────────┘
//! ```
//! Deadlines: a member's session (refreshed by heartbeats, joins, syncs and commits; not running while it waits in
//! a join), a KIP-394 pending member id (session timeout), and the join phase (the largest rebalance timeout of the
//! members; the first rebalance of an empty group waits `initial_rebalance_delay_ms`, extended as members arrive).
//! [`Group::next_deadline`] is what the coordinator arms a timer for; an idle group has none.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::codes::*;
use super::records::{GroupValue, MemberValue, OffsetValue};
use crate::codes::NONE;

/// Broker-wide bounds of the group protocol.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub session_timeout_min_ms: u64,
    pub session_timeout_max_ms: u64,
    pub initial_rebalance_delay_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl Phase {
    /// The state name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: bool,
    awaiting_sync: bool,
    session_deadline_ms: u64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A JoinGroup request, decoded.
#[derive(Clone, Debug)]
pub struct JoinArgs {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a member without id first gets MEMBER_ID_REQUIRED and an id to rejoin with.
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members, with their metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(error: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// An answer to a member that waits in a JoinGroup or SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    Join {
        member_id: String,
        result: JoinResult,
    },
    Sync {
        member_id: String,
        error: i16,
        assignment: Bytes,
    },
}

/// What a step asks the coordinator to do.
#[derive(Debug, Default)]
pub struct Effects {
    pub completions: Vec<Completion>,
    /// The group's metadata changed in a way that must survive a restart: write its record.
    pub persist: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum JoinStep {
    Reply(JoinResult),
    /// The answer comes later as a [`Completion::Join`] for this member id.
    Wait(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SyncStep {
    Reply(i16, Bytes),
    Wait,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub phase: Phase,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member is the leader of a new generation when the old leader left.
    pub members: Vec<Member>,
    /// KIP-394 member ids handed out and not yet used to join, with their expiry.
    pending: HashMap<String, u64>,
    /// Static members: group.instance.id -> member id.
    statics: HashMap<String, String>,
    join_deadline_ms: u64,
    /// Set while the first rebalance of an empty group waits for more members.
    initial_delay: Option<InitialDelay>,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
}

#[derive(Clone, Copy, Debug)]
struct InitialDelay {
    started_ms: u64,
    rebalance_timeout_ms: u64,
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_owned(),
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            join_deadline_ms: 0,
            initial_delay: None,
            offsets: BTreeMap::new(),
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// KIP-345: a static member's request must carry the member id the instance id is registered with.
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|i| self.statics.get(i)) {
            Some(registered) => registered != member_id,
            None => false,
        }
    }

    /// The earliest moment something times out; `None` when nothing can (an idle or empty group).
    pub fn next_deadline(&self) -> Option<u64> {
        let sessions = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.session_deadline_ms);
        let join = (self.phase == Phase::PreparingRebalance).then_some(self.join_deadline_ms);
        sessions
            .chain(self.pending.values().copied())
            .chain(join)
            .min()
    }

    // ---- JoinGroup

    pub fn join(
        &mut self,
        now: u64,
        limits: &Limits,
        args: JoinArgs,
        fx: &mut Effects,
    ) -> JoinStep {
        let session = args.session_timeout_ms;
        if session < 0
            || (session as u64) < limits.session_timeout_min_ms
            || (session as u64) > limits.session_timeout_max_ms
        {
            return JoinStep::Reply(JoinResult::error(INVALID_SESSION_TIMEOUT, &args.member_id));
        }
        if !self.supports(&args.protocol_type, &args.protocols) {
            return JoinStep::Reply(JoinResult::error(
                INCONSISTENT_GROUP_PROTOCOL,
                &args.member_id,
            ));
        }
        if args.member_id.is_empty() {
            self.join_new(now, limits, args, fx)
        } else {
            self.join_known(now, limits, args, fx)
        }
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.iter().all(|m| m.metadata_has(name)))
    }

    fn join_new(
        &mut self,
        now: u64,
        limits: &Limits,
        args: JoinArgs,
        fx: &mut Effects,
    ) -> JoinStep {
        let prefix = args.instance_id.as_deref().unwrap_or(&args.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = args.instance_id.clone() {
            if let Some(old_id) = self.statics.get(&instance).cloned() {
                return self.replace_static(now, limits, old_id, new_id, args, fx);
            }
            self.statics.insert(instance, new_id.clone());
        } else if args.require_known_member_id {
            let deadline = now + args.session_timeout_ms as u64;
            self.pending.insert(new_id.clone(), deadline);
            return JoinStep::Reply(JoinResult::error(MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member(now, limits, new_id.clone(), args, fx);
        JoinStep::Wait(new_id)
    }

    fn join_known(
        &mut self,
        now: u64,
        limits: &Limits,
        args: JoinArgs,
        fx: &mut Effects,
    ) -> JoinStep {
        let id = args.member_id.clone();
        if self.pending.remove(&id).is_some() {
            self.add_member(now, limits, id.clone(), args, fx);
            return JoinStep::Wait(id);
        }
        if self.fenced(&id, args.instance_id.as_deref()) {
            return JoinStep::Reply(JoinResult::error(FENCED_INSTANCE_ID, &id));
        }
        let Some(member) = self.member(&id) else {
            return JoinStep::Reply(JoinResult::error(UNKNOWN_MEMBER_ID, &id));
        };
        let same_protocols = member.protocols == args.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.phase {
            Phase::Empty => JoinStep::Reply(JoinResult::error(UNKNOWN_MEMBER_ID, &id)),
            Phase::CompletingRebalance | Phase::Stable
                if same_protocols && (self.phase == Phase::CompletingRebalance || !is_leader) =>
            {
                // A rejoin that changes nothing: the current generation stands.
                let result = self.join_result(&id);
                JoinStep::Reply(result)
            }
            _ => {
                self.update_member(now, args);
                if self.phase == Phase::PreparingRebalance {
                    self.try_complete_join(now, fx);
                } else {
                    self.prepare_rebalance(now, limits, fx);
                }
                JoinStep::Wait(id)
            }
        }
    }

    /// A static member came back with a new process (no member id): it takes over the old member's place.
    fn replace_static(
        &mut self,
        now: u64,
        limits: &Limits,
        old_id: String,
        new_id: String,
        mut args: JoinArgs,
        fx: &mut Effects,
    ) -> JoinStep {
        args.member_id = new_id.clone();
        let instance = args.instance_id.clone().expect("static member");
        self.statics.insert(instance, new_id.clone());
        let Some(old) = self.member_mut(&old_id) else {
            self.add_member(now, limits, new_id.clone(), args, fx);
            return JoinStep::Wait(new_id);
        };
        let (was_joining, was_syncing) = (old.awaiting_join, old.awaiting_sync);
        let same_protocols = old.protocols == args.protocols;
        old.id = new_id.clone();
        old.awaiting_join = false;
        old.awaiting_sync = false;
        if was_joining {
            fx.completions.push(Completion::Join {
                member_id: old_id.clone(),
                result: JoinResult::error(FENCED_INSTANCE_ID, &old_id),
            });
        }
        if was_syncing {
            fx.completions.push(Completion::Sync {
                member_id: old_id.clone(),
                error: FENCED_INSTANCE_ID,
                assignment: Bytes::new(),
            });
        }
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.update_member(now, args);
        if self.phase == Phase::Stable && same_protocols && !was_leader {
            fx.persist = true;
            return JoinStep::Reply(self.join_result(&new_id));
        }
        match self.phase {
            Phase::PreparingRebalance => self.try_complete_join(now, fx),
            _ => self.prepare_rebalance(now, limits, fx),
        }
        JoinStep::Wait(new_id)
    }

    fn add_member(
        &mut self,
        now: u64,
        limits: &Limits,
        id: String,
        args: JoinArgs,
        fx: &mut Effects,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let rebalance_timeout_ms = rebalance_timeout(&args);
        self.members.push(Member {
            id,
            instance_id: args.instance_id,
            client_id: args.client_id,
            client_host: args.client_host,
            session_timeout_ms: args.session_timeout_ms as u64,
            rebalance_timeout_ms,
            protocols: args.protocols,
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            session_deadline_ms: now + args.session_timeout_ms as u64,
        });
        match (self.phase, self.initial_delay) {
            (Phase::PreparingRebalance, Some(delay)) => {
                // Kafka's InitialDelayedJoin: every arrival buys the others one more delay, up to the timeout.
                let cap = delay.started_ms + delay.rebalance_timeout_ms.max(rebalance_timeout_ms);
                self.join_deadline_ms = (now + limits.initial_rebalance_delay_ms).min(cap);
            }
            (Phase::PreparingRebalance, None) => self.try_complete_join(now, fx),
            _ => self.prepare_rebalance(now, limits, fx),
        }
    }

    fn update_member(&mut self, now: u64, args: JoinArgs) {
        let timeout = rebalance_timeout(&args);
        let Some(member) = self.member_mut(&args.member_id) else {
            return;
        };
        member.protocols = args.protocols;
        member.client_id = args.client_id;
        member.client_host = args.client_host;
        member.session_timeout_ms = args.session_timeout_ms as u64;
        member.rebalance_timeout_ms = timeout;
        member.awaiting_join = true;
        member.session_deadline_ms = now + member.session_timeout_ms;
    }

    fn prepare_rebalance(&mut self, now: u64, limits: &Limits, fx: &mut Effects) {
        if self.phase == Phase::CompletingRebalance {
            for m in self.members.iter_mut().filter(|m| m.awaiting_sync) {
                m.awaiting_sync = false;
                fx.completions.push(Completion::Sync {
                    member_id: m.id.clone(),
                    error: REBALANCE_IN_PROGRESS,
                    assignment: Bytes::new(),
                });
            }
        }
        let longest = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        let from_empty = self.phase == Phase::Empty;
        self.phase = Phase::PreparingRebalance;
        if from_empty && limits.initial_rebalance_delay_ms > 0 {
            self.initial_delay = Some(InitialDelay {
                started_ms: now,
                rebalance_timeout_ms: longest,
            });
            self.join_deadline_ms = now + limits.initial_rebalance_delay_ms.min(longest.max(1));
        } else {
            self.initial_delay = None;
            self.join_deadline_ms = now + longest;
            self.try_complete_join(now, fx);
        }
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.awaiting_join)
    }

    fn try_complete_join(&mut self, now: u64, fx: &mut Effects) {
        if self.phase != Phase::PreparingRebalance {
            return;
        }
        let due = now >= self.join_deadline_ms;
        if due || (self.initial_delay.is_none() && self.all_joined()) {
            self.complete_join(now, fx);
        }
    }

    /// Ends the join phase: members that did not rejoin are out, the generation advances.
    fn complete_join(&mut self, now: u64, fx: &mut Effects) {
        self.initial_delay = None;
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.generation += 1;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.leader = None;
            fx.persist = true;
            return;
        }
        self.phase = Phase::CompletingRebalance;
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = Some(self.members[0].id.clone());
        }
        for m in &mut self.members {
            m.awaiting_join = false;
            m.session_deadline_ms = now + m.session_timeout_ms;
        }
        let ids: Vec<String> = self.members.iter().map(|m| m.id.clone()).collect();
        for id in ids {
            let result = self.join_result(&id);
            fx.completions.push(Completion::Join {
                member_id: id,
                result,
            });
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.iter().all(|m| m.metadata_has(name)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in &self.members {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == name) {
                    v.0 += 1;
                }
            }
        }
        // Ties go to the protocol the first member prefers.
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .into_iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| c.clone())
    }

    fn join_result(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .iter()
                .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_owned(),
            members,
        }
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(i) = self.members.iter().position(|m| m.id == id) {
            let m = self.members.remove(i);
            if let Some(instance) = m.instance_id {
                if self.statics.get(&instance).map(String::as_str) == Some(id) {
                    self.statics.remove(&instance);
                }
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
    }

    // ---- SyncGroup

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        now: u64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        fx: &mut Effects,
    ) -> SyncStep {
        if self.fenced(member_id, instance_id) {
            return SyncStep::Reply(FENCED_INSTANCE_ID, Bytes::new());
        }
        if self.member(member_id).is_none() {
            return SyncStep::Reply(UNKNOWN_MEMBER_ID, Bytes::new());
        }
        if generation != self.generation {
            return SyncStep::Reply(ILLEGAL_GENERATION, Bytes::new());
        }
        let mismatched = |asked: Option<&str>, ours: &Option<String>| {
            asked.is_some_and(|a| Some(a) != ours.as_deref())
        };
        if mismatched(protocol_type, &self.protocol_type)
            || mismatched(protocol_name, &self.protocol)
        {
            return SyncStep::Reply(INCONSISTENT_GROUP_PROTOCOL, Bytes::new());
        }
        let is_leader = self.leader.as_deref() == Some(member_id);
        let phase = self.phase;
        let member = self.member_mut(member_id).expect("checked above");
        member.session_deadline_ms = now + member.session_timeout_ms;
        match phase {
            Phase::Empty => SyncStep::Reply(UNKNOWN_MEMBER_ID, Bytes::new()),
            Phase::PreparingRebalance => SyncStep::Reply(REBALANCE_IN_PROGRESS, Bytes::new()),
            Phase::Stable => SyncStep::Reply(NONE, member.assignment.clone()),
            Phase::CompletingRebalance => {
                member.awaiting_sync = true;
                if is_leader {
                    self.complete_sync(assignments, fx);
                }
                SyncStep::Wait
            }
        }
    }

    /// The leader's assignment ends the rebalance: every member waiting in SyncGroup gets its bytes, unchanged.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, fx: &mut Effects) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in &mut self.members {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
            if m.awaiting_sync {
                m.awaiting_sync = false;
                fx.completions.push(Completion::Sync {
                    member_id: m.id.clone(),
                    error: NONE,
                    assignment: m.assignment.clone(),
                });
            }
        }
        self.phase = Phase::Stable;
        fx.persist = true;
    }

    /// A member stopped waiting for its SyncGroup answer (its wait timed out).
    pub fn abandon_sync(&mut self, member_id: &str) {
        if let Some(m) = self.member_mut(member_id) {
            m.awaiting_sync = false;
        }
    }

    // ---- Heartbeat, LeaveGroup, OffsetCommit checks

    pub fn heartbeat(
        &mut self,
        now: u64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if let Err(code) = self.touch_member(now, member_id, instance_id, generation) {
            return code;
        }
        match self.phase {
            Phase::Empty => UNKNOWN_MEMBER_ID,
            Phase::PreparingRebalance => REBALANCE_IN_PROGRESS,
            Phase::CompletingRebalance | Phase::Stable => NONE,
        }
    }

    /// One member of a LeaveGroup; `member_id` may be empty for a static member named by `instance_id`.
    pub fn leave(
        &mut self,
        now: u64,
        limits: &Limits,
        member_id: &str,
        instance_id: Option<&str>,
        fx: &mut Effects,
    ) -> i16 {
        let id = match instance_id {
            Some(instance) => match self.statics.get(instance) {
                None => return UNKNOWN_MEMBER_ID,
                Some(registered) if !member_id.is_empty() && registered != member_id => {
                    return FENCED_INSTANCE_ID
                }
                Some(registered) => registered.clone(),
            },
            None => member_id.to_owned(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now, fx);
            return NONE;
        }
        if self.member(&id).is_none() {
            return UNKNOWN_MEMBER_ID;
        }
        self.drop_member(now, limits, &id, fx);
        NONE
    }

    /// Removes a member that left or expired, answering its waits, and moves the group on.
    fn drop_member(&mut self, now: u64, limits: &Limits, id: &str, fx: &mut Effects) {
        if let Some(m) = self.member(id) {
            if m.awaiting_join {
                fx.completions.push(Completion::Join {
                    member_id: id.to_owned(),
                    result: JoinResult::error(UNKNOWN_MEMBER_ID, id),
                });
            }
            if m.awaiting_sync {
                fx.completions.push(Completion::Sync {
                    member_id: id.to_owned(),
                    error: UNKNOWN_MEMBER_ID,
                    assignment: Bytes::new(),
                });
            }
        }
        self.remove_member(id);
        match self.phase {
            Phase::Stable | Phase::CompletingRebalance => self.prepare_rebalance(now, limits, fx),
            Phase::PreparingRebalance => self.try_complete_join(now, fx),
            Phase::Empty => {}
        }
    }

    /// OffsetCommit's membership check; generation -1 with no member is a simple consumer (assign()).
    pub fn check_commit(
        &mut self,
        now: u64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if generation < 0 && member_id.is_empty() && self.members.is_empty() {
            return NONE;
        }
        if let Err(code) = self.touch_member(now, member_id, instance_id, generation) {
            return code;
        }
        if self.phase == Phase::CompletingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        NONE
    }

    /// The checks a request from a current member passes, in Kafka's order: not fenced, known, of the current
    /// generation. Passing them also proves the member alive, so its session deadline moves on.
    fn touch_member(
        &mut self,
        now: u64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.fenced(member_id, instance_id) {
            return Err(FENCED_INSTANCE_ID);
        }
        let current = self.generation;
        let member = self.member_mut(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        if generation != current {
            return Err(ILLEGAL_GENERATION);
        }
        member.session_deadline_ms = now + member.session_timeout_ms;
        Ok(())
    }

    // ---- time

    /// Applies every deadline that has passed: expired sessions and pending ids, the end of the join phase.
    pub fn expire(&mut self, now: u64, limits: &Limits, fx: &mut Effects) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join && !m.awaiting_sync && m.session_deadline_ms <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::debug!(group = %self.id, member = %id, "member session expired");
            self.drop_member(now, limits, &id, fx);
        }
        self.try_complete_join(now, fx);
    }

    // ---- persistence

    pub fn to_value(&self, now_wall_ms: i64) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: now_wall_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms as i32,
                    session_timeout_ms: m.session_timeout_ms as i32,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its last record: Stable with its members (each with a fresh session), or Empty.
    pub fn restore(&mut self, now: u64, value: GroupValue) {
        self.generation = value.generation;
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.pending.clear();
        self.statics.clear();
        self.initial_delay = None;
        let protocol = value.protocol.clone().unwrap_or_default();
        self.members = value
            .members
            .into_iter()
            .map(|m| {
                if let Some(instance) = &m.instance_id {
                    self.statics.insert(instance.clone(), m.member_id.clone());
                }
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms.max(0) as u64,
                    rebalance_timeout_ms: m.rebalance_timeout_ms.max(0) as u64,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    awaiting_join: false,
                    awaiting_sync: false,
                    session_deadline_ms: now + m.session_timeout_ms.max(0) as u64,
                }
            })
            .collect();
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.leader = None;
        } else {
            self.phase = Phase::Stable;
            self.protocol = value.protocol;
            self.leader = value.leader;
        }
    }
}

impl Member {
    fn metadata_has(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }
}

/// JoinGroup v0 has no rebalance timeout: the session timeout serves for both, as in Kafka.
fn rebalance_timeout(args: &JoinArgs) -> u64 {
    if args.rebalance_timeout_ms > 0 {
        args.rebalance_timeout_ms as u64
    } else {
        args.session_timeout_ms.max(0) as u64
    }
}
