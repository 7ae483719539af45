//! What crosses the mesh to a group's coordinator shard: one group request, decoded, and its answer. Both own
//! their data (`Bytes`, `StrBytes`) so they can move between shards.

use std::time::Duration;

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::NetConfig;

#[derive(Debug)]
pub enum GroupCall {
    Join {
        request: JoinGroupRequest,
        version: i16,
        client_id: String,
    },
    Sync(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    /// Normalized to the v3+ form (a members list).
    Leave(LeaveGroupRequest),
    Commit(OffsetCommitRequest),
    /// One group of an OffsetFetch, in the v8+ form.
    Fetch(OffsetFetchRequestGroup),
    Describe(String),
    Delete(String),
    OffsetDelete(OffsetDeleteRequest),
    /// Every group of the receiving shard whose state is in the filter (empty = all).
    List(Vec<String>),
}

#[derive(Debug)]
pub enum GroupReply {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    Leave(LeaveGroupResponse),
    Commit(OffsetCommitResponse),
    Fetch(OffsetFetchResponseGroup),
    Describe(DescribedGroup),
    Delete(i16),
    OffsetDelete(OffsetDeleteResponse),
    List(Vec<ListedGroup>),
}

impl GroupCall {
    /// The group whose coordinator must answer; `None` for a shard-wide call (ListGroups).
    pub fn group_id(&self) -> Option<&str> {
        Some(match self {
            GroupCall::Join { request, .. } => &request.group_id.0,
            GroupCall::Sync(r) => &r.group_id.0,
            GroupCall::Heartbeat(r) => &r.group_id.0,
            GroupCall::Leave(r) => &r.group_id.0,
            GroupCall::Commit(r) => &r.group_id.0,
            GroupCall::Fetch(r) => &r.group_id.0,
            GroupCall::Describe(id) | GroupCall::Delete(id) => id,
            GroupCall::OffsetDelete(r) => &r.group_id.0,
            GroupCall::List(_) => return None,
        })
    }

    /// How long the coordinator may keep this call waiting: a JoinGroup waits for the whole rebalance (the
    /// member's rebalance timeout, plus the initial delay of an empty group), anything else one request timeout.
    pub fn wait_bound(&self, config: &NetConfig) -> Duration {
        match self {
            GroupCall::Join { request, .. } => {
                let rebalance = request
                    .rebalance_timeout_ms
                    .max(request.session_timeout_ms)
                    .max(0) as u64;
                Duration::from_millis(rebalance)
                    + config.group_initial_rebalance_delay
                    + config.request_timeout
            }
            _ => config.request_timeout,
        }
    }
}

impl GroupReply {
    /// The answer carrying `error_code` for a call that could not reach or be served by its coordinator.
    pub fn error_for(call: &GroupCall, error_code: i16) -> GroupReply {
        match call {
            GroupCall::Join { request, .. } => GroupReply::Join(
                JoinGroupResponse::default()
                    .with_error_code(error_code)
                    .with_generation_id(-1)
                    .with_member_id(request.member_id.clone()),
            ),
            GroupCall::Sync(_) => {
                GroupReply::Sync(SyncGroupResponse::default().with_error_code(error_code))
            }
            GroupCall::Heartbeat(_) => {
                GroupReply::Heartbeat(HeartbeatResponse::default().with_error_code(error_code))
            }
            GroupCall::Leave(_) => {
                GroupReply::Leave(LeaveGroupResponse::default().with_error_code(error_code))
            }
            GroupCall::Commit(r) => GroupReply::Commit(super::offsets::commit_error(r, error_code)),
            GroupCall::Fetch(r) => GroupReply::Fetch(
                OffsetFetchResponseGroup::default()
                    .with_group_id(r.group_id.clone())
                    .with_error_code(error_code),
            ),
            GroupCall::Describe(id) => GroupReply::Describe(
                DescribedGroup::default()
                    .with_group_id(StrBytes::from_string(id.clone()).into())
                    .with_error_code(error_code),
            ),
            GroupCall::Delete(_) => GroupReply::Delete(error_code),
            GroupCall::OffsetDelete(_) => GroupReply::OffsetDelete(
                OffsetDeleteResponse::default().with_error_code(error_code),
            ),
            GroupCall::List(_) => GroupReply::List(Vec::new()),
        }
    }
}
