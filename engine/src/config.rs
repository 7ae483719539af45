//! Per-partition storage configuration. Durability is an explicit, named choice
//! ([`FlushPolicy`]), never a side effect of other settings.

/// When appended data is made durable (fdatasync'ed) relative to the produce acknowledgement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Write and fdatasync before `wait_durable` resolves; the high watermark only covers
    /// fdatasync'ed data. The default.
    #[default]
    Durable,
    /// Write and fdatasync at most `interval_ms` after data becomes dirty; acknowledge at once.
    Interval { interval_ms: u64 },
    /// Write as soon as possible, never fdatasync (except on close); acknowledge at once.
    Never,
}

/// Which timestamp a batch carries (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps are stored as sent. The default.
    #[default]
    CreateTime,
    /// The leader stamps every batch with its own clock at append (attributes bit 3, maxTimestamp).
    LogAppendTime,
}

/// What happens to old data (Kafka's `cleanup.policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Retention by size and time deletes whole segments. The default.
    #[default]
    Delete,
    /// Compaction keeps the last record per key; retention by size and time is off.
    Compact,
    /// Both: compaction, and retention deletes whole segments.
    CompactDelete,
}

impl CleanupPolicy {
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

/// Redpanda's `log_segment_size_jitter_percent` default.
pub const SEGMENT_JITTER_PERCENT_DEFAULT: u8 = 5;
/// A larger jitter would make segment sizes, and so retention by bytes, hard to predict.
pub const SEGMENT_JITTER_PERCENT_MAX: u8 = 50;

/// Kafka's `message.max.bytes` default: 1 MiB plus the 12-byte log overhead.
pub const MAX_BATCH_BYTES_DEFAULT: usize = 1024 * 1024 + 12;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogConfig {
    /// Roll when the active segment would exceed this many bytes.
    pub segment_bytes: u64,
    /// Roll on append when the active segment is older than this.
    pub segment_ms: u64,
    /// Each partition rolls up to this share (percent) of `segment_bytes` early: a fixed share per partition, so
    /// partitions that fill at the same rate do not all roll at once.
    pub segment_jitter_percent: u8,
    /// -1 = unlimited; delete oldest closed segments while the rest still holds at least this (Kafka's rule).
    pub retention_bytes: i64,
    /// -1 = unlimited; delete closed segments whose max timestamp is older than this.
    pub retention_ms: i64,
    /// Bytes of log between two sparse offset index entries.
    pub index_interval_bytes: u32,
    pub flush: FlushPolicy,
    /// Recent bytes kept in memory for fetch (unwritten data is always kept on top of this).
    pub tail_cache_bytes: usize,
    /// A single batch larger than this is refused with MessageTooLarge.
    pub max_batch_bytes: usize,
    pub timestamp_type: TimestampType,
    pub cleanup_policy: CleanupPolicy,
    /// A tombstone (null value) whose timestamp is older than this is removed by compaction.
    pub delete_retention_ms: i64,
    /// `compact` rewrites only when at least this share of the closed segments' bytes was
    /// appended since the last compaction (0.0 = always, 1.0 = only when nothing was cleaned yet).
    pub min_cleanable_dirty_ratio: f64,
    /// Idempotent producers whose last batch is older than this are forgotten when a producer
    /// state snapshot is written (segment roll, close).
    pub producer_id_expiration_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_percent: SEGMENT_JITTER_PERCENT_DEFAULT,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            flush: FlushPolicy::Durable,
            tail_cache_bytes: 8 << 20,
            max_batch_bytes: MAX_BATCH_BYTES_DEFAULT,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            producer_id_expiration_ms: 7 * 24 * 3600 * 1000,
        }
    }
}
