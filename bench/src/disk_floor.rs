//! The disk's own latency floor for an acks=all load at a fixed rate: what the best broker writing the way pinlog
//! writes could do on this data dir.
//!
//! Records "arrive" at the workload's rate (payload bytes only). One writer runs a group commit in a loop: it writes
//! everything that arrived since its previous commit started (O_DIRECT, whole 4 KiB blocks rewriting the partial last
//! one, into fallocated files, at most [`COMMIT_BYTES_MAX`] at once: the way pinlog writes a segment), fdatasyncs,
//! and acknowledges those records; a record's latency is commit end − arrival. When nothing has arrived it sleeps
//! until the next record is due. A helper thread creates and fallocates the next file ahead, so no roll sits on the
//! commit path, and nothing is deleted until the end: on this host's ext4 (no journal) unlinking a written 1 GiB
//! file takes ~170 ms and stalls the other files' fdatasyncs for as long. The files need rate × seconds of space;
//! a run that would take more than half the free space is refused. There is no network, no codec, no second
//! fdatasync stream (fio shows one stream is this disk's fastest pattern), so no broker that appends to fresh
//! fallocated files (pinlog, Kafka) beats this at that rate: a latency goal this floor misses is above that way of
//! writing on this machine, and the gap between the floor and the broker is the broker's. [`Files::Prewritten`]
//! measures the other way: overwriting files written before (a log that recycles its old segments), whose
//! fdatasync has no extent metadata to write; on this host its p99 is less than half of the fresh one.

use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::stats::Percentiles;

/// O_DIRECT alignment used for positions and lengths.
const BLOCK: u64 = 4096;
/// Largest single commit write (pinlog's group commit caps its writes at 4 MiB too).
pub const COMMIT_BYTES_MAX: u64 = 4 << 20;
/// Size of each fallocated file; the writer rolls to a fresh one (and deletes the old) when one is full.
pub const FILE_BYTES: u64 = 1 << 30;
/// Seconds run before latencies count (file creation, first allocation).
pub const WARMUP_S: f64 = 1.0;
/// Longest measured window; the floor's tail settles well within it.
pub const SECONDS_MAX: f64 = 8.0;
/// Latencies recorded, in µs.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// What the writer's files hold before it writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Files {
    /// Fresh fallocated (unwritten) extents, as pinlog's and Kafka's segments are: each commit's fdatasync also
    /// writes the extent metadata of the blocks it converted.
    #[default]
    Fresh,
    /// Files written in full before the run (a log that recycles old segments would write this way): the data
    /// writes are overwrites and the fdatasync is a cache flush.
    Prewritten,
}

impl Files {
    /// The name the workload files and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Files::Fresh => "fresh",
            Files::Prewritten => "prewritten",
        }
    }
}

/// The floor measured at one rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DiskFloor {
    #[serde(default)]
    pub files: Files,
    /// Offered payload rate, MB/s (10^6 bytes).
    pub rate_mb_s: f64,
    /// Payload MB/s the writer committed in the measured window (below `rate_mb_s` when the disk cannot keep up).
    pub committed_mb_s: f64,
    pub measured_s: f64,
    /// Commits (one write + one fdatasync each) in the measured window.
    pub commits: u64,
    /// Mean bytes written per commit, with block padding.
    pub write_bytes_mean: f64,
    /// Record latency, arrival → end of the fdatasync that covers it.
    pub latency_ms: Percentiles,
}

