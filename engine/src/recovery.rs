//! Crash recovery of a partition directory. Rules, in order:
//! 1. Segments are the `*.log` files, ordered by the base offset in their names.
//! 2. A closed segment with a well-formed `.index` and `.timeindex` is trusted up to its last
//!    index entry and scanned from there to its end; otherwise it is scanned whole and its
//!    indexes are rebuilt and rewritten.
//! 3. The last (active) segment is always scanned whole: it may end in a torn write.
//! 4. A scan checks every batch: length, magic, CRC-32C, and that base offsets continue
//!    exactly where the previous batch ended. It stops at zero-filled (preallocated) space,
//!    which is the clean end, or at the first defect. Closed segments may have been compacted:
//!    there a batch may start after the expected offset (removed batches) and hold fewer
//!    records than its offset span; the active segment is never compacted and stays strict.
//!    `<base>.log.cleaned` files are compactions that did not reach their rename: deleted, and so are
//!    `<base>.log.deleted` files, retired segments a crash left before they were freed. A recycled
//!    file (`recycle.rs`) holds old batches past the new data: every commit leaves 12 zero bytes
//!    after its data, so the scan ends clean before them, and they all have offsets below the
//!    log start, so after a torn write the continuity check stops at the first it meets.
//!    `<base>.log.free` files are left for `recycle.rs` to adopt.
//! 5. At a defect everything after the last good batch is physically discarded: the partial
//!    block is rewritten with zeros past the end, the file is truncated to the aligned end
//!    and preallocated again, and later segments are deleted. Stale bytes can therefore never
//!    be resurrected by a later scan. What was cut is logged at info.

use crate::batch::{self, HEADER_BYTES, LOG_OVERHEAD_BYTES};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::EngineError;
use crate::index::{OffsetIndex, TimeIndex};
use crate::iopoll_probe;
use crate::segment::{
    align_down, align_up, index_path, io_alignment, log_path, open_log, read_file, sync_dir,
    time_index_path, Segment,
};
use glommio::io::{DmaFile, ReadResult};
use std::io;
use std::path::Path;
use std::rc::Rc;

/// Bytes read per DMA read while scanning a segment.
pub const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// Where a scan stopped.
pub struct ScanEnd {
    pub end: u64,
    /// `None`: clean end (end of file or zero-filled space). `Some`: what was wrong there.
    pub defect: Option<String>,
}

/// How strictly a scan checks offset continuity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// Every batch starts exactly at the expected offset (the active segment).
    Exact,
    /// The first batch exactly (it was located by the offset index), later ones at or after.
    ExactFirst,
    /// At or after the expected offset (a closed, possibly compacted segment).
    Gaps,
}

/// A window of the file kept between reads.
pub struct Window {
    start: u64,
    data: Option<ReadResult>,
}

impl Window {
    pub fn new() -> Window {
        Window {
            start: 0,
            data: None,
        }
    }

    fn covers(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let data = self.data.as_ref()?;
        let from = usize::try_from(pos.checked_sub(self.start)?).ok()?;
        let to = from + len as usize;
        (to <= data.len()).then(|| &data[from..to])
    }

    /// `len` bytes at `pos`, reading (at least `SCAN_CHUNK_BYTES`, never past `file_len`
    /// rounded up to the block size) when the window does not hold them.
    pub async fn load(
        &mut self,
        file: &DmaFile,
        pos: u64,
        len: u64,
        file_len: u64,
    ) -> io::Result<&[u8]> {
        if self.covers(pos, len).is_none() {
            let align = io_alignment(file);
            let start = align_down(pos, align);
            let want = align_up(pos + len, align).max(start + SCAN_CHUNK_BYTES);
            let read_len = want.min(align_up(file_len, align)) - start;
            self.data = Some(file.read_at_aligned(start, read_len as usize).await?);
            self.start = start;
        }
        self.covers(pos, len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read while scanning segment",
            )
        })
    }
}

