//! The directories of deleted partitions, freed in the background a file at a time, in the steps `reap.rs` frees
//! retired segments in.
//!
//! Removing a deleted topic's directory at once frees all its blocks at once, and on this project's hosts (ext4
//! with `discard`) that stalls every other file's fdatasync for as long: ~170 ms per written GiB (`reap.rs`). It
//! also held up the shard's metadata apply, which awaited the removal before it opened the next topic's partitions.
//! So `ShardStorage::delete_partition` only closes the log and renames the directory away (`<dir>.<nanos>-delete`),
//! and hands it here. One task per shard frees the queued directories in turn: each file truncated by
//! [`SHRINK_STEP_BYTES`] with a pause between steps, then unlinked, then the empty directory removed. When the shard
//! stops, the task stops between steps and what is left is removed at the next start, before any partition opens
//! (`remove_interrupted_deletes`).

use crate::metrics::StorageMetrics;
use crate::reap::{shrink, SHRINK_STEP_BYTES};
use crate::segment::{open_rw, remove_if_exists};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Pause after each step of freeing a deleted partition's file: about 160 MB/s per shard. Nothing waits for this
/// space, and freeing a 5 GB topic at the retention pace (10 ms, ~0.8 GB/s per shard) still put multi-second
/// backlogs into the other partitions' produce in two runs of seven (bench/EXPERIMENTS.md, "Deleting a topic under load").
pub const DOOMED_SHRINK_PAUSE: Duration = Duration::from_millis(50);

/// A shard's queue of deleted partition directories.
pub struct DoomedDirs {
    queue: RefCell<VecDeque<PathBuf>>,
    /// Whether the task that frees the queue runs.
    freeing: Cell<bool>,
    /// Set when the shard stops: the task leaves the rest to the next start.
    stopped: Cell<bool>,
    /// `deleted_partitions_pending` counts the directories queued or being freed.
    metrics: Arc<StorageMetrics>,
}

impl DoomedDirs {
    pub fn new(metrics: Arc<StorageMetrics>) -> DoomedDirs {
        DoomedDirs {
            queue: RefCell::default(),
            freeing: Cell::new(false),
            stopped: Cell::new(false),
            metrics,
        }
    }

    /// Queues `dir` (already renamed away) and starts the freeing task if it does not run.
    pub fn free_later(self: &Rc<Self>, dir: PathBuf) {
        self.queue.borrow_mut().push_back(dir);
        self.metrics
            .deleted_partitions_pending
            .fetch_add(1, Relaxed);
        if self.freeing.replace(true) {
            return;
        }
        let this = self.clone();
        glommio::spawn_local(async move {
            while let Some(dir) = this.next() {
                match free_dir(&dir, &|| this.stopped.get()).await {
                    Ok(true) => {
                        tracing::info!(dir = %dir.display(), "deleted partition's files freed")
                    }
                    // Stopped: still pending, for the next start.
                    Ok(false) => continue,
                    Err(e) => tracing::warn!(
                        dir = %dir.display(), %e,
                        "freeing a deleted partition's files failed; the next start removes them"
                    ),
                }
                this.metrics
                    .deleted_partitions_pending
                    .fetch_sub(1, Relaxed);
            }
            this.freeing.set(false);
        })
        .detach();
    }

    fn next(&self) -> Option<PathBuf> {
        if self.stopped.get() {
            return None;
        }
        self.queue.borrow_mut().pop_front()
    }

    /// Directories queued or being freed.
    #[cfg(test)]
    fn pending(&self) -> u64 {
        self.metrics.deleted_partitions_pending.load(Relaxed)
    }

    /// The shard stops: no more steps; the next start removes what is left.
    pub fn stop(&self) {
        self.stopped.set(true);
    }
}

/// Frees the files of `dir` in steps, then removes it. `Ok(false)` if `stopped` cut it short.
async fn free_dir(dir: &Path, stopped: &dyn Fn() -> bool) -> io::Result<bool> {
    // A partition directory holds tens of files: listing it on the shard costs less than a blocking-thread trip,
    // and leaves nothing in flight on glommio's blocking threads when the executor stops.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| at("listing", dir, e))? {
        let entry = entry.map_err(|e| at("listing", dir, e))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| at("stat", &path, e))?;
        if meta.is_file() {
            files.push((path, meta.len()));
        }
    }
    for (path, bytes) in files {
        if bytes > SHRINK_STEP_BYTES {
            let file = open_rw(&path).await.map_err(|e| at("opening", &path, e))?;
            let shrunk = shrink(&file, bytes, DOOMED_SHRINK_PAUSE, stopped).await;
            file.close()
                .await
                .map_err(|e| at("closing", &path, e.into()))?;
            shrunk.map_err(|e| at("truncating", &path, e))?;
        }
        if stopped() {
            return Ok(false);
        }
        remove_if_exists(&path)
            .await
            .map_err(|e| at("removing", &path, e))?;
    }
    // Only small files (if any appeared) and empty subdirectories are left.
    std::fs::remove_dir_all(dir).map_err(|e| at("removing", dir, e))?;
    Ok(true)
}

/// `e` with what was being done to which path.
fn at(doing: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{run, temp_dir};
    use std::time::{Duration, Instant};

    /// A directory with one file of `steps` shrink steps (a file of one step is unlinked at once) and a small one.
    fn doomed_dir(root: &Path, name: &str, steps: u64) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        let big = std::fs::File::create(dir.join("00000000000000000000.log")).unwrap();
        big.set_len(steps * SHRINK_STEP_BYTES).unwrap();
        std::fs::write(dir.join("00000000000000000000.index"), [0u8; 64]).unwrap();
        dir
    }

    async fn until(deadline: Duration, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < deadline, "not done within {deadline:?}");
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn queued_directories_are_freed_in_steps_one_after_the_other() {
        run(|| async {
            let root = temp_dir();
            let first = doomed_dir(root.path(), "t-0.1-delete", 3);
            let second = doomed_dir(root.path(), "t-1.1-delete", 2);
            let doomed = Rc::new(DoomedDirs::new(Arc::default()));
            let started = Instant::now();
            doomed.free_later(first.clone());
            doomed.free_later(second.clone());
            assert_eq!(
                doomed.pending(),
                2,
                "queued, not removed in the caller's path"
            );
            assert!(first.exists() && second.exists());
            until(Duration::from_secs(20), || doomed.pending() == 0).await;
            assert!(!first.exists() && !second.exists());
            assert!(
                started.elapsed() >= 5 * DOOMED_SHRINK_PAUSE,
                "five steps in all, each followed by a pause"
            );
            let third = doomed_dir(root.path(), "t-2.1-delete", 1);
            doomed.free_later(third.clone());
            until(Duration::from_secs(20), || doomed.pending() == 0).await;
            assert!(
                !third.exists(),
                "a new task starts after the last one ended"
            );
        });
    }

    #[test]
    fn a_stopped_shard_leaves_the_rest_to_the_next_start() {
        run(|| async {
            let root = temp_dir();
            let dir = doomed_dir(root.path(), "t-0.1-delete", 50);
            let doomed = Rc::new(DoomedDirs::new(Arc::default()));
            doomed.free_later(dir.clone());
            glommio::timer::sleep(DOOMED_SHRINK_PAUSE).await;
            doomed.stop();
            until(Duration::from_secs(20), || !doomed.freeing.get()).await;
            assert!(dir.exists(), "left for the start-up sweep");
            assert_eq!(doomed.pending(), 1, "and still counted as pending");
        });
    }
}
