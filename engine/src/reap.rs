//! Freeing retired segment files in small steps.
//!
//! Unlinking a written 1 GiB segment on ext4 mounted with `discard` (this project's hosts are) frees its blocks at
//! once and stalls every other file's fdatasync for as long: ~170 ms, measured with `pinlog-bench floor` beside an
//! unlink. A retention pass over 16 partitions that rolled together put 0.6 s stalls into every produce. So
//! retention and DeleteRecords only *retire* a segment (`Segment::retire`: renamed `<base>.log.deleted`, file kept
//! open), and the shard's housekeeping frees it here: truncated by [`SHRINK_STEP_BYTES`] at a time with
//! [`SHRINK_PAUSE`] between steps, then unlinked (empty by then) and closed. One partition at a time per shard,
//! since housekeeping walks partitions in turn. Measured at 307 MB/s with 256 MiB segments and retention by bytes
//! (three waves of 16 deletions in 45 s; medians of 2 alternating rounds, bench/EXPERIMENTS.md): publish p99 472 ms
//! unlinking at once, 5.6 ms freed in steps, 3.0 ms with no retention at all. DeleteRecords' files are freed at the next housekeeping pass
//! (`retention_check_interval_ms`), as Kafka frees them after `file.delete.delay.ms`.
//!
//! A file a reader still holds (a fetch in flight on the oldest segment) waits for the next pass: truncating it
//! would cut that read short. When the shard stops (`hurry`), the rest is freed at once. Compaction hands over
//! the same way the segments it empties and the old logs it renames a cleaned copy over.
//!
//! Before freeing, a pass keeps one retired file per partition for the next segment to write over (`recycle.rs`);
//! a partition at its retention hardly ever gets here, since its rolls take their files directly.

use crate::log::PartitionLog;
use crate::segment::{open_rw, remove_if_exists, Retired};
use glommio::io::DmaFile;
use std::io;
use std::rc::Rc;
use std::time::Duration;

/// Bytes freed by one truncation step.
pub const SHRINK_STEP_BYTES: u64 = 8 << 20;
/// Pause after each step, so the device serves commits between the steps' discards (~0.7 GiB/s per shard at most,
/// above the rate a shard can ingest).
pub const SHRINK_PAUSE: Duration = Duration::from_millis(10);

