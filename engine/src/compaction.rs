//! Compaction (`cleanup.policy` compact or compact,delete): rewrite closed segments keeping,
//! for every key, only the record with the highest offset in the whole log.
//!
//! A pass, in order:
//! 1. Trigger: the cleanable segments are the closed, finalized ones (never the active one)
//!    whose successor's file exists (so a crash can never leave a compacted segment as the
//!    last one, which recovery checks strictly). The pass runs only when the bytes appended
//!    since the last pass are at least `min_cleanable_dirty_ratio` of them (everything counts
//!    as dirty after open). It holds the maintenance flag, so retention waits for the next round.
//! 2. Key map: every record from the log start to the high watermark (active segment
//!    included) is read through the normal read path; the map holds each key's highest offset.
//! 3. Each segment is rewritten into `<base>.log.cleaned`: a record stays if no later record
//!    has its key, except tombstones (null value) older than `delete_retention_ms` (by record
//!    timestamp), which go; keyless records stay. A batch keeps its baseOffset,
//!    lastOffsetDelta, sequence fields and the offset deltas of the kept records, so offsets
//!    never move; only the record count, length and CRC change (compressed batches are
//!    decompressed, filtered and recompressed with the same codec). A batch with no record
//!    left is dropped (the last batch of the log is in the active segment, never here).
//!    Batches whose records cannot be parsed, and control batches, are kept whole.
//! 4. Swap: fdatasync the cleaned file, delete the old index files (a crash must not pair an
//!    old index with the new log), rename the cleaned file over `<base>.log`, fsync the
//!    directory, write the new indexes, then replace the segment in memory in one step.
//!    Readers that located the old segment keep reading the old file (its descriptor stays
//!    open until they finish; then `reap.rs` frees its blocks in steps). A crash before the
//!    rename leaves the old segment and a `.cleaned` file that recovery deletes; after it, the
//!    new segment. A segment left empty is retired instead, like a retention victim.
//!
//! The pass yields to the executor between batches (`yield_if_needed`) and never holds a
//! `RefCell` borrow across an await, so produce and fetch on the shard keep running.
//! Memory: the key map holds every distinct key once (key bytes + ~40 bytes).

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::compression::{self, CODEC_NONE};
use crate::error::ReadError;
use crate::log::PartitionLog;
use crate::records::{records, records_area};
use crate::recovery::Window;
use crate::segment::{
    align_down, align_up, cleaned_path, io_alignment, log_path, open_rw, remove_if_exists,
    sync_dir, Retired, Segment,
};
use glommio::io::DmaFile;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

/// Bytes of the cleaned segment buffered before one aligned write.
const CLEAN_WRITE_BYTES: usize = 1 << 20;
/// Bytes per read while building the key map.
const KEY_SCAN_READ_BYTES: usize = 1 << 20;

/// What one `compact` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments rewritten (or deleted because nothing in them survived).
    pub segments_cleaned: usize,
    pub batches_removed: u64,
    pub records_removed: u64,
    /// Sizes of the examined segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

type KeyMap = HashMap<Box<[u8]>, i64>;

/// Reused buffers for rebuilding batches.
#[derive(Default)]
struct Scratch {
    records: Vec<u8>,
    compressed: Vec<u8>,
    batch: Vec<u8>,
}

enum Filtered {
    /// Every record survives: copy the batch as it is.
    Whole,
    /// Some survive: the rebuilt batch is in `Scratch::batch`.
    Rebuilt,
    Dropped,
}

