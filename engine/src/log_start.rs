//! The log start offset and DeleteRecords. The start offset is normally the first segment's
//! base; DeleteRecords moves it past that, into a segment, so it is persisted in the
//! checkpoint file `log-start-offset` (temp file, fdatasync, rename: a crash leaves the old or
//! the new value). At open the start is max(checkpoint, first segment base), capped at the log
//! end. Segments entirely below the start are deleted at once unless retention or compaction
//! is busy with the segment files; then the next retention pass deletes them.
//!
//! Checkpoint writes are single-flight: one writer persists the newest in-memory value, and
//! callers wait (event-driven) until a write covering their value ends.

use crate::error::DeleteRecordsError;
use crate::log::PartitionLog;
use crate::segment::{read_file, write_file_atomic};
use std::io;
use std::path::{Path, PathBuf};

const CHECKPOINT_FILE: &str = "log-start-offset";
const CHECKPOINT_BYTES: usize = 12;

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

fn encode(log_start: i64) -> [u8; CHECKPOINT_BYTES] {
    let mut out = [0u8; CHECKPOINT_BYTES];
    out[4..].copy_from_slice(&log_start.to_be_bytes());
    let crc = crc32c::crc32c(&out[4..]);
    out[..4].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<i64> {
    let bytes: &[u8; CHECKPOINT_BYTES] = bytes.try_into().ok()?;
    let crc = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    (crc == crc32c::crc32c(&bytes[4..]))
        .then(|| i64::from_be_bytes(bytes[4..].try_into().expect("8 bytes")))
}

/// The checkpointed log start; `None` if there is no (readable) checkpoint.
pub async fn load(dir: &Path) -> io::Result<Option<i64>> {
    let Some(bytes) = read_file(&checkpoint_path(dir)).await? else {
        return Ok(None);
    };
    let value = decode(&bytes);
    if value.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring a corrupt log start checkpoint");
    }
    Ok(value)
}

impl PartitionLog {
    /// DeleteRecords: make `offset` (-1: the high watermark) the log start offset, persist it,
    /// and delete the segments entirely below it. Returns the new log start (the low
    /// watermark), which never moves backwards.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(DeleteRecordsError::OffsetOutOfRange { offset, hw });
        }
        let log_start = {
            let mut inner = self.inner.borrow_mut();
            inner.log_start = inner.log_start.max(target);
            inner.log_start
        };
        self.persist_log_start(log_start)
            .await
            .map_err(DeleteRecordsError::Storage)?;
        self.delete_segments(None)
            .await
            .map_err(DeleteRecordsError::Storage)?;
        tracing::debug!(dir = %self.dir.display(), log_start, "records deleted");
        Ok(log_start)
    }

    /// Resolve once a checkpoint holding at least `log_start` is durable.
    async fn persist_log_start(&self, log_start: i64) -> io::Result<()> {
        loop {
            let value = {
                let mut inner = self.inner.borrow_mut();
                if inner.log_start_persisted >= log_start {
                    return Ok(());
                }
                if inner.checkpoint_writing {
                    None
                } else {
                    inner.checkpoint_writing = true;
                    Some(inner.log_start)
                }
            };
            let Some(value) = value else {
                self.checkpoint_waiters
                    .wait_until(|| !self.inner.borrow().checkpoint_writing)
                    .await;
                continue;
            };
            let written = write_file_atomic(&checkpoint_path(&self.dir), &encode(value)).await;
            {
                let mut inner = self.inner.borrow_mut();
                inner.checkpoint_writing = false;
                if written.is_ok() {
                    inner.log_start_persisted = inner.log_start_persisted.max(value);
                }
            }
            self.checkpoint_waiters.wake_all();
            written?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_roundtrip_and_corruption() {
        assert_eq!(decode(&encode(1234)), Some(1234));
        let mut bad = encode(1234);
        bad[11] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&encode(5)[..11]), None);
    }
}
