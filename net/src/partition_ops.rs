//! The work a request does on one partition, the same whether it runs on this shard or arrives over the mesh.
//! Requests and replies own their data (`Bytes` is shared, not copied) so they can cross shards. Produce data is a
//! `BytesMut`: the owner shard's log patches offsets into it in place and keeps it.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use pinlog_engine::{PartitionLog, ReadError, ReadOutcome, RecordSet};

use crate::codes;

#[derive(Debug)]
pub struct PartitionRequest {
    /// Shared by every partition of one topic in a request: one allocation per topic, not per partition (`Arc`, not
    /// `Rc`: a request may be forwarded to the owner shard's thread).
    pub topic: Arc<str>,
    pub partition: i32,
    pub op: PartitionOp,
}

#[derive(Debug)]
pub enum PartitionOp {
    /// Append `records` (one or more v2 batches); with acks != 0 wait until durable, at most `timeout`.
    Produce {
        records: BytesMut,
        acks: i16,
        timeout: Duration,
    },
    /// Whole batches from `offset`, at most `max_bytes` beyond the first batch.
    Read { offset: i64, max_bytes: usize },
    /// -2 earliest, -1 latest, otherwise the first offset with a timestamp >= the value.
    ListOffset { timestamp: i64 },
    /// A consumer-group request for a group of this `__consumer_offsets` partition. Boxed: a group call is several
    /// times the size of the other ops, and every op of a 1,000-partition fetch would pay for it in each move.
    Group(Box<crate::group::GroupCall>),
    /// Move the log start to `offset` (-1: the high watermark), bounded by `timeout`.
    DeleteRecords { offset: i64, timeout: Duration },
    /// The partition's size in bytes (DescribeLogDirs).
    Size,
}

#[derive(Debug)]
pub enum PartitionReply {
    Produced {
        error_code: i16,
        base_offset: i64,
        log_start_offset: i64,
        /// The broker's timestamp for LogAppendTime topics, -1 otherwise.
        log_append_time_ms: i64,
        /// A retried batch of an idempotent producer, answered with its original offsets (nothing appended).
        duplicate: bool,
    },
    Read {
        error_code: i16,
        high_watermark: i64,
        log_start_offset: i64,
        records: RecordSet,
    },
    Deleted {
        error_code: i16,
        low_watermark: i64,
    },
    Offset {
        error_code: i16,
        offset: i64,
        timestamp: i64,
    },
    /// Boxed for the same reason as [`PartitionOp::Group`].
    Group(Box<crate::group::GroupReply>),
    Size {
        error_code: i16,
        bytes: i64,
    },
}

impl PartitionReply {
    /// The reply that carries `error_code` for a request of this kind (unknown partition, timeout, peer gone).
    pub fn error_for(op: &PartitionOp, error_code: i16) -> PartitionReply {
        match op {
            PartitionOp::Produce { .. } => PartitionReply::Produced {
                error_code,
                base_offset: -1,
                log_start_offset: -1,
                log_append_time_ms: -1,
                duplicate: false,
            },
            PartitionOp::Read { .. } => PartitionReply::Read {
                error_code,
                high_watermark: -1,
                log_start_offset: -1,
                records: RecordSet::default(),
            },
            PartitionOp::ListOffset { .. } => PartitionReply::Offset {
                error_code,
                offset: -1,
                timestamp: -1,
            },
            PartitionOp::DeleteRecords { .. } => PartitionReply::Deleted {
                error_code,
                low_watermark: -1,
            },
            PartitionOp::Size => PartitionReply::Size {
                error_code,
                bytes: -1,
            },
            PartitionOp::Group(call) => PartitionReply::Group(Box::new(
                crate::group::GroupReply::error_for(call, group_error(error_code)),
            )),
        }
    }
}