impl PartitionLog {
    /// One compaction pass over the closed segments (see the module doc). Returns at once with
    /// empty stats when the policy does not compact, the dirty ratio is below the trigger, or
    /// retention holds the segment files.
    pub async fn compact(&self, now_ms: i64) -> io::Result<CompactionStats> {
        let mut stats = CompactionStats::default();
        if !self.config().cleanup_policy.compacts() {
            return Ok(stats);
        }
        let Some(_guard) = self.begin_maintenance() else {
            return Ok(stats);
        };
        let candidates = self.cleanable_segments();
        let Some(last) = candidates.last() else {
            return Ok(stats);
        };
        let cleaned_up_to = last.state.borrow().next_offset;
        let latest = self.latest_offsets_by_key().await?;
        let horizon = now_ms.saturating_sub(self.config().delete_retention_ms);
        let mut scratch = Scratch::default();
        for seg in &candidates {
            if self.inner.borrow().closed {
                return Ok(stats);
            }
            self.clean_segment(seg, &latest, horizon, &mut scratch, &mut stats)
                .await?;
        }
        self.inner.borrow_mut().cleaned_up_to = cleaned_up_to;
        tracing::info!(
            dir = %self.dir.display(),
            segments = stats.segments_cleaned,
            records_removed = stats.records_removed,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            "compacted"
        );
        Ok(stats)
    }

    /// Closed, finalized segments whose successor's file exists; empty below the dirty ratio.
    fn cleanable_segments(&self) -> Vec<Rc<Segment>> {
        let inner = self.inner.borrow();
        let mut out = Vec::new();
        for pair in inner.segments.windows(2) {
            if !pair[0].state.borrow().finalized || pair[1].file().is_none() {
                break;
            }
            out.push(pair[0].clone());
        }
        fn size(s: &Rc<Segment>) -> u64 {
            s.state.borrow().size
        }
        let total: u64 = out.iter().map(size).sum();
        let dirty: u64 = out
            .iter()
            .filter(|s| s.base_offset >= inner.cleaned_up_to)
            .map(size)
            .sum();
        if total == 0 || (dirty as f64) < self.config().min_cleanable_dirty_ratio * total as f64 {
            out.clear();
        }
        out
    }

    /// Every key's highest offset, from the log start to the high watermark.
    async fn latest_offsets_by_key(&self) -> io::Result<KeyMap> {
        let mut latest = KeyMap::new();
        let mut offset = self.log_start_offset();
        loop {
            let chunk = match self.read(offset, KEY_SCAN_READ_BYTES).await {
                Ok(r) => r.records.into_contiguous(),
                // DeleteRecords moved the start meanwhile.
                Err(ReadError::OffsetOutOfRange { log_start, .. }) if offset < log_start => {
                    offset = log_start;
                    continue;
                }
                Err(e) => return Err(e.into_io()),
            };
            if chunk.is_empty() {
                return Ok(latest);
            }
            let mut pos = 0;
            while let Some(h) = batch::peek(&chunk[pos..]) {
                note_keys(&chunk[pos..pos + h.total_bytes], &h, &mut latest);
                offset = h.last_offset() + 1;
                pos += h.total_bytes;
            }
            glommio::yield_if_needed().await;
        }
    }

