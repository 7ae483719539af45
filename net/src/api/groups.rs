//! The consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//!
//! Each handler turns its request into one [`GroupCall`] per group and sends it to the group's coordinator shard
//! with `route::execute` (local or over the mesh); the shard-wide ListGroups asks every shard that owns
//! `__consumer_offsets` partitions and merges. `__consumer_offsets` is created by the first FindCoordinator, with
//! one bounded metadata proposal (a racing creator's TOPIC_ALREADY_EXISTS is fine).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use pinlog_raft_shard::{CommandOutcome, MetadataCommand, NewTopic};

use crate::codes::NONE;
use crate::context::ShardContext;
use crate::group::codes::{
    COORDINATOR_NOT_AVAILABLE, INVALID_GROUP_ID, NOT_COORDINATOR, TOPIC_ALREADY_EXISTS,
};
use crate::group::{group_partition, GroupCall, GroupReply, OFFSETS_TOPIC};
use crate::partition_ops::{PartitionOp, PartitionReply, PartitionRequest};

/// FindCoordinator key types.
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn find_coordinator(
    ctx: Rc<ShardContext>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys = if version >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let (error_code, message) = if request.key_type == KEY_TYPE_TRANSACTION {
        // Retriable for every client: a transactional producer's init times out with this message in its log
        // instead of failing on a misleading authorization error.
        (
            COORDINATOR_NOT_AVAILABLE,
            Some("pinlog has no transaction coordinator (transactions are not supported)"),
        )
    } else {
        match ensure_offsets_topic(&ctx).await {
            Ok(()) => (NONE, None),
            Err(code) => (
                code,
                Some("the __consumer_offsets topic is not available yet"),
            ),
        }
    };
    let found = error_code == NONE;
    let coordinators: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(if found { ctx.config.node_id } else { -1 }))
                .with_host(StrBytes::from_string(if found {
                    ctx.config.advertise_host.clone()
                } else {
                    String::new()
                }))
                .with_port(if found {
                    i32::from(ctx.config.advertise_port)
                } else {
                    -1
                })
                .with_error_code(error_code)
                .with_error_message(message.map(StrBytes::from_static_str))
        })
        .collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let first = coordinators.into_iter().next().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(first.error_code)
        .with_error_message(first.error_message)
        .with_node_id(first.node_id)
        .with_host(first.host)
        .with_port(first.port)
}

/// Creates `__consumer_offsets` (compacted) if the metadata does not have it yet.
async fn ensure_offsets_topic(ctx: &ShardContext) -> Result<(), i16> {
    if ctx.snapshot().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_owned(),
        partitions: ctx.config.offsets_topic_partitions,
        replication_factor: -1,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    };
    let command = MetadataCommand::CreateTopics {
        topics: vec![topic],
        validate_only: false,
    };
    match ctx
        .metadata
        .propose(command, ctx.config.request_timeout)
        .await
    {
        Ok(CommandOutcome::Topics(outcomes)) => {
            for o in outcomes {
                match o.error_code {
                    NONE => {
                        tracing::info!(partitions = o.partitions, "created {OFFSETS_TOPIC}")
                    }
                    TOPIC_ALREADY_EXISTS => {}
                    code => {
                        tracing::warn!(code, message = ?o.message, "cannot create {OFFSETS_TOPIC}")
                    }
                }
            }
        }
        Ok(other) => tracing::warn!(?other, "unexpected outcome creating {OFFSETS_TOPIC}"),
        Err(err) => tracing::warn!(%err, "cannot create {OFFSETS_TOPIC}"),
    }
    match ctx.snapshot().topic(OFFSETS_TOPIC) {
        Some(_) => Ok(()),
        None => Err(COORDINATOR_NOT_AVAILABLE),
    }
}

/// Sends one call to its group's coordinator shard.
async fn call(ctx: &Rc<ShardContext>, call: GroupCall) -> GroupReply {
    let group_id = call.group_id().unwrap_or_default();
    if group_id.is_empty() {
        return GroupReply::error_for(&call, INVALID_GROUP_ID);
    }
    let snapshot = ctx.snapshot();
    let Some(topic) = snapshot.topic(OFFSETS_TOPIC) else {
        return GroupReply::error_for(&call, NOT_COORDINATOR);
    };
    let partition = group_partition(group_id, topic.partitions.len().max(1) as i32);
    let leader = topic.partitions.get(partition as usize).map(|p| p.leader);
    if leader != Some(ctx.config.node_id) {
        return GroupReply::error_for(&call, NOT_COORDINATOR);
    }
    execute(ctx, partition, call).await
}

async fn execute(ctx: &Rc<ShardContext>, partition: i32, call: GroupCall) -> GroupReply {
    let fallback = GroupReply::error_for(&call, COORDINATOR_NOT_AVAILABLE);
    let request = PartitionRequest {
        topic: Arc::from(OFFSETS_TOPIC),
        partition,
        op: PartitionOp::Group(Box::new(call)),
    };
    match crate::route::execute(ctx, request).await {
        PartitionReply::Group(reply) => *reply,
        other => {
            tracing::error!(?other, "a group call got a partition reply");
            fallback
        }
    }
}