/// Scan `seg` from `position` (where a batch with the segment's `next_offset` must start),
/// accounting every valid batch into the segment state.
pub async fn scan(
    seg: &Segment,
    file: &DmaFile,
    file_len: u64,
    position: u64,
    interval: u32,
    continuity: Continuity,
) -> io::Result<ScanEnd> {
    let mut window = Window::new();
    let mut pos = position;
    loop {
        let remaining = file_len.saturating_sub(pos);
        if remaining == 0 {
            return Ok(ScanEnd {
                end: pos,
                defect: None,
            });
        }
        let head = window
            .load(file, pos, remaining.min(HEADER_BYTES as u64), file_len)
            .await?;
        if head.iter().take(LOG_OVERHEAD_BYTES).all(|&b| b == 0) {
            return Ok(ScanEnd {
                end: pos,
                defect: None,
            });
        }
        if head.len() < HEADER_BYTES {
            return Ok(defect(pos, "torn batch header at end of file".into()));
        }
        let batch_length = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
        if batch_length < batch::BATCH_LENGTH_MIN_BYTES {
            return Ok(defect(pos, format!("bad batchLength {batch_length}")));
        }
        let total = LOG_OVERHEAD_BYTES as u64 + batch_length as u64;
        if total > remaining {
            return Ok(defect(
                pos,
                format!("torn batch: {total} bytes, {remaining} left in file"),
            ));
        }
        let bytes = window.load(file, pos, total, file_len).await?;
        let checked = match continuity {
            Continuity::Exact => batch::validate(bytes, usize::MAX),
            Continuity::ExactFirst | Continuity::Gaps => batch::validate_stored(bytes),
        };
        let header = match checked {
            Ok(h) => h,
            Err(e) => return Ok(defect(pos, e.to_string())),
        };
        let mut st = seg.state.borrow_mut();
        let exact = match continuity {
            Continuity::Exact => true,
            Continuity::ExactFirst => pos == position,
            Continuity::Gaps => false,
        };
        let continues = if exact {
            header.base_offset == st.next_offset
        } else {
            header.base_offset >= st.next_offset
        };
        if !continues || header.last_offset() - seg.base_offset > i64::from(u32::MAX) {
            return Ok(defect(
                pos,
                format!(
                    "non-contiguous baseOffset {} (expected {})",
                    header.base_offset, st.next_offset
                ),
            ));
        }
        st.account_batch(
            seg.base_offset,
            pos,
            &header,
            interval,
            header.max_timestamp,
        );
        pos += total;
    }
}

fn defect(end: u64, reason: String) -> ScanEnd {
    ScanEnd {
        end,
        defect: Some(reason),
    }
}

/// Open and recover every segment of `dir`; the last returned segment is the active one.
pub async fn recover_dir(dir: &Path, config: &LogConfig) -> Result<Vec<Rc<Segment>>, EngineError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::io("creating partition dir", dir, e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)
                .await
                .map_err(|e| EngineError::io("syncing data dir", parent, e))?;
        }
    }
    iopoll_probe::ensure_probed(dir)
        .await
        .map_err(|e| EngineError::io("probing the device's io_uring poll support", dir, e))?;
    let bases = list_segments(dir).map_err(|e| EngineError::io("listing partition dir", dir, e))?;
    let mut segments: Vec<Rc<Segment>> = Vec::with_capacity(bases.len().max(1));
    for (i, &base) in bases.iter().enumerate() {
        let path = log_path(dir, base);
        let is_last = i + 1 == bases.len();
        let seg = Rc::new(Segment::new(dir, base));
        let defect = recover_segment(&seg, dir, is_last, config)
            .await
            .map_err(|e| EngineError::io("recovering segment", &path, e))?;
        if let Some(prev) = segments.last() {
            // A gap is normal after compaction; an overlap means a segment was misnamed.
            let prev_next = prev.state.borrow().next_offset;
            if prev_next > base {
                tracing::warn!(dir = %dir.display(), prev_next, base, "segments overlap");
            }
        }
        segments.push(seg);
        if defect && !is_last {
            for &later in &bases[i + 1..] {
                let gone = Segment::new(dir, later);
                gone.delete_files().await.map_err(|e| {
                    EngineError::io("deleting segment after corruption", log_path(dir, later), e)
                })?;
                tracing::info!(dir = %dir.display(), base = later, "deleted segment after a corrupt one");
            }
            break;
        }
    }
    match segments.last() {
        Some(active) => {
            let mut st = active.state.borrow_mut();
            st.closed = false;
            st.sealed = false;
            st.finalized = false;
        }
        None => segments.push(Rc::new(Segment::new(dir, 0))),
    }
    Ok(segments)
}

