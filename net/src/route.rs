//! Where a partition's work runs: on this shard if it owns the partition, otherwise on its owner over the mesh.
//! Ownership comes from the metadata snapshot (the controller places partitions on shards). The fetch path's reads
//! requests go to each owner shard as one call for all of the request's partitions there (see `shard_call.rs`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, select_all, FutureExt, LocalBoxFuture};

use pinlog_engine::{EngineError, PartitionLog};
use pinlog_raft_shard::MetadataSnapshot;

use crate::codes;
use crate::context::{NetConfig, ShardContext};
use crate::partition_ops::{self, PartitionOp, PartitionReply, PartitionRequest};
use crate::shard_call::{ShardCall, ShardReply, WaitWant};

/// Slack added to a forwarded request's own bound, so the owner's answer (even a timeout answer) can still arrive.
const MESH_DEADLINE_SLACK: Duration = Duration::from_secs(5);

/// The owner of a partition as the snapshot says: `(shard, leader_epoch)`.
pub fn locate(snapshot: &MetadataSnapshot, topic: &str, partition: i32) -> Option<(u32, i32)> {
    let meta = snapshot.topic(topic)?;
    let p = meta.partitions.get(usize::try_from(partition).ok()?)?;
    Some((p.shard, p.leader_epoch))
}

/// Runs one partition request wherever the partition lives and returns its reply; never fails, errors are codes.
pub async fn execute(ctx: &Rc<ShardContext>, request: PartitionRequest) -> PartitionReply {
    let mut replies = execute_many(ctx, vec![request]).await;
    replies.pop().expect("one reply per request")
}

/// The items grouped by owner shard, each with its index in `items` (request order within a group), and the items
/// of partitions the snapshot does not know.
struct ByOwner<T> {
    groups: Vec<(u32, Vec<(usize, T)>)>,
    unknown: Vec<(usize, T)>,
}

fn by_owner<T>(
    snapshot: &MetadataSnapshot,
    items: Vec<T>,
    key: impl Fn(&T) -> (&str, i32),
) -> ByOwner<T> {
    let mut split = ByOwner {
        groups: Vec::new(),
        unknown: Vec::new(),
    };
    for (i, item) in items.into_iter().enumerate() {
        let (topic, partition) = key(&item);
        let Some((shard, _)) = locate(snapshot, topic, partition) else {
            split.unknown.push((i, item));
            continue;
        };
        match split.groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, group)) => group.push((i, item)),
            None => split.groups.push((shard, vec![(i, item)])),
        }
    }
    split
}

/// Runs every request on its partition's owner shard, all at once: the local ones here, the others as one mesh
/// call per owner shard. The replies come back in request order. Within each shard the ops start in request order,
/// so pipelined requests reach a partition in the order they were sent.
pub async fn execute_many(
    ctx: &Rc<ShardContext>,
    requests: Vec<PartitionRequest>,
) -> Vec<PartitionReply> {
    let snapshot = ctx.snapshot();
    let mut replies: Vec<Option<PartitionReply>> = (0..requests.len()).map(|_| None).collect();
    let ByOwner { groups, unknown } = by_owner(&snapshot, requests, |r| (&r.topic, r.partition));
    for (i, request) in unknown {
        replies[i] = Some(PartitionReply::error_for(
            &request.op,
            codes::UNKNOWN_TOPIC_OR_PARTITION,
        ));
    }
    let calls = groups.into_iter().map(|(shard, group)| {
        let (indices, group): (Vec<usize>, Vec<PartitionRequest>) = group.into_iter().unzip();
        let snapshot = &snapshot;
        async move {
            let answers = if shard == ctx.shard_id {
                run_owned_all(ctx, snapshot, group).await
            } else {
                call_many(ctx, shard, snapshot.version, group).await
            };
            (indices, answers)
        }
    });
    for (indices, answers) in join_all(calls).await {
        place(&mut replies, indices, answers);
    }
    all_answered(replies)
}

/// Puts each answer at its request's index.
fn place(
    replies: &mut [Option<PartitionReply>],
    indices: Vec<usize>,
    answers: Vec<PartitionReply>,
) {
    for (i, answer) in indices.into_iter().zip(answers) {
        replies[i] = Some(answer);
    }
}

fn all_answered(replies: Vec<Option<PartitionReply>>) -> Vec<PartitionReply> {
    replies
        .into_iter()
        .map(|r| r.expect("every request has its answer"))
        .collect()
}

/// The requests of one other shard's partitions, as one mesh call bounded by the longest of their own bounds.
async fn call_many(
    ctx: &Rc<ShardContext>,
    shard: u32,
    metadata_version: u64,
    group: Vec<PartitionRequest>,
) -> Vec<PartitionReply> {
    let count = group.len();
    let deadline = group
        .iter()
        .map(|r| mesh_deadline(&r.op, &ctx.config))
        .max()
        .unwrap_or(MESH_DEADLINE_SLACK);
    // Kept to answer with if the call fails: the ops themselves travel in the call.
    let timed_out: Vec<PartitionReply> = group
        .iter()
        .map(|r| PartitionReply::error_for(&r.op, codes::REQUEST_TIMED_OUT))
        .collect();
    match ctx
        .mesh
        .call(shard, metadata_version, ShardCall::Many(group), deadline)
        .await
    {
        Ok(ShardReply::Many(answers)) if answers.len() == count => answers,
        Ok(other) => unreachable!("{count} partition ops answered with {other:?}"),
        Err(err) => {
            tracing::warn!(%err, "forwarding to the owner shard failed");
            timed_out
        }
    }
}

