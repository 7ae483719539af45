//! One segment: a preallocated O_DIRECT log file `<base offset, 20 digits>.log` plus its
//! in-memory offset and time indexes (persisted as `.index` / `.timeindex` when the segment is
//! closed). The logical length (`size`) is kept here, never derived from the file length:
//! the file is preallocated in large steps, and recovery finds the end by scanning.
//!
//! The file is created lazily by the group commit (append is synchronous and cannot open
//! files); until then every byte of the segment lives in the tail cache.

use crate::batch::BatchHeader;
use crate::index::{OffsetIndex, TimeIndex};
use glommio::io::{DmaFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The block size of ext4 and XFS (by default) and the page size: every O_DIRECT position and length is a multiple
/// of it, even where the device accepts less (a virtio disk's logical block, and so glommio's `DmaFile::alignment`,
/// is 512 B). ext4 serves a direct write into preallocated blocks that is not aligned to its own block as an
/// exclusive write that waits for the device (it may have to zero part of a block). io_uring runs such writes on
/// its worker threads, and a shard's commits went through one of them, one after another. 8 files committing at
/// once took 1.6x as long with 512 B alignment as with 4 KiB (bench/EXPERIMENTS.md "Commit writes aligned to the file
/// system's block").
pub const FS_BLOCK_BYTES: u64 = 4096;

/// The alignment pinlog uses for `file`'s O_DIRECT I/O: the device's and the file system's, whichever is larger.
pub fn io_alignment(file: &DmaFile) -> u64 {
    file.alignment().max(FS_BLOCK_BYTES)
}

/// Preallocation: growing a file costs a journal commit per fdatasync, so grow rarely; but a fixed large step
/// per segment would reserve `partitions x step` of disk for idle partitions (1,000 partitions x 64 MiB filled a
/// 61 GB disk). So a segment grows by its own size, from 1 MiB up to steps of 64 MiB: a busy segment reaches big
/// steps after a few grows, an idle one holds 1 MiB.
pub const PREALLOCATE_STEP_MIN_BYTES: u64 = 1 << 20;
pub const PREALLOCATE_STEP_MAX_BYTES: u64 = 64 << 20;

/// How far to preallocate a segment that has `allocated` bytes and must hold `end`, without passing `cap`.
pub fn preallocation_target(allocated: u64, end: u64, cap: u64) -> u64 {
    let step = allocated.clamp(PREALLOCATE_STEP_MIN_BYTES, PREALLOCATE_STEP_MAX_BYTES);
    end.max((allocated + step).min(cap))
}
/// Index positions are u32 and Kafka's segment.bytes is an int: a segment never exceeds this.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

pub fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// A segment's log after retention or DeleteRecords retired it, until its blocks are freed (see `reap.rs`).
pub fn deleted_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log.deleted"))
}

/// A compacted copy of `<base>.log` before it is renamed over the original.
pub fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log.cleaned"))
}

pub fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

pub fn align_down(v: u64, align: u64) -> u64 {
    v / align * align
}

#[derive(Default)]
pub struct SegmentState {
    /// Logical bytes appended (including those still only in the tail).
    pub size: u64,
    /// Bytes written to the file: a prefix of `size`.
    pub written: u64,
    /// Current (preallocated) file length.
    pub allocated: u64,
    /// File positions below this hold blocks written before, by the segment whose file this recycles: a commit that
    /// ends below it only overwrites (`recycle.rs`). 0 for a new file.
    pub overwrites_below: u64,
    /// Offset after the last appended batch.
    pub next_offset: i64,
    /// Offset after the last written batch.
    pub written_offset: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    /// When the segment got its first batch (segment_ms rolls).
    pub created_ms: Option<i64>,
    /// Rolled: no more appends.
    pub closed: bool,
    /// Closed, fully written and synced: the group commit is done with it.
    pub sealed: bool,
    /// Sealed, trimmed and its indexes persisted (or given up on: a missing index is rebuilt at open); only now
    /// may retention or compaction replace it.
    pub finalized: bool,
    /// Bytes of the last, partially written block: rewritten with the next flush because
    /// O_DIRECT writes whole blocks.
    pub partial_block: Vec<u8>,
}