/// Runs the floor for `seconds` (plus [`WARMUP_S`]) in a scratch directory under `data_dir`, which it removes.
pub fn measure(
    data_dir: &Path,
    rate_bytes_s: f64,
    record_bytes: f64,
    seconds: f64,
    files: Files,
) -> Result<DiskFloor, BenchError> {
    assert!(
        rate_bytes_s > 0.0 && record_bytes > 0.0,
        "the floor needs a rate"
    );
    let dir = data_dir.join("disk-floor");
    fs::create_dir_all(&dir).map_err(|e| BenchError::io(format!("create {}", dir.display()), e))?;
    let plan = Plan {
        rate_bytes_s,
        record_bytes,
        seconds,
        files,
        file_bytes: FILE_BYTES,
    };
    let needed = (plan.file_count() * FILE_BYTES) as f64;
    let free = free_bytes(&dir)?;
    if needed > free as f64 / 2.0 {
        let _ = fs::remove_dir_all(&dir);
        return Err(BenchError::Tool {
            tool: "disk floor".into(),
            reason: format!(
                "needs {:.1} GB on {} but only {:.1} GB are free (it takes at most half)",
                needed / 1e9,
                data_dir.display(),
                free as f64 / 1e9
            ),
        });
    }
    let floor = run(&dir, &plan);
    let _ = fs::remove_dir_all(&dir);
    floor
}

/// One floor run.
struct Plan {
    rate_bytes_s: f64,
    record_bytes: f64,
    seconds: f64,
    files: Files,
    /// Size of each file ([`FILE_BYTES`]; smaller in tests).
    file_bytes: u64,
}

impl Plan {
    /// Files the writer fills over the warm-up and the window, plus the one it may just have started.
    fn file_count(&self) -> u64 {
        let bytes = self.rate_bytes_s * (WARMUP_S + self.seconds);
        (bytes / self.file_bytes as f64).ceil() as u64 + 1
    }
}

