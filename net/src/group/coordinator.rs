//! One shard's group coordinator: the groups of the `__consumer_offsets` partitions this shard owns.
//!
//! Each call runs a [`Group`] step under one short `RefCell` borrow (no `.await` inside), appends the record the
//! step asks for in that same borrow, then delivers the answers of members waiting in JoinGroup/SyncGroup through
//! oneshot channels and re-arms the group's timer. A group has a timer task only while [`Group::next_deadline`]
//! is `Some` (members with sessions, a join phase); an idle or empty group has none, so nothing scans idle groups.
//! Every wait of a caller is bounded ([`GroupCall::wait_bound`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::task::JoinHandle;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use pinlog_engine::PartitionLog;

use super::call::{GroupCall, GroupReply};
use super::codes::*;
use super::records::GroupRecord;
use super::state::{
    Completion, Effects, Group, JoinArgs, JoinResult, JoinStep, Limits, Phase, SyncStep,
};
use super::store;
use crate::codes::NONE;
use crate::context::NetConfig;
use crate::partition_ops::now_ms;

/// Kafka's "authorized operations not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// The coordinator's view of one `__consumer_offsets` partition.
pub(super) struct Slot {
    pub log: Rc<PartitionLog>,
    pub leader_epoch: i32,
    pub loaded: bool,
}

struct Armed {
    at: u64,
    task: glommio::Task<()>,
}

pub struct Coordinator {
    pub(super) limits: Limits,
    /// Bound on waits that are not a rebalance (durability of a commit, a follower's SyncGroup).
    pub(super) request_timeout: Duration,
    pub(super) offsets_partitions: i32,
    clock: Instant,
    pub(super) slots: RefCell<HashMap<i32, Slot>>,
    pub(super) groups: RefCell<HashMap<String, Group>>,
    joins: RefCell<HashMap<(String, String), oneshot::Sender<JoinResult>>>,
    syncs: RefCell<HashMap<(String, String), oneshot::Sender<SyncAnswer>>>,
    timers: RefCell<HashMap<String, Armed>>,
    me: Weak<Coordinator>,
}

/// A SyncGroup answer, and the log offset that must be durable before it may be sent.
struct SyncAnswer {
    error: i16,
    assignment: Bytes,
    durable: Option<i64>,
}

impl Coordinator {
    pub fn new(config: &NetConfig) -> Rc<Coordinator> {
        Rc::new_cyclic(|me| Coordinator {
            limits: Limits {
                session_timeout_min_ms: config.group_min_session_timeout.as_millis() as u64,
                session_timeout_max_ms: config.group_max_session_timeout.as_millis() as u64,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay.as_millis() as u64,
            },
            request_timeout: config.request_timeout,
            offsets_partitions: config.offsets_topic_partitions,
            clock: Instant::now(),
            slots: RefCell::new(HashMap::new()),
            groups: RefCell::new(HashMap::new()),
            joins: RefCell::new(HashMap::new()),
            syncs: RefCell::new(HashMap::new()),
            timers: RefCell::new(HashMap::new()),
            me: me.clone(),
        })
    }

    pub(super) fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Replays a partition this shard just opened. Calls for its groups answer COORDINATOR_LOAD_IN_PROGRESS
    /// until it is done. Loading a partition that is already loaded (or loading) does nothing.
    pub async fn load(&self, partition: i32, log: Rc<PartitionLog>, leader_epoch: i32) {
        if self.slots.borrow().contains_key(&partition) {
            return;
        }
        self.slots.borrow_mut().insert(
            partition,
            Slot {
                log: log.clone(),
                leader_epoch,
                loaded: false,
            },
        );
        let mut loaded = HashMap::new();
        match store::replay(&log, self.now(), &mut loaded).await {
            Ok(0) => tracing::debug!(partition, "consumer groups loaded (empty partition)"),
            Ok(records) => tracing::info!(
                partition,
                records,
                groups = loaded.len(),
                "consumer groups loaded"
            ),
            Err(err) => {
                tracing::error!(partition, %err, "cannot load consumer groups; the partition stays unavailable");
                self.slots.borrow_mut().remove(&partition);
                return;
            }
        }
        let ids: Vec<String> = loaded.keys().cloned().collect();
        self.groups.borrow_mut().extend(loaded);
        if let Some(slot) = self.slots.borrow_mut().get_mut(&partition) {
            slot.loaded = true;
        }
        for id in ids {
            self.rearm(&id);
        }
    }

