//! Group state lives in its `__consumer_offsets` partition and nowhere else: every change is appended there as
//! one record batch (no Raft proposal, no second store), and a shard that opens the partition replays it to
//! rebuild its groups. The last record of a key wins, exactly as log compaction would keep it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::BytesMut;

use pinlog_engine::PartitionLog;

use super::codes::{COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR};
use super::records::{decode_batches, encode_batch, GroupRecord, RecordError};
use super::state::Group;
use crate::codes::{NONE, REQUEST_TIMED_OUT};
use crate::partition_ops::now_ms;

/// Bytes read per step while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("append to __consumer_offsets refused: {0}")]
    Append(#[from] pinlog_engine::AppendError),
    #[error("cannot encode group records: {0}")]
    Encode(#[from] RecordError),
    #[error("cannot read __consumer_offsets at offset {offset}: {reason}")]
    Read { offset: i64, reason: String },
}

/// The Kafka code for group records that could not be appended (`what` was being stored), logged. A coordinator
/// whose partition log is closed is stopping (or its partition moved): that is NOT_COORDINATOR, so the client looks
/// the coordinator up again, and it is logged at info. Any other failure is an error.
pub fn refused(group: &str, what: &str, err: &StoreError) -> i16 {
    if matches!(err, StoreError::Append(pinlog_engine::AppendError::Closed)) {
        tracing::info!(
            group,
            "{what} not stored: the coordinator's partition is closed"
        );
        return NOT_COORDINATOR;
    }
    tracing::error!(group, %err, "cannot store {what}");
    COORDINATOR_NOT_AVAILABLE
}

/// Appends `records` as one batch; returns the last offset to wait on. No await: the caller can change its
/// in-memory state in the same step, so log order and memory order never differ.
pub fn append(
    log: &PartitionLog,
    leader_epoch: i32,
    records: &[GroupRecord],
) -> Result<i64, StoreError> {
    let batch = encode_batch(records, now_ms())?;
    Ok(log
        .append(BytesMut::from(batch), leader_epoch, now_ms())?
        .last_offset)
}

/// Waits until `last_offset` is durable, at most `timeout`; the Kafka error code of the outcome.
pub async fn wait_durable(log: &PartitionLog, last_offset: i64, timeout: Duration) -> i16 {
    let waited =
        glommio::timer::timeout(timeout, async { Ok(log.wait_durable(last_offset).await) }).await;
    match waited {
        Ok(Ok(())) => NONE,
        Ok(Err(err)) => {
            tracing::error!(%err, "writing __consumer_offsets failed");
            COORDINATOR_NOT_AVAILABLE
        }
        Err(_) => REQUEST_TIMED_OUT,
    }
}

/// Replays a partition into `groups` (which holds only this partition's groups afterwards if it started empty).
/// Undecodable records are skipped with a warning: one bad record must not make a whole partition unusable.
pub async fn replay(
    log: &PartitionLog,
    now: u64,
    groups: &mut HashMap<String, Group>,
) -> Result<usize, StoreError> {
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    let mut applied = 0;
    let mut tombstoned = HashSet::new();
    while offset < end {
        let read = log
            .read(offset, REPLAY_READ_BYTES)
            .await
            .map_err(|e| StoreError::Read {
                offset,
                reason: e.to_string(),
            })?;
        let records =
            decode_batches(read.records.into_contiguous()).map_err(|e| StoreError::Read {
                offset,
                reason: e.to_string(),
            })?;
        let Some(last) = records.last().map(|(o, _)| *o) else {
            break;
        };
        for (at, record) in records {
            let Some(key) = record.key else { continue };
            match GroupRecord::decode(&key, record.value.as_deref()) {
                Ok(r) => {
                    apply(now, groups, &mut tombstoned, r);
                    applied += 1;
                }
                Err(err) => tracing::warn!(offset = at, %err, "skipping undecodable group record"),
            }
        }
        offset = last + 1;
    }
    groups.retain(|id, g| !(tombstoned.contains(id) && g.is_empty() && g.offsets.is_empty()));
    Ok(applied)
}

fn apply(
    now: u64,
    groups: &mut HashMap<String, Group>,
    tombstoned: &mut HashSet<String>,
    record: GroupRecord,
) {
    match record {
        GroupRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group));
            match value {
                Some(v) => {
                    g.offsets.insert((topic, partition), v);
                }
                None => {
                    g.offsets.remove(&(topic, partition));
                }
            }
        }
        GroupRecord::Group { group, value } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group));
            match value {
                Some(v) => {
                    tombstoned.remove(&group);
                    g.restore(now, v);
                }
                None => {
                    tombstoned.insert(group.clone());
                    let offsets = std::mem::take(&mut g.offsets);
                    *g = Group::new(&group);
                    g.offsets = offsets;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinlog_engine::AppendError;

    #[test]
    fn a_closed_partition_is_not_coordinator_and_any_other_failure_is_unavailable() {
        assert_eq!(
            refused("g", "offsets", &StoreError::Append(AppendError::Closed)),
            NOT_COORDINATOR
        );
        let failed = AppendError::Storage(std::io::Error::other("disk gone"));
        assert_eq!(
            refused("g", "offsets", &StoreError::Append(failed)),
            COORDINATOR_NOT_AVAILABLE
        );
    }
}
