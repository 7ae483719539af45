//! Consumer groups, classic protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) and committed offsets.
//!
//! A group belongs to partition `abs(javaHashCode(group_id)) % offsets_topic_partitions` of the internal topic
//! `__consumer_offsets`, and its coordinator is the shard that owns that partition, as in Kafka. Requests that
//! reach another shard are forwarded there over the mesh (`PartitionOp::Group`), so all of a group's state lives
//! on one executor and needs no lock.
//!
//! Read in this order: [`state`] (the protocol as a pure, clock-injected state machine), [`coordinator`]
//! (one shard's groups: waiters, timers, persistence), [`offsets`] (commit/fetch/delete of offsets),
//! [`store`] and [`records`] (the partition is the only store: Kafka's record formats, replayed on open),
//! [`call`] (what crosses the mesh).

pub mod call;
pub mod codes;
pub mod coordinator;
pub mod offsets;
pub mod records;
pub mod state;
pub mod store;

pub use call::{GroupCall, GroupReply};
pub use coordinator::Coordinator;

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(groupId.hashCode) % partitions`, with
/// Java's `String.hashCode` over UTF-16 code units, so a group lands where Kafka would put it.
pub fn group_partition(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "offsets topic needs partitions");
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

#[cfg(test)]
mod tests;