impl SegmentState {
    /// Account one batch stored at `position`: sizes, offsets, sparse index, time index.
    /// Offsets may jump forward (compacted segments); appends check contiguity in the tail.
    pub fn account_batch(
        &mut self,
        base: i64,
        position: u64,
        h: &BatchHeader,
        interval: u32,
        now_ms: i64,
    ) {
        assert!(h.base_offset >= self.next_offset, "offsets must increase");
        assert_eq!(
            position, self.size,
            "batches must be contiguous in the file"
        );
        let relative = u32::try_from(h.base_offset - base).expect("relative offset fits u32");
        let pos = u32::try_from(position).expect("segment position fits u32");
        let due = self.index.is_empty() || self.bytes_since_index >= u64::from(interval);
        if due && self.index.last().is_none_or(|(_, p)| pos > p) {
            self.index.push(relative, pos);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_bytes as u64;
        self.time_index.observe(h.max_timestamp, relative);
        self.created_ms.get_or_insert(now_ms);
        self.size = position + h.total_bytes as u64;
        self.next_offset = h.last_offset() + 1;
    }
}

pub struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    file: RefCell<Option<Rc<DmaFile>>>,
    /// `file` was opened with O_DSYNC: each write is durable when it completes, so a commit needs no fdatasync.
    durable_writes: Cell<bool>,
    pub state: RefCell<SegmentState>,
}

impl Segment {
    pub fn new(dir: &Path, base_offset: i64) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: RefCell::new(None),
            durable_writes: Cell::new(false),
            state: RefCell::new(SegmentState {
                next_offset: base_offset,
                written_offset: base_offset,
                ..SegmentState::default()
            }),
        }
    }

    pub fn file(&self) -> Option<Rc<DmaFile>> {
        self.file.borrow().clone()
    }

    /// `durable_writes`: the file was opened by [`open_log`] with `durable_writes`.
    pub fn set_file(&self, file: Rc<DmaFile>, durable_writes: bool) {
        *self.file.borrow_mut() = Some(file);
        self.durable_writes.set(durable_writes);
    }

    /// Whether a write to this segment's file is durable on completion (see [`open_log`]).
    pub fn durable_writes(&self) -> bool {
        self.durable_writes.get()
    }

    pub fn take_file(&self) -> Option<Rc<DmaFile>> {
        self.file.borrow_mut().take()
    }

    /// The log file, created (empty) on first use; `durable_writes` as in [`open_log`].
    pub async fn ensure_file(&self, durable_writes: bool) -> io::Result<Rc<DmaFile>> {
        if let Some(f) = self.file() {
            return Ok(f);
        }
        let f = Rc::new(open_log(&log_path(&self.dir, self.base_offset), durable_writes).await?);
        // The new name must survive a crash too, or fdatasync'ed data would vanish with it.
        sync_dir(&self.dir).await?;
        self.set_file(f.clone(), durable_writes);
        Ok(f)
    }

    /// Write `.index` and `.timeindex` (temp file + rename, so a crash leaves old or new).
    pub async fn persist_indexes(&self) -> io::Result<()> {
        let (index, time_index) = {
            let st = self.state.borrow();
            (st.index.encode(), st.time_index.encode())
        };
        write_files_atomic(&[
            (&index_path(&self.dir, self.base_offset), &index[..]),
            (
                &time_index_path(&self.dir, self.base_offset),
                &time_index[..],
            ),
        ])
        .await
    }

    /// Remove the segment's files (retention / recovery truncation).
    pub async fn delete_files(&self) -> io::Result<()> {
        if let Some(f) = self.take_file() {
            // Readers may still hold the file; the fd closes with the last reference.
            let _ = f.close_rc().await?;
        }
        for path in [
            log_path(&self.dir, self.base_offset),
            index_path(&self.dir, self.base_offset),
            time_index_path(&self.dir, self.base_offset),
        ] {
            remove_if_exists(&path).await?;
        }
        Ok(())
    }

    /// Take the segment out of service without freeing its blocks yet: indexes removed, the log renamed to
    /// `<base>.log.deleted` (recovery removes such leftovers) and returned, still open, for `reap.rs` to free in
    /// steps. Freeing a large file at once stalls every other file's fdatasync on a filesystem mounted with
    /// `discard`.
    pub async fn retire(&self) -> io::Result<Retired> {
        let file = self.take_file();
        let bytes = {
            let st = self.state.borrow();
            st.allocated.max(st.size)
        };
        remove_if_exists(&index_path(&self.dir, self.base_offset)).await?;
        remove_if_exists(&time_index_path(&self.dir, self.base_offset)).await?;
        let path = deleted_path(&self.dir, self.base_offset);
        match glommio::io::rename(log_path(&self.dir, self.base_offset), &path).await {
            Ok(()) => {}
            Err(e) => {
                let e = io::Error::from(e);
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e);
                }
            }
        }
        Ok(Retired {
            path: Some(path),
            file,
            bytes,
        })
    }

    /// Remove only the index files (compaction, before the log is replaced: a crash must never
    /// pair an old index with a new log).
    pub async fn delete_indexes(&self) -> io::Result<()> {
        remove_if_exists(&index_path(&self.dir, self.base_offset)).await?;
        remove_if_exists(&time_index_path(&self.dir, self.base_offset)).await
    }
}