    /// Rewrite one segment (module doc, steps 3 and 4).
    async fn clean_segment(
        &self,
        seg: &Rc<Segment>,
        latest: &KeyMap,
        horizon: i64,
        scratch: &mut Scratch,
        stats: &mut CompactionStats,
    ) -> io::Result<()> {
        let file = seg
            .file()
            .ok_or_else(|| io::Error::other("segment file missing (log closed?)"))?;
        let (size, next_offset) = {
            let st = seg.state.borrow();
            (st.size, st.next_offset)
        };
        let path = cleaned_path(&self.dir, seg.base_offset);
        let out = DmaFile::create(&path).await?;
        let cleaned = Rc::new(Segment::new(&self.dir, seg.base_offset));
        let mut writer = AlignedWriter::new(&out);
        let mut window = Window::new();
        let mut changed = false;
        let mut pos = 0;
        while pos < size {
            let head = window.load(&file, pos, HEADER_BYTES as u64, size).await?;
            let h = batch::peek(head).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad batch header in a closed segment",
                )
            })?;
            let bytes = window.load(&file, pos, h.total_bytes as u64, size).await?;
            pos += h.total_bytes as u64;
            let kept: &[u8] = match filter_batch(bytes, &h, latest, horizon, scratch) {
                Filtered::Whole => bytes,
                Filtered::Rebuilt => &scratch.batch,
                Filtered::Dropped => {
                    changed = true;
                    stats.batches_removed += 1;
                    stats.records_removed += h.record_count as u64;
                    continue;
                }
            };
            let kh = batch::peek(kept).expect("a whole or rebuilt batch");
            changed |= kh.record_count != h.record_count;
            stats.records_removed += (h.record_count - kh.record_count) as u64;
            cleaned.state.borrow_mut().account_batch(
                seg.base_offset,
                writer.len(),
                &kh,
                self.config().index_interval_bytes,
                kh.max_timestamp,
            );
            writer.write(kept).await?;
            glommio::yield_if_needed().await;
        }
        let new_size = writer.finish().await?;
        out.close().await?;
        stats.bytes_before += size;
        stats.bytes_after += new_size;
        if !changed || self.inner.borrow().closed {
            return remove_if_exists(&path).await;
        }
        stats.segments_cleaned += 1;
        if new_size == 0 {
            self.replace_segment(seg, None);
            let retired = seg.retire().await?;
            self.inner.borrow_mut().retired.push(retired);
            remove_if_exists(&path).await?;
            tracing::debug!(dir = %self.dir.display(), base = seg.base_offset, "compaction emptied a segment");
            return Ok(());
        }
        seg.delete_indexes().await?;
        let final_path = log_path(&self.dir, seg.base_offset);
        glommio::io::rename(&path, &final_path).await?;
        sync_dir(&self.dir).await?;
        let new_file = Rc::new(open_rw(&final_path).await?);
        {
            let mut st = cleaned.state.borrow_mut();
            st.next_offset = st.next_offset.max(next_offset);
            st.written = st.size;
            st.written_offset = st.next_offset;
            st.allocated = align_up(st.size, io_alignment(&new_file));
            st.closed = true;
            st.sealed = true;
            st.finalized = true;
        }
        // Sealed: the group commit never writes to it again.
        cleaned.set_file(new_file, false);
        cleaned.persist_indexes().await?;
        self.replace_segment(seg, Some(cleaned));
        if let Some(old) = seg.take_file() {
            // Renamed over, the old log has no name left; its blocks are freed in steps like a retired segment's
            // (reap.rs), after any reader still holding it.
            let bytes = seg.state.borrow().allocated;
            self.inner.borrow_mut().retired.push(Retired {
                path: None,
                file: Some(old),
                bytes,
            });
        }
        tracing::debug!(dir = %self.dir.display(), base = seg.base_offset, size, new_size, "compacted segment");
        Ok(())
    }

    /// Swap (or remove) a segment in memory, in one step readers cannot observe half-done.
    fn replace_segment(&self, old: &Rc<Segment>, new: Option<Rc<Segment>>) {
        let mut inner = self.inner.borrow_mut();
        let i = inner
            .segments
            .iter()
            .position(|s| Rc::ptr_eq(s, old))
            .expect("the maintenance flag keeps segments in place during compaction");
        let end = old.state.borrow().next_offset;
        match new {
            Some(seg) => inner.segments[i] = seg,
            None => {
                inner.segments.remove(i);
            }
        }
        // The tail must not serve the uncompacted copies (they are written: finalized segment).
        inner.tail.drop_before(end);
    }
}

/// Record the keys of one batch in the key map (unparseable batches are kept whole later, so
/// skipping their keys is safe).
fn note_keys(bytes: &[u8], h: &BatchHeader, latest: &mut KeyMap) {
    if h.is_control() {
        return;
    }
    let Ok(area) = records_area(bytes, h) else {
        return;
    };
    for record in records(&area, h.record_count) {
        let Ok(record) = record else {
            return;
        };
        let Some(key) = record.key else {
            continue;
        };
        let offset = h.base_offset + i64::from(record.offset_delta);
        match latest.get_mut(key) {
            Some(o) => *o = (*o).max(offset),
            None => {
                latest.insert(key.into(), offset);
            }
        }
    }
}

