//! Recycling the files of deleted segments as the files of new ones.
//!
//! A commit into a fresh (fallocated, unwritten) extent makes its fdatasync write the extent's metadata before the
//! cache flush; overwriting blocks that were written before does not. `pinlog-bench floor` on this project's
//! hosts: at 650 MB/s the disk alone commits with p99 2.4–3.4 ms into fresh files and 0.9–1.1 ms over written
//! ones (bench/EXPERIMENTS.md). And unlinking a written segment frees all of its blocks at once, which on a `discard`
//! mount stalls every other file's fdatasync (`reap.rs`). So a partition that has reached its retention writes
//! its new segments into the files of the segments retention takes away, as PostgreSQL recycles its WAL files:
//!
//! - After each roll, once the group commit has sealed the closed segment, a task of the log persists that
//!   segment's indexes and applies retention; a retired file no reader holds is renamed `<old base>.log.free` and
//!   put in the pool, at most [`RECYCLED_FILES_MAX`] per partition (housekeeping pools the files of DeleteRecords
//!   and compaction the same way; the others are freed in steps as before). None of it is on the commit path.
//! - The next roll's segment takes the oldest pooled file: renamed to `<base>.log`, the directory synced, and
//!   written from position 0 over the old batches.
//! - The old file's blocks were written before, so a commit below its old data only overwrites: it goes as one
//!   write, where a fresh segment's commit goes as two, the rewritten partial block apart (`group_commit.rs`). One
//!   durable write per commit instead of two is about half the tail at half max (bench/EXPERIMENTS.md, "One write
//!   per commit over recycled files").
//! - The old batches past the new data never read as data: every commit leaves at least the 12 zero bytes that
//!   recovery takes as the clean end after its last batch (`group_commit.rs`), and every old batch has an offset
//!   below the log start, so a scan expecting a higher offset stops at any it meets.
//! - Open adopts `.log.free` files left by the last run into the pool (extras are freed in steps).
//!
//! Files held by a reader are never pooled: a fetch in flight would read the new segment's bytes at its old
//! positions.

use crate::config::FlushPolicy;
use crate::log::{wall_clock_ms, PartitionLog};
use crate::producer_snapshot;
use crate::segment::{
    align_up, io_alignment, log_path, Retired, Segment, PREALLOCATE_STEP_MAX_BYTES,
};
use glommio::io::DmaFile;
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

/// Files one partition keeps for its next segments. One is enough for a partition at its retention (each roll
/// frees the file the next roll takes); more would hold disk space beyond retention for no use.
pub const RECYCLED_FILES_MAX: usize = 1;

/// Trimming a sealed segment gives back preallocated space; less than this is not worth a metadata fdatasync.
const TRIM_BYTES_MIN: u64 = 1 << 20;

/// A deleted segment's file waiting to be written over by a new segment.
pub struct FreeFile {
    /// `<old base>.log.free`.
    pub path: PathBuf,
    /// File length: the new segment's preallocation.
    pub bytes: u64,
}

/// `<base>.log.free` for a retired `<base>.log.deleted`.
fn free_path(retired: &Path) -> PathBuf {
    retired.with_extension("free")
}

/// At open: the `.log.free` files the last run left, the oldest [`RECYCLED_FILES_MAX`] for the pool and the rest
/// as retired files for housekeeping to free in steps.
pub fn adopt_free_files(dir: &Path) -> io::Result<(VecDeque<FreeFile>, Vec<Retired>)> {
    let mut pool: VecDeque<FreeFile> = find_free_files(dir)?.into();
    let extra = pool.split_off(pool.len().min(RECYCLED_FILES_MAX));
    let retired = extra
        .into_iter()
        .map(|f| Retired {
            path: Some(f.path),
            file: None,
            bytes: f.bytes,
        })
        .collect();
    Ok((pool, retired))
}

