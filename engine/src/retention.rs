//! Retention: delete whole closed segments, oldest first, while the partition is over
//! `retention_bytes`, or while the oldest closed segment's max timestamp is older than
//! `retention_ms`. The active segment and segments not yet fully written and finalized are
//! never deleted. Called by the shard's housekeeping, not on a timer per partition.

use crate::log::PartitionLog;
use std::io;

impl PartitionLog {
    /// Delete whole closed segments past retention.bytes/ms; returns how many were deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, io::Error> {
        let victims = {
            let mut inner = self.inner.borrow_mut();
            let mut total: u64 = inner.segments.iter().map(|s| s.state.borrow().size).sum();
            let mut victims = Vec::new();
            while inner.segments.len() > 1 {
                let first = &inner.segments[0];
                let st = first.state.borrow();
                if !st.finalized {
                    break;
                }
                let over_bytes =
                    self.config.retention_bytes >= 0 && total > self.config.retention_bytes as u64;
                let expired = self.config.retention_ms >= 0
                    && st
                        .time_index
                        .max_timestamp()
                        .is_some_and(|ts| ts < now_ms.saturating_sub(self.config.retention_ms));
                if !(over_bytes || expired) {
                    break;
                }
                total -= st.size;
                drop(st);
                victims.push(inner.segments.remove(0));
            }
            if !victims.is_empty() {
                inner.log_start = inner.segments[0].base_offset;
                let log_start = inner.log_start;
                inner.tail.drop_before(log_start);
            }
            victims
        };
        for seg in &victims {
            seg.delete_files().await?;
            tracing::debug!(dir = %self.dir.display(), base = seg.base_offset, "retention deleted segment");
        }
        if !victims.is_empty() {
            tracing::info!(
                dir = %self.dir.display(),
                deleted = victims.len(),
                log_start = self.log_start_offset(),
                "retention deleted segments"
            );
        }
        Ok(victims.len())
    }
}