/// Group clients re-find their coordinator on NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE; a partition-level
/// code would be fatal to them.
fn group_error(error_code: i16) -> i16 {
    match error_code {
        codes::UNKNOWN_TOPIC_OR_PARTITION => crate::group::codes::NOT_COORDINATOR,
        codes::NONE => codes::NONE,
        _ => crate::group::codes::COORDINATOR_NOT_AVAILABLE,
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The reply to `op` if it is a read that memory answers (see `PartitionLog::read_in_memory`): no task needed.
pub fn run_in_memory(log: &PartitionLog, op: &PartitionOp) -> Option<PartitionReply> {
    let PartitionOp::Read { offset, max_bytes } = *op else {
        return None;
    };
    let read = log.read_in_memory(offset, max_bytes)?;
    Some(read_reply(log, offset, read))
}

fn read_reply(
    log: &PartitionLog,
    offset: i64,
    read: Result<ReadOutcome, ReadError>,
) -> PartitionReply {
    match read {
        Ok(read) => PartitionReply::Read {
            error_code: codes::NONE,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            records: read.records,
        },
        Err(err) => {
            tracing::debug!(%err, offset, "read refused");
            PartitionReply::Read {
                error_code: err.kafka_code(),
                high_watermark: log.high_watermark(),
                log_start_offset: log.log_start_offset(),
                records: RecordSet::default(),
            }
        }
    }
}

/// Runs `op` on a partition this shard owns and has open.
pub async fn run(log: Rc<PartitionLog>, leader_epoch: i32, op: PartitionOp) -> PartitionReply {
    match op {
        PartitionOp::Produce {
            records,
            acks,
            timeout,
        } => produce(&log, leader_epoch, records, acks, timeout).await,
        PartitionOp::Read { offset, max_bytes } => {
            read_reply(&log, offset, log.read(offset, max_bytes).await)
        }
        PartitionOp::ListOffset { timestamp } => list_offset(&log, timestamp).await,
        PartitionOp::DeleteRecords { offset, timeout } => {
            let deleted = glommio::timer::timeout(timeout, async {
                Ok(log.delete_records_before(offset).await)
            })
            .await;
            match deleted {
                Ok(Ok(low_watermark)) => PartitionReply::Deleted {
                    error_code: codes::NONE,
                    low_watermark,
                },
                Ok(Err(err)) => {
                    tracing::debug!(%err, offset, "delete records refused");
                    PartitionReply::Deleted {
                        error_code: err.kafka_code(),
                        low_watermark: log.log_start_offset(),
                    }
                }
                Err(_) => PartitionReply::Deleted {
                    error_code: codes::REQUEST_TIMED_OUT,
                    low_watermark: log.log_start_offset(),
                },
            }
        }
        PartitionOp::Size => PartitionReply::Size {
            error_code: codes::NONE,
            bytes: log.size_bytes() as i64,
        },
        // route::run_local hands group calls to the shard's coordinator; one arriving here has no coordinator.
        PartitionOp::Group(call) => {
            PartitionReply::error_for(&PartitionOp::Group(call), codes::UNKNOWN_TOPIC_OR_PARTITION)
        }
    }
}

async fn produce(
    log: &PartitionLog,
    leader_epoch: i32,
    records: BytesMut,
    acks: i16,
    timeout: Duration,
) -> PartitionReply {
    let appended = match log.append(records, leader_epoch, now_ms()) {
        Ok(appended) => appended,
        Err(err) => {
            tracing::debug!(%err, "produce refused");
            return PartitionReply::Produced {
                error_code: err.kafka_code(),
                base_offset: -1,
                log_start_offset: log.log_start_offset(),
                log_append_time_ms: -1,
                duplicate: false,
            };
        }
    };
    let error_code = if acks == 0 {
        codes::NONE
    } else {
        let durable = glommio::timer::timeout(timeout, async {
            Ok(log.wait_durable(appended.last_offset).await)
        })
        .await;
        match durable {
            Ok(Ok(())) => codes::NONE,
            Ok(Err(err)) => {
                tracing::error!(%err, "write to the log failed");
                codes::KAFKA_STORAGE_ERROR
            }
            Err(_) => codes::REQUEST_TIMED_OUT,
        }
    };
    PartitionReply::Produced {
        error_code,
        base_offset: appended.base_offset,
        log_start_offset: appended.log_start_offset,
        log_append_time_ms: appended.log_append_time_ms,
        duplicate: appended.duplicate,
    }
}

async fn list_offset(log: &PartitionLog, timestamp: i64) -> PartitionReply {
    let found = match timestamp {
        -2 => Ok(Some((log.log_start_offset(), -1))),
        -1 => Ok(Some((log.high_watermark(), -1))),
        ts => log.offset_for_timestamp(ts).await,
    };
    match found {
        Ok(Some((offset, timestamp))) => PartitionReply::Offset {
            error_code: codes::NONE,
            offset,
            timestamp,
        },
        // Kafka answers "no such timestamp" with offset -1 and no error.
        Ok(None) => PartitionReply::Offset {
            error_code: codes::NONE,
            offset: -1,
            timestamp: -1,
        },
        Err(err) => PartitionReply::Offset {
            error_code: err.kafka_code(),
            offset: -1,
            timestamp: -1,
        },
    }
}