/// The `.log.free` files of `dir`, oldest segment first, with their lengths.
fn find_free_files(dir: &Path) -> io::Result<Vec<FreeFile>> {
    let mut free = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let is_free = path.extension().is_some_and(|e| e == "free")
            && path
                .file_stem()
                .is_some_and(|s| Path::new(s).extension().is_some_and(|e| e == "log"));
        if is_free {
            free.push(FreeFile {
                bytes: entry.metadata()?.len(),
                path,
            });
        }
    }
    free.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(free)
}

impl PartitionLog {
    /// Moves retired files no reader holds into the pool while it has room; returns how many.
    pub(crate) async fn pool_retired(&self) -> io::Result<usize> {
        let mut pooled = 0;
        loop {
            let candidate = {
                let mut inner = self.inner.borrow_mut();
                if inner.free.len() >= RECYCLED_FILES_MAX {
                    break;
                }
                let unread = inner.retired.iter().position(|r| {
                    r.path.is_some() && r.file.as_ref().is_none_or(|f| Rc::strong_count(f) == 1)
                });
                match unread {
                    Some(i) => inner.retired.remove(i),
                    None => break,
                }
            };
            let Retired {
                path: Some(path),
                file,
                bytes,
            } = candidate
            else {
                unreachable!("only retired files with a name are chosen");
            };
            let free = free_path(&path);
            let moved: io::Result<()> = async {
                if let Some(file) = file {
                    file.close_rc().await?;
                }
                glommio::io::rename(&path, &free).await?;
                Ok(())
            }
            .await;
            if let Err(e) = moved {
                // Left for the reaper to free.
                self.inner.borrow_mut().retired.push(Retired {
                    path: Some(path),
                    file: None,
                    bytes,
                });
                return Err(e);
            }
            self.inner
                .borrow_mut()
                .free
                .push_back(FreeFile { path: free, bytes });
            pooled += 1;
        }
        Ok(pooled)
    }

    /// After `seg` rolled and the group commit sealed it: persists its indexes, then applies retention and pools
    /// what it retired, so the next roll finds a file waiting. In a task of its own, chained after the previous
    /// roll's (so they never interleave) and awaited by `close`; the commits of the new segment go on meanwhile.
    pub(crate) fn spawn_after_roll(&self, seg: &Rc<Segment>) {
        let log = self.me.upgrade().expect("called through a live Rc");
        let seg = seg.clone();
        let previous = self.inner.borrow_mut().after_roll.take();
        let task = glommio::spawn_local(async move {
            if let Some(previous) = previous {
                previous.await;
            }
            if let Err(e) = log.trim(&seg).await {
                // Not fatal: the zero bytes after the data mark its end, and open rebuilds a missing index.
                tracing::warn!(dir = %log.dir.display(), base = seg.base_offset, error = %e, "trimming a rolled segment or persisting its indexes failed");
            }
            seg.state.borrow_mut().finalized = true;
            log.write_pending_snapshot().await;
            if log.inner.borrow().closed {
                return;
            }
            let pooled = match log.delete_segments(Some(wall_clock_ms())).await {
                Ok(_) => log.pool_retired().await,
                Err(e) => Err(e),
            };
            if let Err(e) = pooled {
                tracing::warn!(dir = %log.dir.display(), error = %e, "retention after a roll failed");
            }
        });
        self.inner.borrow_mut().after_roll = Some(task);
    }

    /// Trims a sealed segment's file to its data when at least [`TRIM_BYTES_MIN`] is past it, unless that would
    /// free a large stretch at once (a recycled file the segment left mostly unused, rolled by age); the zero
    /// bytes after the data mark the end either way. Then persists its indexes.
    async fn trim(&self, seg: &Segment) -> io::Result<()> {
        if let Some(file) = seg.file() {
            let align = io_alignment(&file);
            let (size, allocated) = {
                let st = seg.state.borrow();
                (st.size, st.allocated)
            };
            let end = align_up(size, align);
            let excess = allocated.saturating_sub(end);
            if (TRIM_BYTES_MIN..=PREALLOCATE_STEP_MAX_BYTES).contains(&excess) {
                file.truncate(end).await?;
                file.fdatasync().await?;
                seg.state.borrow_mut().allocated = end;
            }
        }
        seg.persist_indexes().await
    }