fn filter_batch(
    bytes: &[u8],
    h: &BatchHeader,
    latest: &KeyMap,
    horizon: i64,
    scratch: &mut Scratch,
) -> Filtered {
    if h.is_control() {
        return Filtered::Whole;
    }
    let area = match records_area(bytes, h) {
        Ok(area) => area,
        Err(e) => {
            tracing::warn!(base_offset = h.base_offset, error = %e, "compaction keeps an undecodable batch whole");
            return Filtered::Whole;
        }
    };
    let Scratch {
        records: kept_records,
        compressed,
        batch: rebuilt,
    } = scratch;
    kept_records.clear();
    let mut kept = 0;
    for record in records(&area, h.record_count) {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(base_offset = h.base_offset, error = %e, "compaction keeps an unparseable batch whole");
                return Filtered::Whole;
            }
        };
        let offset = h.base_offset + i64::from(record.offset_delta);
        let superseded = record
            .key
            .and_then(|k| latest.get(k))
            .is_some_and(|&newest| newest > offset);
        let expired_tombstone = record.key.is_some()
            && record.value_is_null
            && h.record_timestamp(record.timestamp_delta) < horizon;
        if !superseded && !expired_tombstone {
            kept_records.extend_from_slice(record.bytes);
            kept += 1;
        }
    }
    if kept == h.record_count {
        return Filtered::Whole;
    }
    if kept == 0 {
        return Filtered::Dropped;
    }
    let payload: &[u8] = match h.compression() {
        CODEC_NONE => kept_records,
        codec => {
            compressed.clear();
            if let Err(e) = compression::compress(codec, kept_records, compressed) {
                tracing::warn!(base_offset = h.base_offset, error = %e, "compaction keeps a batch whole: recompression failed");
                return Filtered::Whole;
            }
            compressed
        }
    };
    rebuilt.clear();
    batch::rebuild(&bytes[..HEADER_BYTES], kept, payload, rebuilt);
    Filtered::Rebuilt
}

/// Sequential O_DIRECT writer for a new file: buffers, writes whole blocks, pads the end with
/// zeros to the block size (as a finalized segment is) and fdatasyncs.
struct AlignedWriter<'a> {
    file: &'a DmaFile,
    pending: Vec<u8>,
    file_pos: u64,
    len: u64,
}

impl<'a> AlignedWriter<'a> {
    fn new(file: &'a DmaFile) -> Self {
        AlignedWriter {
            file,
            pending: Vec::with_capacity(CLEAN_WRITE_BYTES + (64 << 10)),
            file_pos: 0,
            len: 0,
        }
    }

    /// Logical bytes written so far.
    fn len(&self) -> u64 {
        self.len
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if self.pending.len() >= CLEAN_WRITE_BYTES {
            let whole = align_down(self.pending.len() as u64, io_alignment(self.file));
            self.write_out(whole as usize).await?;
        }
        Ok(())
    }

    async fn write_out(&mut self, n: usize) -> io::Result<()> {
        let mut buf = self.file.alloc_dma_buffer(n);
        buf.as_bytes_mut().copy_from_slice(&self.pending[..n]);
        let written = self.file.write_at(buf, self.file_pos).await?;
        if written != n {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {written} of {n} bytes"),
            ));
        }
        self.file_pos += n as u64;
        self.pending.drain(..n);
        Ok(())
    }

    /// Pad, write the rest, fdatasync; returns the logical length.
    async fn finish(mut self) -> io::Result<u64> {
        let padded = align_up(self.pending.len() as u64, io_alignment(self.file)) as usize;
        self.pending.resize(padded, 0);
        if padded > 0 {
            self.write_out(padded).await?;
        }
        self.file.fdatasync().await?;
        Ok(self.len)
    }
}
