//! Retention: delete whole closed segments, oldest first, while the partition would still hold
//! at least `retention_bytes` without the segment (Kafka's rule: retention keeps at least that
//! much, so a consumer near the end never loses its position at a roll), or while the oldest closed segment's max timestamp is older than
//! `retention_ms` (both only when the cleanup policy includes delete), and always the segments
//! entirely below the log start offset (DeleteRecords). The active segment and segments not
//! yet fully written and finalized are never deleted. Called by the shard's housekeeping, not
//! on a timer per partition, and at each roll (`recycle.rs`: the new segment takes the deleted
//! one's file). A deleted segment leaves the log at once but its file is only retired;
//! `reap.rs` frees it in steps or `recycle.rs` keeps it for the next segment.
//!
//! Retention and compaction both replace or delete segment files, so they never run at the
//! same time: each holds the log's maintenance flag (`MaintenanceGuard`), and the one that
//! finds it taken skips this round.

use crate::log::PartitionLog;
use crate::segment::Segment;
use std::io;
use std::rc::Rc;

/// Holds `Inner::maintenance` for one retention or compaction pass.
pub(crate) struct MaintenanceGuard<'a>(&'a PartitionLog);

impl Drop for MaintenanceGuard<'_> {
    fn drop(&mut self) {
        self.0.inner.borrow_mut().maintenance = false;
    }
}

impl PartitionLog {
    /// The maintenance flag, or `None` if another pass holds it.
    pub(crate) fn begin_maintenance(&self) -> Option<MaintenanceGuard<'_>> {
        let mut inner = self.inner.borrow_mut();
        if inner.maintenance {
            return None;
        }
        inner.maintenance = true;
        Some(MaintenanceGuard(self))
    }

    /// Delete whole closed segments past retention.bytes/ms or below the log start; returns
    /// how many were deleted (0 when compaction is busy: the next pass catches up).
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, io::Error> {
        self.delete_segments(Some(now_ms)).await
    }

    /// Retention proper (`now_ms` given, policy permitting) and segments below the log start.
    pub(crate) async fn delete_segments(&self, now_ms: Option<i64>) -> io::Result<usize> {
        let Some(_guard) = self.begin_maintenance() else {
            return Ok(0);
        };
        let victims = self.take_victims(now_ms.filter(|_| self.config().cleanup_policy.deletes()));
        if !victims.is_empty() {
            // A read-ahead window may hold a victim's file; the next sequential read starts a new one.
            self.readahead.borrow_mut().clear();
        }
        for seg in &victims {
            // Retired, not freed: the shard's housekeeping frees the file in steps (reap.rs).
            let retired = seg.retire().await?;
            self.inner.borrow_mut().retired.push(retired);
            tracing::debug!(dir = %self.dir.display(), base = seg.base_offset, "retention retired segment");
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

    /// Remove the doomed segments from the log (no await: readers never see a half state).
    fn take_victims(&self, now_ms: Option<i64>) -> Vec<Rc<Segment>> {
        let mut inner = self.inner.borrow_mut();
        let mut total = Self::segments_bytes(&inner);
        let mut victims = Vec::new();
        while inner.segments.len() > 1 {
            let first = &inner.segments[0];
            let st = first.state.borrow();
            if !st.finalized {
                break;
            }
            let below_start = inner.segments[1].base_offset <= inner.log_start;
            // Not `total > retention_bytes`: that deleted the only closed segment as soon as the
            // active one had a byte, leaving less than retention_bytes in the log.
            let over_bytes = now_ms.is_some()
                && self.config().retention_bytes >= 0
                && total - st.size >= self.config().retention_bytes as u64;
            let expired = now_ms.is_some_and(|now| {
                self.config().retention_ms >= 0
                    && st
                        .time_index
                        .max_timestamp()
                        .is_some_and(|ts| ts < now.saturating_sub(self.config().retention_ms))
            });
            if !(below_start || over_bytes || expired) {
                break;
            }
            total -= st.size;
            drop(st);
            victims.push(inner.segments.remove(0));
        }
        if !victims.is_empty() {
            let first_base = inner.segments[0].base_offset;
            inner.log_start = inner.log_start.max(first_base);
            // Only the deleted (finalized, hence written) segments' batches leave the tail.
            inner.tail.drop_before(first_base);
        }
        victims
    }
}