    /// The producer state snapshot the last roll queued (see `producer_snapshot.rs`); a failure is only logged
    /// (the next open replays more).
    async fn write_pending_snapshot(&self) {
        let Some((offset, bytes)) = self.inner.borrow_mut().pending_snapshot.take() else {
            return;
        };
        let mut on_disk = std::mem::take(&mut self.inner.borrow_mut().snapshots);
        let written = producer_snapshot::write(&self.dir, offset, &bytes, &mut on_disk).await;
        self.inner.borrow_mut().snapshots = on_disk;
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), offset, error = %e, "writing a producer snapshot failed");
        }
    }

    /// Waits for the last roll's task (`close`).
    pub(crate) async fn after_roll_done(&self) {
        let task = self.inner.borrow_mut().after_roll.take();
        if let Some(task) = task {
            task.await;
        }
    }

    /// The file of `seg`, for its first write: at a roll the oldest pooled file renamed to the segment's name,
    /// else a new file.
    pub(crate) async fn segment_file(&self, seg: &Segment) -> io::Result<Rc<DmaFile>> {
        if let Some(file) = seg.file() {
            return Ok(file);
        }
        let free = self.inner.borrow_mut().free.pop_front();
        if let Some(free) = free {
            let target = log_path(&self.dir, seg.base_offset);
            match glommio::io::rename(&free.path, &target).await {
                Ok(()) => {
                    let mut st = seg.state.borrow_mut();
                    st.allocated = free.bytes;
                    // Every block of the old segment's file was written but for what it preallocated past its data
                    // and did not trim: less than TRIM_BYTES_MIN (`trim`). A wrong guess would cost a commit an
                    // io-wq hop (`write_commit`), never data: the bytes written are the same either way.
                    st.overwrites_below = free.bytes.saturating_sub(TRIM_BYTES_MIN);
                    drop(st);
                    self.metrics.segments_recycled_total.fetch_add(1, Relaxed);
                    tracing::debug!(dir = %self.dir.display(), base = seg.base_offset, from = %free.path.display(), "segment recycles a deleted segment's file");
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), path = %free.path.display(), error = %e, "recycling a file failed; writing a new one");
                }
            }
        }
        // Opens the renamed file (or creates one) and syncs the directory, so the name survives a crash.
        seg.ensure_file(self.config().flush == FlushPolicy::Durable)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build_batch;
    use crate::tests::{crash_image, read_all, run, small_config, stored, temp_dir, timeout};
    use crate::LogConfig;
    use std::os::unix::fs::MetadataExt;

    /// 16 KiB segments, retention of one segment: the log keeps one closed segment besides the active one, and
    /// every roll deletes the oldest.
    fn ring_config() -> LogConfig {
        LogConfig {
            retention_bytes: 16 << 10,
            retention_ms: -1,
            ..small_config()
        }
    }

    /// Appends `n` batches of 1–3 records of 1–1,500 bytes (`seed` picks them), returning each stored batch by
    /// base offset; waits for each to be durable when `ack` says so.
    async fn append_mixed(
        log: &PartitionLog,
        n: usize,
        seed: u64,
        mut ack: impl FnMut(usize) -> bool,
    ) -> Vec<(i64, Vec<u8>)> {
        let mut rng = seed;
        let mut next_rand = move |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        let mut out = Vec::new();
        for i in 0..n {
            let b = build_batch(1 + next_rand(3) as i32, 1 + next_rand(1500) as usize, 1);
            let appended = log.append_slice(&b, 0, 0).unwrap();
            out.push((appended.base_offset, stored(b, appended.base_offset)));
            if ack(i) {
                timeout(log.wait_durable(appended.last_offset))
                    .await
                    .unwrap();
            }
        }
        out
    }

    /// The batches from the log start on must be exactly the appended ones with those offsets.
    async fn assert_reads_back(log: &PartitionLog, appended: &[(i64, Vec<u8>)]) {
        // Retention after the last roll would move the start during the reads.
        log.after_roll_done().await;
        let start = log.log_start_offset();
        let first = appended
            .iter()
            .position(|(base, _)| *base >= start)
            .expect("something above the log start");
        let read = read_all(log, start).await;
        assert!(!read.is_empty());
        assert_eq!(read[..], appended[first..first + read.len()]);
    }

    #[test]
    fn a_roll_past_retention_writes_over_the_deleted_segments_file() {
        run(|| async {
            let dir = temp_dir();
            let log = PartitionLog::open(dir.path(), ring_config()).await.unwrap();
            let mut appended = Vec::new();
            let (mut rolls, mut inodes) = (0, std::collections::BTreeSet::new());
            let mut last_active = 0;
            for i in 0..200 {
                appended.extend(append_mixed(&log, 1, i, |_| true).await);
                let active = log.inner.borrow().segments.last().unwrap().base_offset;
                if active != last_active {
                    // With 16 KiB segments a roll comes every few commits, sooner than the last roll's task
                    // (trim, indexes, retention: fdatasyncs of its own) ends on a loaded host; a real segment
                    // gives it a segment's worth of commits. Waiting makes the pool's turn-taking deterministic.
                    log.after_roll_done().await;
                    last_active = active;
                }
                let inode = std::fs::metadata(log_path(dir.path(), active))
                    .unwrap()
                    .ino();
                rolls += usize::from(inodes.insert((active, inode)));
            }
            let distinct: std::collections::BTreeSet<u64> =
                inodes.iter().map(|(_, i)| *i).collect();
            // Retention keeps one closed segment besides the active one, so the first rolls take new files (at
            // most three); from then on each roll frees the file the next one takes.
            assert!(
                rolls >= 10 && distinct.len() <= 3,
                "{rolls} segments in {} files: they take turns",
                distinct.len()
            );
            let recycled = log.metrics.segments_recycled_total.load(Relaxed);
            assert_eq!(
                recycled as usize,
                rolls - distinct.len(),
                "every segment but the new files' first recycled"
            );
            log.after_roll_done().await;
            // A pass that retired two segments keeps one; housekeeping frees the other.
            log.reap_retired(&|| false).await.unwrap();
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(
                !names.iter().any(|n| n.ends_with(".deleted")),
                "nothing left to free: {names:?}"
            );
            assert!(log.inner.borrow().segments.len() <= 3);
            assert_reads_back(&log, &appended).await;
            let end = log.log_end_offset();
            log.close().await.unwrap();

            // Old batches past the new data (a recycled active segment) are not data after a restart.
            let log = PartitionLog::open(dir.path(), ring_config()).await.unwrap();
            assert_eq!(log.log_end_offset(), end);
            assert_reads_back(&log, &appended).await;
            let more = append_mixed(&log, 100, 3, |_| true).await;
            appended.extend(more);
            assert_reads_back(&log, &appended).await;
            assert!(
                log.metrics.segments_recycled_total.load(Relaxed) > 0,
                "still recycling after a restart"
            );
            log.close().await.unwrap();
        });
    }

    /// 3 MiB segments at a retention of one: a fresh segment's commits rewrite the partial block and go on into
    /// unwritten blocks, so they go as two writes; once a segment writes over a recycled file, its commits below the
    /// old data's end only overwrite and go as one (`write_commit`). Both read back the same, after a restart too.
    #[test]
    fn commits_over_a_recycled_files_written_blocks_go_as_one_write() {
        run(|| async {
            let dir = temp_dir();
            let config = LogConfig {
                segment_bytes: 3 << 20,
                retention_bytes: 3 << 20,
                ..ring_config()
            };
            let log = PartitionLog::open(dir.path(), config).await.unwrap();
            let split = |log: &PartitionLog| log.metrics.commits_split_total.load(Relaxed);
            let recycled = |log: &PartitionLog| log.metrics.segments_recycled_total.load(Relaxed);
            let mut appended = Vec::new();
            let mut append = |log: &PartitionLog, i: usize| {
                // 50 KB and a little: never a whole number of blocks, so every commit leaves a partial one.
                let b = build_batch(1, 50_000 + i % 7, 1);
                let a = log.append_slice(&b, 0, 0).unwrap();
                appended.push((a.base_offset, stored(b, a.base_offset)));
                a.last_offset
            };
            for i in 0..20 {
                let last = append(&log, i);
                timeout(log.wait_durable(last)).await.unwrap();
            }
            assert_eq!(
                split(&log),
                19,
                "a new file: every commit but the first is split"
            );
            let mut i = 20;
            let mut last_active = log.inner.borrow().segments.last().unwrap().base_offset;
            while recycled(&log) == 0 {
                assert!(i < 1000, "no segment recycled a file");
                let last = append(&log, i);
                timeout(log.wait_durable(last)).await.unwrap();
                i += 1;
                let active = log.inner.borrow().segments.last().unwrap().base_offset;
                if active != last_active {
                    // Retention pools the file in the roll's task; the next new segment takes it.
                    log.after_roll_done().await;
                    last_active = active;
                }
            }
            // The active segment just took a recycled file: 1 MB more stays below its old data.
            let before = split(&log);
            for _ in 0..20 {
                let last = append(&log, i);
                timeout(log.wait_durable(last)).await.unwrap();
                i += 1;
            }
            assert_eq!(
                split(&log),
                before,
                "commits over written blocks go as one write"
            );
            assert_reads_back(&log, &appended).await;
            // A crash now keeps every acknowledged batch and none of the old file's past them.
            let image = crash_image(dir.path());
            let recovered = PartitionLog::open(image.path(), config).await.unwrap();
            assert_eq!(recovered.log_end_offset(), log.log_end_offset());
            assert_reads_back(&recovered, &appended).await;
            recovered.close().await.unwrap();
            log.close().await.unwrap();
            let log = PartitionLog::open(dir.path(), config).await.unwrap();
            assert_reads_back(&log, &appended).await;
            log.close().await.unwrap();
        });
    }

    /// Crash images taken while segments are written over old files (commits in flight included) recover
    /// everything acknowledged and nothing of the old files' batches.
    #[test]
    fn crash_images_of_recycled_segments_keep_every_acknowledged_batch() {
        run(|| async {
            for seed in [5u64, 11, 23] {
                let dir = temp_dir();
                let log = PartitionLog::open(dir.path(), ring_config()).await.unwrap();
                let mut appended = append_mixed(&log, 60, seed, |_| true).await;
                for round in 0..6u64 {
                    let batch = append_mixed(&log, 15, seed * 100 + round, |i| i % 4 == 0).await;
                    appended.extend(batch);
                    let acked = log.inner.borrow().durable_offset;
                    let image = crash_image(dir.path());
                    let recovered = PartitionLog::open(image.path(), ring_config())
                        .await
                        .unwrap();
                    assert!(
                        recovered.log_end_offset() >= acked,
                        "seed {seed}: lost acknowledged data ({} < {acked})",
                        recovered.log_end_offset()
                    );
                    assert_reads_back(&recovered, &appended).await;
                    let leo = recovered.log_end_offset();
                    let mut expected: Vec<_> = appended
                        .iter()
                        .filter(|(base, _)| *base < leo)
                        .cloned()
                        .collect();
                    let more = append_mixed(&recovered, 30, seed + round, |_| true).await;
                    assert_eq!(more[0].0, leo, "appends go on at the recovered end");
                    expected.extend(more);
                    assert_reads_back(&recovered, &expected).await;
                    recovered.close().await.unwrap();
                }
                assert!(log.metrics.segments_recycled_total.load(Relaxed) > 0);
                log.close().await.unwrap();
            }
        });
    }

    /// Appends one batch of `total` bytes (one record) and waits for it.
    async fn append_exact(log: &PartitionLog, total: usize, now_ms: i64) {
        let b = build_batch(1, total - crate::batch::HEADER_BYTES, 1);
        let out = log.append_slice(&b, 0, now_ms).unwrap();
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
    }

    fn active_size(log: &PartitionLog) -> u64 {
        log.inner
            .borrow()
            .segments
            .last()
            .unwrap()
            .state
            .borrow()
            .size
    }

    #[test]
    fn data_ending_on_a_block_boundary_still_ends_clean_after_a_restart() {
        run(|| async {
            let dir = temp_dir();
            let log = PartitionLog::open(dir.path(), ring_config()).await.unwrap();
            // 16 segments' worth of appends at most: a hung pool fails instead of looping.
            for _ in 0..256 {
                if log.metrics.segments_recycled_total.load(Relaxed) >= 2 {
                    break;
                }
                append_exact(&log, 1000, 0).await;
            }
            assert!(log.metrics.segments_recycled_total.load(Relaxed) >= 2);
            // The active segment writes over a full old one: end its data on a block boundary.
            let to_boundary = 4096 - active_size(&log) % 4096;
            let to_boundary = if to_boundary < 100 {
                to_boundary + 4096
            } else {
                to_boundary
            };
            append_exact(&log, to_boundary as usize, 0).await;
            let size = active_size(&log);
            assert_eq!(size % 4096, 0);
            let base = log.inner.borrow().segments.last().unwrap().base_offset;
            let end = log.log_end_offset();
            log.close().await.unwrap();

            let log = PartitionLog::open(dir.path(), ring_config()).await.unwrap();
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(active_size(&log), size);
            let bytes = std::fs::read(log_path(dir.path(), base)).unwrap();
            assert!(
                bytes[size as usize..size as usize + 12]
                    .iter()
                    .all(|&b| b == 0),
                "a zero block follows the data"
            );
            assert!(
                bytes[size as usize + 4096..].iter().any(|&b| b != 0),
                "recovery did not cut the recycled file: its old blocks stay written"
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_recycled_segment_rolled_by_age_keeps_its_long_tail_and_its_successors() {
        run(|| async {
            let dir = temp_dir();
            let segment_bytes = PREALLOCATE_STEP_MAX_BYTES + (8 << 20);
            let batch = 1 << 20;
            // Retention of one batch: the first roll leaves one in the new segment, so segment 0 goes.
            let config = LogConfig {
                segment_bytes,
                retention_bytes: batch as i64,
                segment_ms: 1_000,
                ..ring_config()
            };
            let log = PartitionLog::open(dir.path(), config).await.unwrap();
            while active_size(&log) + batch as u64 <= segment_bytes {
                append_exact(&log, batch, 0).await;
            }
            // Rolls by size into a new file; after the roll segment 0 is retired and pooled.
            append_exact(&log, batch, 0).await;
            log.after_roll_done().await;
            // Rolls by age: the new segment takes segment 0's file.
            append_exact(&log, 4096, 1_000).await;
            assert_eq!(log.metrics.segments_recycled_total.load(Relaxed), 1);
            // The recycled segment, nearly empty, rolls by age: its old tail is too long to trim at once.
            append_exact(&log, 4096, 3_000).await;
            let end = log.log_end_offset();
            let segments = log.inner.borrow().segments.len();
            let image = crash_image(dir.path());
            log.close().await.unwrap();
            let recovered = PartitionLog::open(image.path(), config).await.unwrap();
            assert_eq!(recovered.log_end_offset(), end, "no segment cut off");
            assert_eq!(recovered.inner.borrow().segments.len(), segments);
            recovered.close().await.unwrap();
        });
    }
}