impl PartitionLog {
    /// Frees the files of retired segments, or keeps them for the next segments (`recycle.rs`); returns how many
    /// were freed or kept. `hurry()` turns the steps off (the shard
    /// is stopping). A file still held by a reader is kept for the next pass unless hurrying. The first error is
    /// returned after the others are tried.
    pub async fn reap_retired(&self, hurry: &dyn Fn() -> bool) -> io::Result<usize> {
        // The files the next rolls can write over are kept (recycle.rs); the rest are freed.
        let pooled = if hurry() {
            0
        } else {
            self.pool_retired().await?
        };
        let retired = std::mem::take(&mut self.inner.borrow_mut().retired);
        let (mut freed, mut first_error) = (pooled, None);
        for r in retired {
            let in_use = r.file.as_ref().is_some_and(|f| Rc::strong_count(f) > 1);
            if in_use && !hurry() {
                self.inner.borrow_mut().retired.push(r);
                continue;
            }
            match free(r, hurry).await {
                Ok(()) => freed += 1,
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), %e, "freeing a retired segment failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(freed), Err)
    }
}

/// Shrinks `r`'s file in steps (unless hurrying or another holder reads it), then unlinks and closes it.
async fn free(r: Retired, hurry: &dyn Fn() -> bool) -> io::Result<()> {
    let file = match (r.file, &r.path) {
        (Some(file), _) => Some(file),
        // Never opened here: open it by its new name to shrink it too.
        (None, Some(path)) => match open_rw(path).await {
            Ok(file) => Some(Rc::new(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        },
        (None, None) => None,
    };
    let shrunk = match &file {
        Some(file) if Rc::strong_count(file) == 1 => {
            shrink(file, r.bytes, SHRINK_PAUSE, hurry).await
        }
        _ => Ok(()),
    };
    // Unlinked even if a step failed: the rest of the blocks go at once, but the file does not linger.
    if let Some(path) = &r.path {
        remove_if_exists(path).await?;
    }
    if let Some(file) = file {
        // With other holders this only drops our reference; the last one closes the fd.
        file.close_rc().await?;
    }
    shrunk
}

/// Truncates `file` from `size` down to nothing, a step at a time with `pause` after each, until `hurry()`.
pub(crate) async fn shrink(
    file: &DmaFile,
    mut size: u64,
    pause: Duration,
    hurry: &dyn Fn() -> bool,
) -> io::Result<()> {
    while size > 0 && !hurry() {
        size = size.saturating_sub(SHRINK_STEP_BYTES);
        file.truncate(size).await?;
        glommio::timer::sleep(pause).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{deleted_path, log_path};
    use crate::tests::{fill, filled_small_log, run, small_config, temp_dir};
    use crate::LogConfig;

    /// A log that keeps nothing past its active segment, filled with a few closed segments.
    async fn filled_log(dir: &std::path::Path) -> Rc<PartitionLog> {
        let log = filled_small_log(dir).await;
        // Limited only now: a roll applies retention too.
        log.set_config(LogConfig {
            retention_bytes: 0,
            ..small_config()
        });
        log
    }

    #[test]
    fn retention_retires_segments_and_housekeeping_frees_them() {
        run(|| async {
            let dir = temp_dir();
            let log = filled_log(dir.path()).await;
            let deleted = log.enforce_retention(0).await.unwrap();
            assert!(deleted >= 2, "{deleted}");
            assert!(!log_path(dir.path(), 0).exists(), "out of the log at once");
            assert!(
                deleted_path(dir.path(), 0).exists(),
                "but its blocks are not freed in the request's path"
            );
            assert_eq!(log.reap_retired(&|| false).await.unwrap(), deleted);
            assert!(!deleted_path(dir.path(), 0).exists());
            let names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let kept = names.iter().filter(|n| n.ends_with(".log.free")).count();
            let left = names.iter().filter(|n| n.ends_with(".log.deleted")).count();
            assert_eq!(
                (kept, left),
                (1, 0),
                "one kept for the next roll: {names:?}"
            );
            assert_eq!(log.reap_retired(&|| false).await.unwrap(), 0);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_file_a_reader_holds_waits_for_the_next_pass_and_close_frees_it() {
        run(|| async {
            let dir = temp_dir();
            let log = filled_log(dir.path()).await;
            let reader = log.inner.borrow().segments[0]
                .file()
                .expect("written segment is open");
            let deleted = log.enforce_retention(0).await.unwrap();
            assert_eq!(
                log.reap_retired(&|| false).await.unwrap(),
                deleted - 1,
                "all but the one a reader holds"
            );
            assert!(deleted_path(dir.path(), 0).exists());
            assert_eq!(
                reader.read_at_aligned(0, 4096).await.unwrap().len(),
                4096,
                "the reader still reads its whole file"
            );
            drop(reader);
            assert_eq!(log.reap_retired(&|| false).await.unwrap(), 1);
            assert!(!deleted_path(dir.path(), 0).exists());

            let limited = log.config();
            log.set_config(small_config());
            fill(&log, 200).await;
            log.set_config(limited);
            let base = log.inner.borrow().segments[0].base_offset;
            let _held = log.inner.borrow().segments[0].file();
            assert!(log.enforce_retention(0).await.unwrap() > 0);
            log.close().await.unwrap();
            assert!(
                !deleted_path(dir.path(), base).exists(),
                "close frees retired files at once, held or not"
            );
        });
    }

    #[test]
    fn shrink_frees_in_steps_unless_hurried() {
        run(|| async {
            let dir = temp_dir();
            let path = dir.path().join("big.log.deleted");
            let file = open_rw(&path).await.unwrap();
            let bytes = 2 * SHRINK_STEP_BYTES + 4096;
            file.truncate(bytes).await.unwrap();
            shrink(&file, bytes, SHRINK_PAUSE, &|| true).await.unwrap();
            assert_eq!(file.file_size().await.unwrap(), bytes, "hurry: no steps");
            let started = std::time::Instant::now();
            shrink(&file, bytes, SHRINK_PAUSE, &|| false).await.unwrap();
            assert_eq!(file.file_size().await.unwrap(), 0);
            assert!(
                started.elapsed() >= 3 * SHRINK_PAUSE,
                "three steps, each followed by a pause"
            );
            file.close().await.unwrap();
        });
    }

    #[test]
    fn recovery_removes_retired_files_a_crash_left() {
        run(|| async {
            let dir = temp_dir();
            let leftover = deleted_path(dir.path(), 0);
            std::fs::write(&leftover, vec![0u8; 8192]).unwrap();
            let log = PartitionLog::open(dir.path(), small_config())
                .await
                .unwrap();
            assert!(!leftover.exists());
            log.close().await.unwrap();
        });
    }
}