/// Bytes free to an unprivileged writer on the filesystem of `dir`.
pub(crate) fn free_bytes(dir: &Path) -> Result<u64, BenchError> {
    let what = || format!("statvfs {}", dir.display());
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|e| {
        BenchError::io(
            what(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer that statvfs fills on success.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(BenchError::io(what(), std::io::Error::last_os_error()));
    }
    // SAFETY: statvfs returned 0, so it initialized `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// One fallocated O_DIRECT file being filled.
struct Target {
    file: File,
    /// Logical bytes written into `file`.
    pos: u64,
    /// Bytes the file was fallocated with; the writer rolls to the next file before passing it.
    capacity: u64,
}

fn file_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{index:08}.floor"))
}

/// Hands the writer files 1, 2, ... one at a time: the `premade` ones first, then fallocated files, each made while
/// the writer fills the one before. Ends when the writer drops its receiver.
fn prepare_files(
    dir: &Path,
    ready: &SyncSender<Result<Target, BenchError>>,
    premade: Vec<Target>,
    capacity: u64,
) {
    let first_fresh = premade.len() as u32 + 1;
    for target in premade {
        if ready.send(Ok(target)).is_err() {
            return;
        }
    }
    for index in first_fresh.. {
        let next = Target::create(dir, index, capacity);
        let failed = next.is_err();
        // A rendezvous channel: `send` returns once the writer has taken the file.
        if ready.send(next).is_err() || failed {
            return;
        }
    }
}

impl Target {
    fn create(dir: &Path, index: u32, capacity: u64) -> Result<Target, BenchError> {
        let path = file_path(dir, index);
        let what = || format!("disk floor file {}", path.display());
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .map_err(|e| BenchError::io(what(), e))?;
        // SAFETY: a plain fallocate(2) on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, capacity as libc::off_t) };
        if rc != 0 {
            return Err(BenchError::io(what(), std::io::Error::last_os_error()));
        }
        Ok(Target {
            file,
            pos: 0,
            capacity,
        })
    }

    /// A file written in full (O_DIRECT, then fdatasync) before the run.
    fn create_prewritten(
        dir: &Path,
        index: u32,
        capacity: u64,
        buffer: &[u8],
    ) -> Result<Target, BenchError> {
        let target = Target::create(dir, index, capacity)?;
        let io = |e| BenchError::io("disk floor pre-write", e);
        for at in (0..capacity).step_by(buffer.len()) {
            target.file.write_all_at(buffer, at).map_err(io)?;
        }
        target.file.sync_data().map_err(io)?;
        Ok(target)
    }

    /// Writes `bytes` more logical bytes (rewriting the partial last block, as a log does) and fdatasyncs, first
    /// rolling to the next prepared file if this one is full. Returns the bytes written to the device.
    fn commit(
        &mut self,
        bytes: u64,
        buffer: &[u8],
        next: &Receiver<Result<Target, BenchError>>,
    ) -> Result<u64, BenchError> {
        if self.pos + bytes > self.capacity {
            *self = next.recv().map_err(|_| BenchError::Tool {
                tool: "disk floor".into(),
                reason: "the file preparer stopped".into(),
            })??;
        }
        let written = self.write(bytes, buffer)?;
        self.sync()?;
        Ok(written)
    }

    /// Writes `bytes` more logical bytes, rewriting the partial last block; returns the bytes written to the device.
    fn write(&mut self, bytes: u64, buffer: &[u8]) -> Result<u64, BenchError> {
        let from = self.pos / BLOCK * BLOCK;
        let to = (self.pos + bytes).div_ceil(BLOCK) * BLOCK;
        let len = (to - from) as usize;
        self.file
            .write_all_at(&buffer[..len], from)
            .map_err(|e| BenchError::io("disk floor write", e))?;
        self.pos += bytes;
        Ok(len as u64)
    }

    fn sync(&self) -> Result<(), BenchError> {
        self.file
            .sync_data()
            .map_err(|e| BenchError::io("disk floor fdatasync", e))
    }
}

/// One file written in full beforehand that a server writes over from its start again and again, a group commit at a
/// time: write (O_DIRECT, in pieces of at most [`COMMIT_BYTES_MAX`]), then one fdatasync. It writes the way the floor
/// does with [`Files::Prewritten`]; the bytes are the floor's filler, not the records (`pinlog-bench null-broker
/// --sync-dir`).
pub struct OverwrittenLog {
    target: Target,
    raw: Vec<u8>,
}

impl OverwrittenLog {
    /// Creates and writes a file of `capacity` bytes (a whole number of [`COMMIT_BYTES_MAX`]) in `dir`: about a
    /// second per GB on a fast disk.
    pub fn create(dir: &Path, capacity: u64) -> Result<OverwrittenLog, BenchError> {
        assert!(
            capacity >= COMMIT_BYTES_MAX && capacity.is_multiple_of(COMMIT_BYTES_MAX),
            "the log holds whole commit buffers"
        );
        let raw = aligned_buffer();
        let target = Target::create_prewritten(dir, 0, capacity, aligned(&raw))?;
        Ok(OverwrittenLog { target, raw })
    }

    /// Makes `bytes` more bytes durable: writes them after the last commit's (from the start again where they would
    /// pass the end), then fdatasyncs.
    pub fn commit(&mut self, bytes: u64) -> Result<(), BenchError> {
        let buffer = aligned(&self.raw);
        let mut left = bytes;
        while left > 0 {
            let piece = left.min(COMMIT_BYTES_MAX - BLOCK);
            if self.target.pos + piece > self.target.capacity {
                self.target.pos = 0;
            }
            self.target.write(piece, buffer)?;
            left -= piece;
        }
        self.target.sync()
    }
}

/// Bytes of a transparent huge page (x86-64, aarch64 with 4 KiB pages).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A plain allocation with room for a huge-page-aligned window of [`COMMIT_BYTES_MAX`] (see [`aligned`]), asked to
/// be backed by transparent huge pages before its first touch, as pinlog's write buffers are (its shard I/O arena,
/// `shard_io_memory_bytes`): on a virtio disk a write from scattered 4 KiB pages is much slower.
fn aligned_buffer() -> Vec<u8> {
    let len = COMMIT_BYTES_MAX as usize + HUGE_PAGE_BYTES;
    let mut raw: Vec<u8> = Vec::with_capacity(len);
    let skew = raw.as_ptr().align_offset(HUGE_PAGE_BYTES);
    // SAFETY: the window lies inside `raw`'s allocation (`skew < HUGE_PAGE_BYTES`); madvise only tells the kernel how
    // to back those pages and fails harmlessly where huge pages are unavailable.
    unsafe {
        libc::madvise(
            raw.as_mut_ptr().add(skew).cast(),
            COMMIT_BYTES_MAX as usize,
            libc::MADV_HUGEPAGE,
        );
    }
    raw.resize(len, 0x5a);
    raw
}

/// The huge-page-aligned window of `raw` (O_DIRECT needs the buffer aligned, not just the offsets).
fn aligned(raw: &[u8]) -> &[u8] {
    let skew = raw.as_ptr().align_offset(HUGE_PAGE_BYTES);
    &raw[skew..skew + COMMIT_BYTES_MAX as usize]
}

/// What the commit loop counted inside the measured window.
#[derive(Default)]
struct Tally {
    commits: u64,
    device_bytes: u64,
    committed_bytes: u64,
}

fn run(dir: &Path, plan: &Plan) -> Result<DiskFloor, BenchError> {
    let Plan {
        rate_bytes_s,
        record_bytes,
        seconds,
        files,
        file_bytes,
    } = *plan;
    let mut latency = Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3)
        .expect("static histogram bounds are valid");
    let raw = aligned_buffer();
    let buffer = aligned(&raw);
    // Pre-written files are all made before the clock starts: writing them during the run would load the disk.
    let mut premade = match files {
        Files::Fresh => Vec::new(),
        Files::Prewritten => (0..plan.file_count() as u32)
            .map(|index| Target::create_prewritten(dir, index, file_bytes, buffer))
            .collect::<Result<_, _>>()?,
    };
    let mut target = if premade.is_empty() {
        Target::create(dir, 0, file_bytes)?
    } else {
        premade.remove(0)
    };
    let (ready, next_file) = mpsc::sync_channel(0);
    let preparer = {
        let dir = dir.to_path_buf();
        thread::spawn(move || prepare_files(&dir, &ready, premade, file_bytes))
    };
    let pace = Pace {
        records_s: rate_bytes_s / record_bytes,
        record_bytes: record_bytes.ceil() as u64,
        end_s: WARMUP_S + seconds,
    };
    let outcome = commit_loop(&pace, &mut target, &next_file, &mut latency, buffer);
    // The preparer ends once its receiver is gone; join it before the caller removes the directory.
    drop(next_file);
    let _ = preparer.join();
    let tally = outcome?;
    Ok(DiskFloor {
        files,
        rate_mb_s: rate_bytes_s / 1e6,
        committed_mb_s: tally.committed_bytes as f64 / 1e6 / seconds,
        measured_s: seconds,
        commits: tally.commits,
        write_bytes_mean: tally.device_bytes as f64 / tally.commits.max(1) as f64,
        latency_ms: Percentiles::of(&latency),
    })
}

/// The offered load: record `i` is due `i / records_s` seconds after the start.
struct Pace {
    records_s: f64,
    record_bytes: u64,
    /// Warm-up plus measured seconds.
    end_s: f64,
}

fn commit_loop(
    pace: &Pace,
    target: &mut Target,
    next_file: &Receiver<Result<Target, BenchError>>,
    latency: &mut Histogram<u64>,
    buffer: &[u8],
) -> Result<Tally, BenchError> {
    let records_per_commit_max = (COMMIT_BYTES_MAX - BLOCK) / pace.record_bytes;
    assert!(
        records_per_commit_max > 0,
        "a record fits in one commit write"
    );
    let mut tally = Tally::default();
    let mut next = 0u64;
    let start = Instant::now();
    loop {
        let now_s = start.elapsed().as_secs_f64();
        if now_s >= pace.end_s {
            return Ok(tally);
        }
        // Records 0..=floor(now * rate) have arrived.
        let arrived = (now_s * pace.records_s).floor() as u64 + 1;
        if arrived <= next {
            let due_s = next as f64 / pace.records_s;
            thread::sleep(Duration::from_secs_f64((due_s - now_s).max(0.0)));
            continue;
        }
        let take = (arrived - next).min(records_per_commit_max);
        let device_bytes = target.commit(take * pace.record_bytes, buffer, next_file)?;
        let done_s = start.elapsed().as_secs_f64();
        let mut counted = false;
        for i in next..next + take {
            let due_s = i as f64 / pace.records_s;
            if due_s >= WARMUP_S && due_s < pace.end_s {
                let us = ((done_s - due_s) * 1e6).max(1.0) as u64;
                latency.saturating_record(us.min(LATENCY_US_MAX));
                tally.committed_bytes += pace.record_bytes;
                counted = true;
            }
        }
        if counted {
            tally.commits += 1;
            tally.device_bytes += device_bytes;
        }
        next += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit lands after the last one; one that would pass the end starts over at the file's start; one larger
    /// than a commit buffer goes in pieces.
    #[test]
    fn the_overwritten_log_wraps_and_writes_large_commits_in_pieces() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir on disk");
        let capacity = 4 * COMMIT_BYTES_MAX;
        let mut log = OverwrittenLog::create(dir.path(), capacity).expect("log");
        let len = std::fs::metadata(file_path(dir.path(), 0))
            .expect("file")
            .len();
        assert_eq!(len, capacity, "written in full beforehand");
        log.commit(1000).expect("commit");
        log.commit(3000).expect("commit");
        assert_eq!(log.target.pos, 4000);
        log.commit(3 * COMMIT_BYTES_MAX)
            .expect("a commit of pieces");
        assert_eq!(log.target.pos, 4000 + 3 * COMMIT_BYTES_MAX);
        // Its first piece (a buffer less a block) still fits before the end; the last block's worth starts over.
        log.commit(COMMIT_BYTES_MAX).expect("wraps");
        assert_eq!(log.target.pos, BLOCK);
    }

    #[test]
    fn a_slow_rate_commits_every_record_on_its_own_and_counts_each_once() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir on disk");
        // 200 records/s of 1 KiB for 1 s: ~200 commits of one block each, latency = one write + fdatasync.
        let floor =
            measure(dir.path(), 200.0 * 1024.0, 1024.0, 1.0, Files::Fresh).expect("floor runs");
        assert!((195..=200).contains(&floor.latency_ms.count), "{floor:?}");
        // Records that arrive while a commit waits on a disk stall share the next commit. A 70 ms stall (the
        // disk is shared with the tests running beside this one) merges 14 of them; most still go alone.
        assert!(
            (150..=floor.latency_ms.count).contains(&floor.commits),
            "about one commit per record at this rate: {floor:?}"
        );
        // One block per commit, two when a disk stall lets two records share one that crosses a block boundary.
        assert!(
            (4096.0..8192.0).contains(&floor.write_bytes_mean),
            "{floor:?}"
        );
        assert!(floor.latency_ms.p50 > 0.0 && floor.latency_ms.p50 < 1000.0);
        assert!(
            !dir.path().join("disk-floor").exists(),
            "scratch files removed"
        );
    }

    #[test]
    fn prewritten_files_are_made_before_the_clock_and_rolled_through() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir on disk");
        // 16 MB/s into 4 MiB files for 1 s (+1 s warm-up): about 8 rolls over pre-written files.
        let plan = Plan {
            rate_bytes_s: 16e6,
            record_bytes: 1024.0,
            seconds: 1.0,
            files: Files::Prewritten,
            file_bytes: 4 << 20,
        };
        let floor = run(dir.path(), &plan).expect("floor runs");
        assert_eq!(floor.files, Files::Prewritten);
        assert!(
            (floor.committed_mb_s - 16.0).abs() < 1.0,
            "every record of the window committed across the rolls: {floor:?}"
        );
        let files = std::fs::read_dir(dir.path()).expect("dir").count() as u64;
        assert_eq!(
            files,
            plan.file_count(),
            "all made up front, none on the fly"
        );
    }

    #[test]
    fn a_fast_rate_groups_records_into_large_commits() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir on disk");
        let floor = measure(dir.path(), 100e6, 1024.0, 1.0, Files::Fresh).expect("floor runs");
        assert!(
            floor.commits > 0 && floor.latency_ms.count > floor.commits * 2,
            "several records per commit at 100 MB/s: {floor:?}"
        );
        assert!(floor.write_bytes_mean > 4096.0, "{floor:?}");
    }
}
