//! What one shard asks another to run over the mesh: one partition's op, or one of the fetch path's operations on
//! every partition of a request that the other shard owns. A fetch of a thousand partitions split over two shards
//! thus costs one mesh round trip per shard for its reads, and one for its long-poll, instead of one per partition;
//! and a long-poll that ends on this shard leaves at most one waiter set behind on each other shard, which ends at
//! the first new data or at `max_wait` (a per-partition wait used to leave one waiter per partition).

use std::sync::Arc;
use std::time::Duration;

use crate::partition_ops::{PartitionReply, PartitionRequest};

// `One` is the large variant and the hot one (forwarded produce): boxing it would cost an allocation per forwarded
// op, and the message moves through the mesh channel by value either way, as `PartitionRequest` did before.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ShardCall {
    One(PartitionRequest),
    /// Whole batches of each partition, answered in the same order (see `PartitionOp::Read`).
    Reads(Vec<ReadWant>),
    /// Resolves when any of the partitions has data past its offset, or after `max_wait`.
    WaitForAny {
        partitions: Vec<WaitWant>,
        max_wait: Duration,
    },
}

#[derive(Debug)]
pub enum ShardReply {
    One(PartitionReply),
    /// A `PartitionReply::Read` per requested partition, in request order.
    Reads(Vec<PartitionReply>),
    Waited,
}

#[derive(Debug, Clone)]
pub struct ReadWant {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct WaitWant {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Wait for data past this offset.
    pub offset: i64,
}