    /// Serves one call for a group of `partition` (already open on this shard).
    pub async fn serve(
        &self,
        partition: i32,
        log: Rc<PartitionLog>,
        leader_epoch: i32,
        call: GroupCall,
        bound: Duration,
    ) -> GroupReply {
        if let GroupCall::List(states) = &call {
            return GroupReply::List(self.list(states));
        }
        self.load(partition, log, leader_epoch).await;
        let ready = self.slots.borrow().get(&partition).map(|s| s.loaded);
        match ready {
            Some(true) => {}
            Some(false) => return GroupReply::error_for(&call, COORDINATOR_LOAD_IN_PROGRESS),
            None => return GroupReply::error_for(&call, COORDINATOR_NOT_AVAILABLE),
        }
        match call {
            GroupCall::Join {
                request,
                version,
                client_id,
            } => GroupReply::Join(self.join(request, version, client_id, bound).await),
            GroupCall::Sync(r) => GroupReply::Sync(self.sync(r, bound).await),
            GroupCall::Heartbeat(r) => GroupReply::Heartbeat(self.heartbeat(r)),
            GroupCall::Leave(r) => GroupReply::Leave(self.leave(r).await),
            GroupCall::Commit(r) => GroupReply::Commit(self.commit(r).await),
            GroupCall::Fetch(r) => GroupReply::Fetch(self.fetch(r)),
            GroupCall::Describe(id) => GroupReply::Describe(self.describe(&id)),
            GroupCall::Delete(id) => GroupReply::Delete(self.delete(&id).await),
            GroupCall::OffsetDelete(r) => GroupReply::OffsetDelete(self.delete_offsets(r).await),
            GroupCall::List(_) => unreachable!("answered above"),
        }
    }

    /// The partition a group lives on and its slot's log; `None` if this shard does not hold it.
    pub(super) fn log_of(&self, group_id: &str) -> Option<(Rc<PartitionLog>, i32)> {
        let partition = super::group_partition(group_id, self.offsets_partitions);
        self.slots
            .borrow()
            .get(&partition)
            .map(|s| (s.log.clone(), s.leader_epoch))
    }

    /// Writes what a step asked for, hands the answers to the waiting members, re-arms the timer.
    /// Returns the offset to wait on when the group record was written, or the error of the write.
    fn finish(&self, group_id: &str, fx: Effects) -> Result<Option<i64>, i16> {
        let written = if fx.persist {
            self.persist_group(group_id).map(Some)
        } else {
            Ok(None)
        };
        for completion in fx.completions {
            match completion {
                Completion::Join { member_id, result } => {
                    let waiter = self
                        .joins
                        .borrow_mut()
                        .remove(&(group_id.to_owned(), member_id));
                    if let Some(tx) = waiter {
                        let _ = tx.send(result);
                    }
                }
                Completion::Sync {
                    member_id,
                    error,
                    assignment,
                } => {
                    let waiter = self
                        .syncs
                        .borrow_mut()
                        .remove(&(group_id.to_owned(), member_id));
                    if let Some(tx) = waiter {
                        let answer = match written {
                            Err(code) if error == NONE => SyncAnswer {
                                error: code,
                                assignment: Bytes::new(),
                                durable: None,
                            },
                            _ => SyncAnswer {
                                error,
                                assignment,
                                durable: written.ok().flatten(),
                            },
                        };
                        let _ = tx.send(answer);
                    }
                }
            }
        }
        self.rearm(group_id);
        written
    }

    fn persist_group(&self, group_id: &str) -> Result<i64, i16> {
        let Some((log, epoch)) = self.log_of(group_id) else {
            return Err(NOT_COORDINATOR);
        };
        let value = self
            .groups
            .borrow()
            .get(group_id)
            .map(|g| g.to_value(now_ms()));
        let record = GroupRecord::Group {
            group: group_id.to_owned(),
            value,
        };
        store::append(&log, epoch, &[record])
            .map_err(|err| store::refused(group_id, "group metadata", &err))
    }

    /// Keeps exactly one timer per group that has a deadline, firing at the earliest one.
    fn rearm(&self, group_id: &str) {
        let next = self
            .groups
            .borrow()
            .get(group_id)
            .and_then(Group::next_deadline);
        let mut timers = self.timers.borrow_mut();
        let Some(at) = next else {
            timers.remove(group_id); // dropping the task cancels it
            return;
        };
        if timers.get(group_id).is_some_and(|t| t.at <= at) {
            return; // it fires earlier and re-arms then
        }
        let delay = Duration::from_millis(at.saturating_sub(self.now()));
        let me = self.me.clone();
        let id = group_id.to_owned();
        let task = glommio::spawn_local(async move {
            glommio::timer::sleep(delay).await;
            if let Some(coordinator) = me.upgrade() {
                coordinator.fire(&id);
            }
        });
        timers.insert(group_id.to_owned(), Armed { at, task });
    }