/// Resolves when any partition of `wants` has data past its offset, or after `max_wait`: one waiter set per owner
/// shard (a mesh call for each other shard), the first to resolve ends the wait. A partition that is unknown or not
/// where the snapshot says ends it at once, so the caller reads again and answers with the error.
pub async fn wait_for_any(ctx: &Rc<ShardContext>, wants: Vec<WaitWant>, max_wait: Duration) {
    let snapshot = ctx.snapshot();
    let ByOwner { groups, unknown } = by_owner(&snapshot, wants, |w| (&w.topic, w.partition));
    if !unknown.is_empty() {
        return;
    }
    let waits: Vec<LocalBoxFuture<'_, ()>> = groups
        .into_iter()
        .map(|(shard, group)| {
            let group: Vec<WaitWant> = group.into_iter().map(|(_, want)| want).collect();
            let snapshot = snapshot.clone();
            async move {
                if shard == ctx.shard_id {
                    wait_local(ctx, &snapshot, group, max_wait).await;
                    return;
                }
                let call = ShardCall::WaitForAny {
                    partitions: group,
                    max_wait,
                };
                let deadline = max_wait + MESH_DEADLINE_SLACK;
                if let Err(err) = ctx.mesh.call(shard, snapshot.version, call, deadline).await {
                    tracing::warn!(%err, "waiting on the owner shard failed");
                }
            }
            .boxed_local()
        })
        .collect();
    if !waits.is_empty() {
        select_all(waits).await;
    }
}

/// The long-poll of partitions this shard owns: one timer for all of them; a partition not owned here ends it.
async fn wait_local(
    ctx: &Rc<ShardContext>,
    snapshot: &MetadataSnapshot,
    wants: Vec<WaitWant>,
    max_wait: Duration,
) {
    let mut logs = Vec::with_capacity(wants.len());
    for want in &wants {
        match locate(snapshot, &want.topic, want.partition) {
            Some((shard, _)) if shard == ctx.shard_id => {}
            _ => return,
        }
        match open_local(ctx, snapshot, &want.topic, want.partition).await {
            Ok(log) => logs.push((log, want.offset)),
            Err(_) => return,
        }
    }
    if logs.is_empty() {
        return;
    }
    // Expiry is the normal end of an idle long-poll, not an error.
    let _ = glommio::timer::timeout(max_wait, async {
        PartitionLog::wait_for_data_any(&logs).await;
        Ok(())
    })
    .await;
}

/// Runs one op per requested partition, each on its owner shard, all at once. The answers come back in request
/// order: `(partition, reply)` per topic.
pub async fn execute_all(
    ctx: &Rc<ShardContext>,
    topics: Vec<(String, Vec<(i32, PartitionOp)>)>,
) -> Vec<Vec<(i32, PartitionReply)>> {
    let mut layout: Vec<Vec<i32>> = Vec::with_capacity(topics.len());
    let mut requests = Vec::new();
    for (topic, partitions) in topics {
        let topic: Arc<str> = Arc::from(topic);
        layout.push(partitions.iter().map(|(p, _)| *p).collect());
        requests.extend(
            partitions
                .into_iter()
                .map(|(partition, op)| PartitionRequest {
                    topic: topic.clone(),
                    partition,
                    op,
                }),
        );
    }
    let mut replies = execute_many(ctx, requests).await.into_iter();
    layout
        .into_iter()
        .map(|partitions| {
            partitions
                .into_iter()
                .map(|p| (p, replies.next().expect("one reply per request")))
                .collect()
        })
        .collect()
}

/// Runs a request that another shard forwarded here, once this shard has seen the requester's metadata version.
pub async fn run_for_peer(
    ctx: &Rc<ShardContext>,
    min_metadata_version: u64,
    call: ShardCall,
) -> ShardReply {
    let mut snapshot = ctx.snapshot();
    if snapshot.version < min_metadata_version {
        let waited = glommio::timer::timeout(ctx.config.request_timeout, async {
            Ok(ctx.metadata.changed(min_metadata_version - 1).await)
        })
        .await;
        match waited {
            Ok(newer) => snapshot = newer,
            Err(_) => return timed_out(call),
        }
    }
    match call {
        ShardCall::Many(requests) => {
            ShardReply::Many(run_owned_all(ctx, &snapshot, requests).await)
        }
        ShardCall::WaitForAny {
            partitions,
            max_wait,
        } => {
            wait_local(ctx, &snapshot, partitions, max_wait).await;
            ShardReply::Waited
        }
    }
}

