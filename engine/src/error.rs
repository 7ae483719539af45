//! Error types of the engine, one per API family, each mapping to the Kafka error code the
//! request handler must answer with. Errors carry enough context to be logged as they are.

use std::io;
use std::path::PathBuf;

/// Why a produce append was refused. Nothing was appended when this is returned.
#[derive(thiserror::Error, Debug)]
pub enum AppendError {
    /// Bad CRC32C, inconsistent lengths, truncated batch, empty records.
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// Magic byte other than 2 (message format v0/v1 or garbage).
    #[error("unsupported record batch magic {0}")]
    UnsupportedForMessageFormat(i8),
    /// One batch is bigger than `LogConfig::max_batch_bytes`.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// Header fields that contradict each other (e.g. record count vs last offset delta).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// The producer's epoch is older than the one this partition already saw (a zombie).
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// An idempotent batch does not continue its producer's sequence.
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    /// The partition cannot write after an earlier I/O failure.
    #[error("partition storage failure: {0}")]
    Storage(#[source] io::Error),
    /// The partition's log is closed: its shard is stopping, or the partition was deleted.
    #[error("partition log is closed (its shard is stopping or the partition was deleted)")]
    Closed,
}

impl AppendError {
    /// The Kafka error code for a produce response.
    pub fn kafka_code(&self) -> i16 {
        match self {
            AppendError::CorruptMessage(_) => 2,
            AppendError::UnsupportedForMessageFormat(_) => 43,
            AppendError::MessageTooLarge { .. } => 10,
            AppendError::InvalidRecord(_) => 87,
            AppendError::InvalidProducerEpoch { .. } => 47,
            AppendError::OutOfOrderSequence { .. } => 45,
            AppendError::Storage(_) => 56,
            // NOT_LEADER_OR_FOLLOWER: the client refreshes its metadata and retries where the partition is now.
            AppendError::Closed => 6,
        }
    }
}

/// Why a fetch / list-offsets read failed.
#[derive(thiserror::Error, Debug)]
pub enum ReadError {
    #[error("offset {offset} is outside [{log_start}, {hw}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        hw: i64,
    },
    #[error("partition read failure: {0}")]
    Storage(#[source] io::Error),
}

impl ReadError {
    /// For internal readers (recovery replay, compaction) that report `io::Error`s.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            ReadError::Storage(e) => e,
            e @ ReadError::OffsetOutOfRange { .. } => io::Error::other(e.to_string()),
        }
    }

    /// The Kafka error code for a fetch / list-offsets response.
    pub fn kafka_code(&self) -> i16 {
        match self {
            ReadError::OffsetOutOfRange { .. } => 1,
            ReadError::Storage(_) => 56,
        }
    }
}

/// Why DeleteRecords failed. The log start offset did not move when this is returned, except
/// for `Storage` after the in-memory move (the checkpoint write failed; retried by the next call).
#[derive(thiserror::Error, Debug)]
pub enum DeleteRecordsError {
    #[error("delete-records offset {offset} is beyond the high watermark {hw}")]
    OffsetOutOfRange { offset: i64, hw: i64 },
    #[error("persisting the log start offset failed: {0}")]
    Storage(#[source] io::Error),
}

impl DeleteRecordsError {
    /// The Kafka error code for a DeleteRecords response.
    pub fn kafka_code(&self) -> i16 {
        match self {
            DeleteRecordsError::OffsetOutOfRange { .. } => 1,
            DeleteRecordsError::Storage(_) => 56,
        }
    }
}

/// Lifecycle failures: opening, recovering, deleting partitions.
#[derive(thiserror::Error, Debug)]
pub enum EngineError {
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The shard is closing its partitions: no partition opens any more (see `ShardStorage::close_all`).
    #[error("the shard is stopping: partition {topic}-{partition} is not opened")]
    Stopping { topic: String, partition: i32 },
}

impl EngineError {
    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        EngineError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// Copy for the callers that joined a shared (single-flight) open; `io::Error` is not `Clone`.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            EngineError::Io {
                context,
                path,
                source,
            } => EngineError::Io {
                context,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            EngineError::Stopping { topic, partition } => EngineError::Stopping {
                topic: topic.clone(),
                partition: *partition,
            },
        }
    }
}

/// Context-free copy of an `io::Error`, for errors that must be reported to several waiters.
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}
