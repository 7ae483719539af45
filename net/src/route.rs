//! Where a partition's work runs: on this shard if it owns the partition, otherwise on its owner over the mesh.
//! Ownership comes from the metadata snapshot (the controller places partitions on shards).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use pinlog_engine::PartitionLog;
use pinlog_raft_shard::MetadataSnapshot;

use crate::codes;
use crate::context::{NetConfig, ShardContext};
use crate::partition_ops::{self, PartitionOp, PartitionReply, PartitionRequest};

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
    let snapshot = ctx.snapshot();
    let Some((shard, _)) = locate(&snapshot, &request.topic, request.partition) else {
        return PartitionReply::error_for(&request.op, codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    if shard == ctx.shard_id {
        return run_local(ctx, &snapshot, request).await;
    }
    let deadline = mesh_deadline(&request.op, &ctx.config);
    let timed_out = PartitionReply::error_for(&request.op, codes::REQUEST_TIMED_OUT);
    match ctx
        .mesh
        .call(shard, snapshot.version, request, deadline)
        .await
    {
        Ok(reply) => reply,
        Err(err) => {
            tracing::warn!(%err, "forwarding to the owner shard failed");
            timed_out
        }
    }
}

/// Runs one op per requested partition, each on its owner shard, all at once. The answers come back in request
/// order: `(partition, reply)` per topic.
pub async fn execute_all(
    ctx: &Rc<ShardContext>,
    topics: Vec<(String, Vec<(i32, PartitionOp)>)>,
) -> Vec<Vec<(i32, PartitionReply)>> {
    let requests = topics.into_iter().map(|(topic, partitions)| {
        let topic: Arc<str> = Arc::from(topic);
        join_all(partitions.into_iter().map(move |(partition, op)| {
            let request = PartitionRequest {
                topic: topic.clone(),
                partition,
                op,
            };
            async move { (partition, execute(ctx, request).await) }
        }))
    });
    join_all(requests).await
}

/// Runs a request that another shard forwarded here, once this shard has seen the requester's metadata version.
pub async fn run_for_peer(
    ctx: &Rc<ShardContext>,
    min_metadata_version: u64,
    request: PartitionRequest,
) -> PartitionReply {
    let mut snapshot = ctx.snapshot();
    if snapshot.version < min_metadata_version {
        let waited = glommio::timer::timeout(ctx.config.request_timeout, async {
            Ok(ctx.metadata.changed(min_metadata_version - 1).await)
        })
        .await;
        match waited {
            Ok(newer) => snapshot = newer,
            Err(_) => return PartitionReply::error_for(&request.op, codes::REQUEST_TIMED_OUT),
        }
    }
    match locate(&snapshot, &request.topic, request.partition) {
        Some((shard, _)) if shard == ctx.shard_id => run_local(ctx, &snapshot, request).await,
        _ => PartitionReply::error_for(&request.op, codes::UNKNOWN_TOPIC_OR_PARTITION),
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
        Some(log) => match request.op {
            PartitionOp::Group(call) => {
                let bound = call.wait_bound(&ctx.config);
                let reply = ctx
                    .groups
                    .serve(request.partition, log, leader_epoch, call, bound)
                    .await;
                PartitionReply::Group(reply)
            }
            op => partition_ops::run(log, leader_epoch, op).await,
        },
        None => PartitionReply::error_for(&request.op, codes::KAFKA_STORAGE_ERROR),
    }
}

/// The open log of a partition this shard owns; opens (recovers) it on first use.
pub async fn open_local(
    ctx: &ShardContext,
    snapshot: &MetadataSnapshot,
    topic: &str,
    partition: i32,
) -> Option<Rc<PartitionLog>> {
    if let Some(log) = ctx.storage.get(topic, partition) {
        return Some(log);
    }
    let config = ctx.log_config(snapshot, &snapshot.topic(topic)?.configs);
    match ctx.storage.open_partition(topic, partition, config).await {
        Ok(log) => Some(log),
        Err(err) => {
            tracing::error!(topic, partition, %err, "cannot open partition");
            None
        }
    }
}

fn mesh_deadline(op: &PartitionOp, config: &NetConfig) -> Duration {
    let own = match op {
        PartitionOp::Produce { timeout, .. } => *timeout,
        PartitionOp::WaitForData { max_wait, .. } => *max_wait,
        PartitionOp::DeleteRecords { timeout, .. } => *timeout,
        PartitionOp::Read { .. } | PartitionOp::ListOffset { .. } | PartitionOp::Size => {
            config.request_timeout
        }
        PartitionOp::Group(call) => call.wait_bound(config),
    };
    own + MESH_DEADLINE_SLACK
}
