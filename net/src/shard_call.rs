//! What one shard asks another to run over the mesh: the partition ops of one request for every partition the other
//! shard owns, or a fetch's long-poll on those partitions. A produce or fetch of a thousand partitions split over two
//! shards thus costs one mesh round trip per shard (and one for the long-poll), instead of one per partition; and a
//! long-poll that ends on this shard leaves at most one waiter set behind on each other shard, which ends at the
//! first new data or at `max_wait` (a per-partition wait used to leave one waiter per partition).

use std::sync::Arc;
use std::time::Duration;

use crate::partition_ops::{PartitionReply, PartitionRequest};

#[derive(Debug)]
pub enum ShardCall {
    /// Ops on partitions the other shard owns, run concurrently there, answered in the same order.
    Many(Vec<PartitionRequest>),
    /// Resolves when any of the partitions has data past its offset, or after `max_wait`.
    WaitForAny {
        partitions: Vec<WaitWant>,
        max_wait: Duration,
    },
}

#[derive(Debug)]
pub enum ShardReply {
    /// A reply per op of `ShardCall::Many`, in its order.
    Many(Vec<PartitionReply>),
    Waited,
}

#[derive(Debug)]
pub struct WaitWant {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Wait for data past this offset.
    pub offset: i64,
}