    fn fire(&self, group_id: &str) {
        // This task is the one firing: detach it so the re-arm below does not cancel the running task.
        let own: Option<JoinHandle<()>> = self
            .timers
            .borrow_mut()
            .remove(group_id)
            .map(|armed| armed.task.detach());
        drop(own);
        let mut fx = Effects::default();
        let now = self.now();
        if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
            g.expire(now, &self.limits, &mut fx);
        }
        let _ = self.finish(group_id, fx);
    }

    // ---- membership

    async fn join(
        &self,
        request: JoinGroupRequest,
        version: i16,
        client_id: String,
        bound: Duration,
    ) -> JoinGroupResponse {
        let group_id = request.group_id.0.to_string();
        if group_id.is_empty() {
            return join_response(JoinResult::error(INVALID_GROUP_ID, &request.member_id));
        }
        let args = JoinArgs {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id,
            client_host: String::new(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let mut fx = Effects::default();
        let step = {
            let mut groups = self.groups.borrow_mut();
            if !args.member_id.is_empty() && !groups.contains_key(&group_id) {
                return join_response(JoinResult::error(UNKNOWN_MEMBER_ID, &args.member_id));
            }
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id));
            group.join(self.now(), &self.limits, args, &mut fx)
        };
        let member_id = match step {
            JoinStep::Reply(result) => {
                let _ = self.finish(&group_id, fx);
                return join_response(result);
            }
            JoinStep::Wait(member_id) => member_id,
        };
        let (tx, rx) = oneshot::channel();
        let key = (group_id.clone(), member_id.clone());
        self.joins.borrow_mut().insert(key.clone(), tx);
        let _ = self.finish(&group_id, fx);
        let answer = glommio::timer::timeout(bound, async { Ok(rx.await) }).await;
        self.joins.borrow_mut().remove(&key);
        match answer {
            Ok(Ok(result)) => join_response(result),
            // A newer join of the same member replaced this one, or the bound passed.
            _ => join_response(JoinResult::error(REBALANCE_IN_PROGRESS, &member_id)),
        }
    }

    async fn sync(&self, request: SyncGroupRequest, bound: Duration) -> SyncGroupResponse {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let mut fx = Effects::default();
        let step = {
            let mut groups = self.groups.borrow_mut();
            let Some(group) = groups.get_mut(&group_id) else {
                return sync_response(UNKNOWN_MEMBER_ID, Bytes::new(), None);
            };
            let assignments = request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect();
            let step = group.sync(
                self.now(),
                &member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
                request.protocol_type.as_deref(),
                request.protocol_name.as_deref(),
                assignments,
                &mut fx,
            );
            (step, group.protocol_type.clone(), group.protocol.clone())
        };
        let (step, protocol_type, protocol) = step;
        let protocol_names = Some((protocol_type, protocol));
        if let SyncStep::Reply(error, assignment) = step {
            let _ = self.finish(&group_id, fx);
            return sync_response(error, assignment, protocol_names);
        }
        let (tx, rx) = oneshot::channel();
        let key = (group_id.clone(), member_id.clone());
        self.syncs.borrow_mut().insert(key.clone(), tx);
        let _ = self.finish(&group_id, fx);
        let answer = glommio::timer::timeout(bound, async { Ok(rx.await) }).await;
        self.syncs.borrow_mut().remove(&key);
        let answer = match answer {
            Ok(Ok(answer)) => answer,
            _ => {
                if let Some(g) = self.groups.borrow_mut().get_mut(&group_id) {
                    g.abandon_sync(&member_id);
                }
                return sync_response(REBALANCE_IN_PROGRESS, Bytes::new(), None);
            }
        };
        if let (NONE, Some(offset), Some((log, _))) =
            (answer.error, answer.durable, self.log_of(&group_id))
        {
            let code = store::wait_durable(&log, offset, self.request_timeout).await;
            if code != NONE {
                return sync_response(COORDINATOR_NOT_AVAILABLE, Bytes::new(), None);
            }
        }
        sync_response(answer.error, answer.assignment, protocol_names)
    }

    fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let group_id = request.group_id.0.to_string();
        let error = match self.groups.borrow_mut().get_mut(&group_id) {
            Some(group) => group.heartbeat(
                self.now(),
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            ),
            None => UNKNOWN_MEMBER_ID,
        };
        HeartbeatResponse::default().with_error_code(error)
    }

    async fn leave(&self, request: LeaveGroupRequest) -> LeaveGroupResponse {
        let group_id = request.group_id.0.to_string();
        let mut fx = Effects::default();
        let now = self.now();
        let members: Vec<MemberResponse> = {
            let mut groups = self.groups.borrow_mut();
            let group = groups.get_mut(&group_id);
            let mut group = group;
            request
                .members
                .into_iter()
                .map(|m| {
                    let error = match group.as_deref_mut() {
                        Some(g) => g.leave(
                            now,
                            &self.limits,
                            &m.member_id,
                            m.group_instance_id.as_deref(),
                            &mut fx,
                        ),
                        None => UNKNOWN_MEMBER_ID,
                    };
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(error)
                })
                .collect()
        };
        let written = self.finish(&group_id, fx);
        let mut error = NONE;
        if let (Ok(Some(offset)), Some((log, _))) = (written, self.log_of(&group_id)) {
            error = store::wait_durable(&log, offset, self.request_timeout).await;
        }
        LeaveGroupResponse::default()
            .with_error_code(error)
            .with_members(members)
    }

    // ---- admin

    fn describe(&self, group_id: &str) -> DescribedGroup {
        let described = DescribedGroup::default()
            .with_group_id(StrBytes::from_string(group_id.to_owned()).into())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group_id) else {
            return described.with_group_state(StrBytes::from_static_str("Dead"));
        };
        let stable = g.phase == Phase::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .iter()
            .map(|m| {
                let member = DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(m.id.clone()))
                    .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                    .with_client_host(StrBytes::from_string(m.client_host.clone()));
                if stable {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(name, _)| *name == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    member
                        .with_member_metadata(metadata)
                        .with_member_assignment(m.assignment.clone())
                } else {
                    member
                }
            })
            .collect();
        described
            .with_group_state(StrBytes::from_static_str(g.phase.name()))
            .with_protocol_type(StrBytes::from_string(
                g.protocol_type.clone().unwrap_or_default(),
            ))
            .with_protocol_data(StrBytes::from_string(if stable {
                protocol
            } else {
                String::new()
            }))
            .with_members(members)
    }

    fn list(&self, states: &[String]) -> Vec<ListedGroup> {
        let loaded: Vec<i32> = self
            .slots
            .borrow()
            .iter()
            .filter(|(_, s)| s.loaded)
            .map(|(p, _)| *p)
            .collect();
        self.groups
            .borrow()
            .values()
            .filter(|g| loaded.contains(&super::group_partition(&g.id, self.offsets_partitions)))
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.phase.name()))
            })
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(StrBytes::from_string(g.id.clone()).into())
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ))
                    .with_group_state(StrBytes::from_static_str(g.phase.name()))
                    .with_group_type(StrBytes::from_static_str("classic"))
            })
            .collect()
    }

    async fn delete(&self, group_id: &str) -> i16 {
        let written = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get(group_id) else {
                return GROUP_ID_NOT_FOUND;
            };
            if !g.is_empty() {
                return NON_EMPTY_GROUP;
            }
            let Some((log, epoch)) = self.log_of(group_id) else {
                return NOT_COORDINATOR;
            };
            let mut records: Vec<GroupRecord> = g
                .offsets
                .keys()
                .map(|(topic, partition)| GroupRecord::Offset {
                    group: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                })
                .collect();
            records.push(GroupRecord::Group {
                group: group_id.to_owned(),
                value: None,
            });
            match store::append(&log, epoch, &records) {
                Ok(offset) => {
                    groups.remove(group_id);
                    (log, offset)
                }
                Err(err) => return store::refused(group_id, "the group's deletion", &err),
            }
        };
        self.rearm(group_id);
        let (log, offset) = written;
        store::wait_durable(&log, offset, self.request_timeout).await
    }
}

fn join_response(r: JoinResult) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(instance.map(StrBytes::from_string))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

fn sync_response(
    error: i16,
    assignment: Bytes,
    protocol: Option<(Option<String>, Option<String>)>,
) -> SyncGroupResponse {
    let (protocol_type, protocol_name) = protocol.unwrap_or_default();
    SyncGroupResponse::default()
        .with_error_code(error)
        .with_assignment(assignment)
        .with_protocol_type(protocol_type.map(StrBytes::from_string))
        .with_protocol_name(protocol_name.map(StrBytes::from_string))
}
