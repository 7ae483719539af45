//! pinlog-engine: partition storage for one glommio shard.
//!
//! Every type here is `!Send` and lives on the shard's `LocalExecutor`. A partition is a
//! directory of segments holding Kafka v2 record batches exactly as produced (only baseOffset
//! and partitionLeaderEpoch are assigned, both outside the CRC). Start with `log.rs` (the
//! write and read paths), then `group_commit.rs` (how appends become durable) and
//! `recovery.rs` (what happens after a crash). Idempotent producers: `producer_state.rs`,
//! `producer_snapshot.rs`; DeleteRecords: `log_start.rs`; compaction: `compaction.rs`. The
//! byte layout is in FORMAT.md.

mod batch;
#[cfg(feature = "bench-internals")]
pub mod bench_support;
mod compaction;
mod compression;
mod config;
mod doomed;
mod error;
mod group_commit;
mod index;
mod iopoll_probe;
mod log;
mod log_start;
mod metrics;
mod producer_snapshot;
mod producer_state;
mod readahead;
mod reap;
mod record_set;
mod records;
mod recovery;
mod recycle;
mod retention;
mod segment;
mod storage;
mod stream_copy;
mod tail;
mod tail_budget;
mod wait;

pub use compaction::CompactionStats;
pub use config::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType, MAX_BATCH_BYTES_DEFAULT};
pub use error::{AppendError, DeleteRecordsError, EngineError, ReadError};
pub use log::{AppendOutcome, PartitionLog, ReadOutcome};
pub use metrics::{LatencyHistogram, StorageMetrics};
pub use record_set::RecordSet;
pub use storage::{remove_interrupted_deletes, ShardStorage};
pub use tail_budget::TailBudget;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_kafka;