/// A retired segment's log file waiting to be freed.
pub struct Retired {
    /// `<base>.log.deleted`; `None` for a log compaction renamed a cleaned copy over (the open file is all that is
    /// left of it).
    pub path: Option<PathBuf>,
    /// The segment's open file, if it had one; readers may hold clones of it.
    pub file: Option<Rc<DmaFile>>,
    /// The file's length when retired (glommio's `file_size` goes by the old path, so it is kept here).
    pub bytes: u64,
}

pub async fn remove_if_exists(path: &Path) -> io::Result<()> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = io::Error::from(e);
            if e.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

pub async fn open_rw(path: &Path) -> io::Result<DmaFile> {
    open_log(path, false).await
}

/// Opens (or creates) a log file for O_DIRECT reads and writes. With `durable_writes` it is opened O_DSYNC: a write
/// completes only once its data, and the metadata needed to read it back, is on stable storage, as if an fdatasync
/// followed it. The kernel issues that flush (or a FUA write) itself, inside the same io_uring operation, so a group
/// commit is one operation and one wake-up of the shard instead of two. On this host's disk that cut the half-max
/// publish p99 to 0.70 of write-then-fdatasync (bench/EXPERIMENTS.md, "Durable writes").
pub async fn open_log(path: &Path, durable_writes: bool) -> io::Result<DmaFile> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    if durable_writes {
        options.custom_flags(libc::O_DSYNC);
    }
    Ok(options.dma_open(path).await?)
}

/// Write a small file through O_DIRECT: padded to the block size, then trimmed to
/// `bytes.len()`; written as `<name>.<n>.tmp`, fdatasync'ed and renamed, so a crash leaves the old
/// or the new file, never a mix. `n` is unique per write in the process: two tasks writing the same
/// file (a producer snapshot at close and from the flusher) must not share a tmp file, or one renames
/// it away while the other is still opening it.
pub async fn write_file_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_files_atomic(&[(path, bytes)]).await
}

/// [`write_file_atomic`] of several files of one directory, sharing its fsync (each file is still old or new
/// after a crash, independently of the others).
pub async fn write_files_atomic(files: &[(&Path, &[u8])]) -> io::Result<()> {
    for (path, bytes) in files {
        write_tmp_and_rename(path, bytes).await?;
    }
    match files.first().and_then(|(path, _)| path.parent()) {
        Some(dir) => sync_dir(dir).await,
        None => Ok(()),
    }
}

/// Writes `<path>.<n>.tmp`, fdatasyncs it and renames it to `path` (the directory is not synced).
async fn write_tmp_and_rename(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static NEXT_TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT_TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{n}.tmp"));
    let tmp = PathBuf::from(tmp);
    let file = DmaFile::create(&tmp).await?;
    if !bytes.is_empty() {
        let align = io_alignment(&file);
        let mut buf = file.alloc_dma_buffer(align_up(bytes.len() as u64, align) as usize);
        let dst = buf.as_bytes_mut();
        dst[..bytes.len()].copy_from_slice(bytes);
        dst[bytes.len()..].fill(0);
        file.write_at(buf, 0).await?;
        file.truncate(bytes.len() as u64).await?;
    }
    file.fdatasync().await?;
    file.close().await?;
    Ok(glommio::io::rename(&tmp, path).await?)
}

/// fsync a directory, making the names created or renamed in it durable.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = glommio::io::Directory::open(dir).await?;
    d.sync().await?;
    Ok(d.close().await?)
}

/// Whole content of a small file; `None` if it does not exist.
pub async fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match DmaFile::open(path).await {
        Ok(f) => f,
        Err(e) => {
            let e = io::Error::from(e);
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
    };
    let len = file.file_size().await? as usize;
    let out = if len == 0 {
        Vec::new()
    } else {
        file.read_at(0, len).await?.to_vec()
    };
    file.close().await?;
    Ok(Some(out))
}

#[cfg(test)]
mod preallocation_tests {
    use super::*;

    #[test]
    fn preallocation_doubles_from_one_mebibyte_to_steps_of_64() {
        let cap = 1 << 30;
        assert_eq!(preallocation_target(0, 4096, cap), 1 << 20);
        assert_eq!(preallocation_target(1 << 20, (1 << 20) + 1, cap), 2 << 20);
        assert_eq!(preallocation_target(32 << 20, 33 << 20, cap), 64 << 20);
        assert_eq!(preallocation_target(512 << 20, 513 << 20, cap), 576 << 20);
        assert_eq!(
            preallocation_target(1000 << 20, 1001 << 20, cap),
            cap,
            "never past the cap"
        );
        assert_eq!(
            preallocation_target(0, 5 << 20, cap),
            5 << 20,
            "always holds the write"
        );
    }
}