/// Runs requests for partitions this shard owns, replies in request order. What memory answers (reads at a
/// partition's end or in its tail cache: nearly all of a fetch that tails many partitions) is answered at once; only
/// the rest become tasks, joined together. A 1,000-partition fetch used to be 1,000 tasks.
async fn run_owned_all(
    ctx: &Rc<ShardContext>,
    snapshot: &MetadataSnapshot,
    requests: Vec<PartitionRequest>,
) -> Vec<PartitionReply> {
    let mut replies = Vec::with_capacity(requests.len());
    let mut later = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        match run_in_memory(ctx, snapshot, &request) {
            Some(reply) => replies.push(Some(reply)),
            None => {
                replies.push(None);
                later.push((i, request));
            }
        }
    }
    if !later.is_empty() {
        let (indices, requests): (Vec<usize>, Vec<PartitionRequest>) = later.into_iter().unzip();
        let answers = join_all(requests.into_iter().map(|r| run_owned(ctx, snapshot, r))).await;
        place(&mut replies, indices, answers);
    }
    all_answered(replies)
}

/// The reply to a request that needs no task: a read that memory answers, on a partition this shard owns and has open.
fn run_in_memory(
    ctx: &ShardContext,
    snapshot: &MetadataSnapshot,
    request: &PartitionRequest,
) -> Option<PartitionReply> {
    if !matches!(request.op, PartitionOp::Read { .. }) {
        return None;
    }
    match locate(snapshot, &request.topic, request.partition) {
        Some((shard, _)) if shard == ctx.shard_id => {}
        _ => return None,
    }
    let log = ctx.storage.get(&request.topic, request.partition)?;
    partition_ops::run_in_memory(&log, &request.op)
}

/// Runs a forwarded request if this shard owns its partition now; UNKNOWN_TOPIC_OR_PARTITION otherwise.
async fn run_owned(
    ctx: &Rc<ShardContext>,
    snapshot: &MetadataSnapshot,
    request: PartitionRequest,
) -> PartitionReply {
    match locate(snapshot, &request.topic, request.partition) {
        Some((shard, _)) if shard == ctx.shard_id => run_local(ctx, snapshot, request).await,
        _ => PartitionReply::error_for(&request.op, codes::UNKNOWN_TOPIC_OR_PARTITION),
    }
}

fn timed_out(call: ShardCall) -> ShardReply {
    let code = codes::REQUEST_TIMED_OUT;
    match call {
        ShardCall::Many(requests) => ShardReply::Many(
            requests
                .iter()
                .map(|r| PartitionReply::error_for(&r.op, code))
                .collect(),
        ),
        ShardCall::WaitForAny { .. } => ShardReply::Waited,
    }
}

async fn run_local(
    ctx: &Rc<ShardContext>,
    snapshot: &MetadataSnapshot,
    request: PartitionRequest,
) -> PartitionReply {
    let Some((_, leader_epoch)) = locate(snapshot, &request.topic, request.partition) else {
        return PartitionReply::error_for(&request.op, codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    match open_local(ctx, snapshot, &request.topic, request.partition).await {
        Ok(log) => match request.op {
            PartitionOp::Group(call) => {
                let bound = call.wait_bound(&ctx.config);
                let reply = ctx
                    .groups
                    .serve(request.partition, log, leader_epoch, *call, bound)
                    .await;
                PartitionReply::Group(Box::new(reply))
            }
            op => partition_ops::run(log, leader_epoch, op).await,
        },
        Err(code) => PartitionReply::error_for(&request.op, code),
    }
}

/// The open log of a partition this shard owns; opens (recovers) it on first use. The error is the Kafka code to
/// answer with: a shard that is stopping opens nothing (NOT_LEADER_OR_FOLLOWER, so clients look for the partition
/// again), a failed open is a storage error.
pub async fn open_local(
    ctx: &ShardContext,
    snapshot: &MetadataSnapshot,
    topic: &str,
    partition: i32,
) -> Result<Rc<PartitionLog>, i16> {
    if let Some(log) = ctx.storage.get(topic, partition) {
        return Ok(log);
    }
    let Some(meta) = snapshot.topic(topic) else {
        return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let config = ctx.log_config(snapshot, &meta.configs);
    match ctx.storage.open_partition(topic, partition, config).await {
        Ok(log) => Ok(log),
        Err(err @ EngineError::Stopping { .. }) => {
            tracing::debug!(%err, "request for a partition while the shard stops");
            Err(codes::NOT_LEADER_OR_FOLLOWER)
        }
        Err(err @ EngineError::Io { .. }) => {
            tracing::error!(topic, partition, %err, "cannot open partition");
            Err(codes::KAFKA_STORAGE_ERROR)
        }
    }
}

fn mesh_deadline(op: &PartitionOp, config: &NetConfig) -> Duration {
    let own = match op {
        PartitionOp::Produce { timeout, .. } => *timeout,
        PartitionOp::DeleteRecords { timeout, .. } => *timeout,
        PartitionOp::Read { .. } | PartitionOp::ListOffset { .. } | PartitionOp::Size => {
            config.request_timeout
        }
        PartitionOp::Group(call) => call.wait_bound(config),
    };
    own + MESH_DEADLINE_SLACK
}