pub async fn join(
    ctx: Rc<ShardContext>,
    version: i16,
    client_id: String,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let call_ = GroupCall::Join {
        request,
        version,
        client_id,
    };
    match call(&ctx, call_).await {
        GroupReply::Join(r) => r,
        _ => JoinGroupResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
    }
}

pub async fn sync(ctx: Rc<ShardContext>, request: SyncGroupRequest) -> SyncGroupResponse {
    match call(&ctx, GroupCall::Sync(request)).await {
        GroupReply::Sync(r) => r,
        _ => SyncGroupResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
    }
}

pub async fn heartbeat(ctx: Rc<ShardContext>, request: HeartbeatRequest) -> HeartbeatResponse {
    match call(&ctx, GroupCall::Heartbeat(request)).await {
        GroupReply::Heartbeat(r) => r,
        _ => HeartbeatResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
    }
}

pub async fn leave(
    ctx: Rc<ShardContext>,
    version: i16,
    mut request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if version < 3 {
        request.members = vec![MemberIdentity::default().with_member_id(request.member_id.clone())];
    }
    let response = match call(&ctx, GroupCall::Leave(request)).await {
        GroupReply::Leave(r) => r,
        _ => LeaveGroupResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
    };
    if version >= 3 {
        return response;
    }
    // v0-2 carry one member and one error.
    let member_error = response.members.first().map_or(NONE, |m| m.error_code);
    let error = if response.error_code != NONE {
        response.error_code
    } else {
        member_error
    };
    LeaveGroupResponse::default().with_error_code(error)
}

pub async fn offset_commit(
    ctx: Rc<ShardContext>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let fallback = crate::group::offsets::commit_error(&request, COORDINATOR_NOT_AVAILABLE);
    match call(&ctx, GroupCall::Commit(request)).await {
        GroupReply::Commit(r) => r,
        _ => fallback,
    }
}

pub async fn offset_fetch(
    ctx: Rc<ShardContext>,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            groups.push(fetch_group(&ctx, group).await);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group = OffsetFetchRequestGroup::default()
        .with_group_id(request.group_id)
        .with_topics(request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| {
                    OffsetFetchRequestTopics::default()
                        .with_name(t.name)
                        .with_partition_indexes(t.partition_indexes)
                })
                .collect()
        }));
    let answer = fetch_group(&ctx, group).await;
    let topics = answer
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_leader_epoch(p.committed_leader_epoch)
                                .with_metadata(p.metadata)
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(answer.error_code)
        .with_topics(topics)
}

async fn fetch_group(
    ctx: &Rc<ShardContext>,
    group: OffsetFetchRequestGroup,
) -> OffsetFetchResponseGroup {
    let id = group.group_id.clone();
    match call(ctx, GroupCall::Fetch(group)).await {
        GroupReply::Fetch(r) => r,
        _ => OffsetFetchResponseGroup::default()
            .with_group_id(id)
            .with_error_code(COORDINATOR_NOT_AVAILABLE),
    }
}

pub async fn list_groups(ctx: Rc<ShardContext>, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let classic_only = request
        .types_filter
        .iter()
        .all(|t| t.eq_ignore_ascii_case("classic"));
    let snapshot = ctx.snapshot();
    let Some(topic) = snapshot.topic(OFFSETS_TOPIC) else {
        return ListGroupsResponse::default();
    };
    if !classic_only {
        return ListGroupsResponse::default();
    }
    // One partition per shard stands for the shard: the call lists every group of that shard.
    let mut seen = BTreeSet::new();
    let mut groups = Vec::new();
    for p in &topic.partitions {
        if p.leader != ctx.config.node_id || !seen.insert(p.shard) {
            continue;
        }
        match execute(&ctx, p.partition, GroupCall::List(states.clone())).await {
            GroupReply::List(listed) => groups.extend(listed),
            _ => return ListGroupsResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
        }
    }
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(
    ctx: Rc<ShardContext>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut described = Vec::with_capacity(request.groups.len());
    for id in request.groups {
        match call(&ctx, GroupCall::Describe(id.0.to_string())).await {
            GroupReply::Describe(d) => described.push(d),
            _ => described.push(
                kafka_protocol::messages::describe_groups_response::DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(COORDINATOR_NOT_AVAILABLE),
            ),
        }
    }
    DescribeGroupsResponse::default().with_groups(described)
}

pub async fn delete_groups(
    ctx: Rc<ShardContext>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let code = match call(&ctx, GroupCall::Delete(id.0.to_string())).await {
            GroupReply::Delete(code) => code,
            _ => COORDINATOR_NOT_AVAILABLE,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(
    ctx: Rc<ShardContext>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    match call(&ctx, GroupCall::OffsetDelete(request)).await {
        GroupReply::OffsetDelete(r) => r,
        _ => OffsetDeleteResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
    }
}