/// Base offsets of the `*.log` files, sorted; leftover temp files are removed.
fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => {
                if let Some(base) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse().ok())
                {
                    bases.push(base);
                }
            }
            Some("tmp") | Some("cleaned") | Some("deleted") => {
                std::fs::remove_file(&path)?;
                tracing::debug!(path = %path.display(), "removed an unfinished file");
            }
            _ => {}
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Recover one segment; returns whether a defect was cut off.
async fn recover_segment(
    seg: &Segment,
    dir: &Path,
    is_last: bool,
    config: &LogConfig,
) -> io::Result<bool> {
    // The last segment is the one the group commit goes on writing.
    let durable_writes = is_last && config.flush == FlushPolicy::Durable;
    let file = Rc::new(open_log(&log_path(dir, seg.base_offset), durable_writes).await?);
    let file_len = file.file_size().await?;
    let interval = config.index_interval_bytes;
    let mut trusted = false;
    let mut end = None;
    if !is_last {
        if let Some((index, time_index)) = load_indexes(dir, seg.base_offset).await? {
            let (rel, pos) = index.last().expect("non-empty index");
            {
                let mut st = seg.state.borrow_mut();
                st.index = index;
                st.time_index = time_index;
                st.size = u64::from(pos);
                st.next_offset = seg.base_offset + i64::from(rel);
            }
            let scanned = scan(
                seg,
                &file,
                file_len,
                u64::from(pos),
                interval,
                Continuity::ExactFirst,
            )
            .await?;
            if scanned.defect.is_none() && scanned.end > u64::from(pos) {
                trusted = true;
                end = Some(scanned);
            } else {
                *seg.state.borrow_mut() = Segment::new(dir, seg.base_offset).state.into_inner();
            }
        }
    }
    let end = match end {
        Some(e) => e,
        None => {
            let continuity = if is_last {
                Continuity::Exact
            } else {
                Continuity::Gaps
            };
            scan(seg, &file, file_len, 0, interval, continuity).await?
        }
    };
    let align = io_alignment(&file);
    let mut allocated = file_len;
    if let Some(reason) = &end.defect {
        tracing::info!(
            dir = %dir.display(),
            base = seg.base_offset,
            position = end.end,
            discarded_bytes = file_len - end.end,
            reason = %reason,
            "recovery truncated segment"
        );
        zero_past_end(&file, end.end).await?;
        file.truncate(align_up(end.end, align)).await?;
        if is_last {
            file.pre_allocate(file_len, false).await?;
        } else {
            allocated = align_up(end.end, align);
        }
        file.fdatasync().await?;
    }
    let partial_block = read_partial_block(&file, end.end).await?;
    {
        let mut st = seg.state.borrow_mut();
        assert_eq!(st.size, end.end, "scan accounted every byte up to the end");
        st.written = st.size;
        st.written_offset = st.next_offset;
        st.allocated = allocated;
        st.partial_block = partial_block;
        st.closed = !is_last;
        st.sealed = !is_last;
        st.finalized = !is_last;
    }
    seg.set_file(file, durable_writes);
    if !is_last && !trusted {
        seg.persist_indexes().await?;
        tracing::info!(dir = %dir.display(), base = seg.base_offset, "rebuilt segment indexes");
    }
    Ok(end.defect.is_some())
}

async fn load_indexes(dir: &Path, base: i64) -> io::Result<Option<(OffsetIndex, TimeIndex)>> {
    let Some(index) = read_file(&index_path(dir, base)).await? else {
        return Ok(None);
    };
    let Some(time_index) = read_file(&time_index_path(dir, base)).await? else {
        return Ok(None);
    };
    Ok(
        match (OffsetIndex::decode(&index), TimeIndex::decode(&time_index)) {
            (Some(i), Some(t)) if !i.is_empty() => Some((i, t)),
            _ => None,
        },
    )
}

/// Rewrite the block holding `end` with zeros after `end`.
async fn zero_past_end(file: &DmaFile, end: u64) -> io::Result<()> {
    let align = io_alignment(file);
    let block = align_down(end, align);
    let keep = (end - block) as usize;
    let mut buf = file.alloc_dma_buffer(align as usize);
    buf.as_bytes_mut().fill(0);
    if keep > 0 {
        let old = file.read_at_aligned(block, align as usize).await?;
        buf.as_bytes_mut()[..keep].copy_from_slice(&old[..keep]);
    }
    file.write_at(buf, block).await?;
    Ok(())
}

/// The bytes of the last partial block, which the next O_DIRECT write must rewrite.
async fn read_partial_block(file: &DmaFile, end: u64) -> io::Result<Vec<u8>> {
    let align = io_alignment(file);
    let block = align_down(end, align);
    let keep = (end - block) as usize;
    if keep == 0 {
        return Ok(Vec::new());
    }
    let data = file.read_at_aligned(block, align as usize).await?;
    Ok(data[..keep].to_vec())
}
