//! Group commit: at most one write + fdatasync in flight per partition.
//!
//! The loop, in order:
//! 1. `append` calls `schedule_flush`; if no commit task runs and there is dirty data, one is
//!    spawned. No task, no timer exists for an idle partition.
//! 2. Interval policy only: the task first waits `interval_ms` (or until `close` cuts it short).
//! 3. The task takes the oldest segment with dirty bytes and copies them, starting with the
//!    partial last block already on disk (O_DIRECT writes whole blocks), from the tail into one
//!    aligned DMA buffer of at most `flush_bytes_max`.
//! 4. It grows the preallocation if needed, writes the buffer, fdatasyncs (unless policy Never, or the segment's
//!    file was opened for durable writes, whose write is already the sync: `segment::open_log`)
//!    and, for a rolled segment now fully written and synced, hands it to a task of its own that
//!    trims the file, persists its indexes and the producer snapshot the roll queued, and applies
//!    retention (`recycle.rs`), so the new segment's commits never wait for them.
//! 5. It advances `written_offset` / `durable_offset`, evicts written tail bytes over budget and
//!    wakes `wait_durable` and `wait_for_data_any` waiters. Every append that arrived during steps
//!    3–4 is covered by the next iteration: one fdatasync for all of them.
//! 6. When nothing is dirty the task exits. A write error is
//!    recorded: the log then refuses appends and fails durability waiters
//!    (KAFKA_STORAGE_ERROR).

use crate::batch::LOG_OVERHEAD_BYTES;
use crate::config::FlushPolicy;
use crate::log::PartitionLog;
use crate::segment::{align_down, align_up, io_alignment, preallocation_target, Segment};
use crate::stream_copy;
use glommio::io::{DmaBuffer, DmaFile};
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Largest single write of the group commit (unless one batch is larger). A power of two: the shard's I/O arena
/// (`shard_io_memory_bytes`) hands out power-of-two blocks, so a buffer just over it would take a block twice its size.
pub const FLUSH_BYTES_MAX: usize = 4 << 20;

/// Where the dirty bytes of one segment, copied into an aligned buffer, go and what they cover.
struct FlushJob {
    /// Aligned file position of the buffer.
    file_pos: u64,
    /// Logical end of the data in the buffer (segment position).
    end_pos: u64,
    /// Offset after the last batch in the buffer.
    end_offset: i64,
    /// Bytes of the new partial last block.
    partial_block: Vec<u8>,
    /// The buffer starts with the old partial last block, which is already on disk, and goes on into blocks never
    /// written: it goes as two writes (`write_commit`).
    split: bool,
}

impl PartitionLog {
    /// Spawn the commit task if there is dirty data and none is running.
    pub(crate) fn schedule_flush(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            let idle = self.first_dirty_segment_in(&inner).is_none();
            if inner.flusher_running || idle {
                return;
            }
            inner.flusher_running = true;
        }
        let log = self.me.upgrade().expect("called through a live Rc");
        glommio::spawn_local(run(log)).detach();
    }

    fn first_dirty_segment_in(&self, inner: &crate::log::Inner) -> Option<Rc<Segment>> {
        let mut found = None;
        for seg in inner.segments.iter().rev() {
            let st = seg.state.borrow();
            if st.written < st.size || (st.closed && !st.sealed) {
                found = Some(seg.clone());
            } else {
                break;
            }
        }
        found
    }

    fn first_dirty_segment(&self) -> Option<Rc<Segment>> {
        self.first_dirty_segment_in(&self.inner.borrow())
    }

    /// Copy the dirty bytes of `seg` from the tail into an aligned buffer.
    fn build_job(&self, seg: &Segment, file: &DmaFile) -> Option<(DmaBuffer, FlushJob)> {
        let inner = self.inner.borrow();
        let st = seg.state.borrow();
        if st.written == st.size {
            return None;
        }
        let align = io_alignment(file);
        let file_pos = align_down(st.written, align);
        assert_eq!(
            st.partial_block.len() as u64,
            st.written - file_pos,
            "partial block tracks written"
        );
        // The buffer also holds the partial first block, the padding of the last and, at most, one more block.
        let data_max = FLUSH_BYTES_MAX as u64 - 3 * align;
        let first = inner.tail.find(st.written_offset);
        let mut end_pos = st.written;
        let mut end_offset = st.written_offset;
        let mut last = first;
        while let Some(e) = inner.tail.get(last) {
            let len = e.len as u64;
            if e.segment_base != seg.base_offset
                || (end_pos > st.written && end_pos + len - st.written > data_max)
            {
                break;
            }
            assert_eq!(
                e.position, end_pos,
                "dirty tail entries are contiguous in the segment"
            );
            end_pos += len;
            end_offset = e.last_offset + 1;
            last += 1;
        }
        assert!(
            end_pos > st.written,
            "unwritten segment bytes must be in the tail"
        );
        let mut buf_end = align_up(end_pos, align);
        if buf_end - end_pos < LOG_OVERHEAD_BYTES as u64 {
            // A recycled file holds old bytes past the data: recovery needs the 12 zero bytes of a clean end.
            buf_end += align;
        }
        let mut buf = file.alloc_dma_buffer((buf_end - file_pos) as usize);
        if !buf.is_from_io_memory() {
            self.metrics
                .write_buffers_outside_arena_total
                .fetch_add(1, Relaxed);
        }
        let dst = buf.as_bytes_mut();
        let mut at = st.partial_block.len();
        dst[..at].copy_from_slice(&st.partial_block);
        for i in first..last {
            let src = inner.tail.get(i).expect("index in range").bytes();
            stream_copy::copy_for_device(&mut dst[at..at + src.len()], src);
            at += src.len();
        }
        stream_copy::publish();
        dst[at..].fill(0);
        let block = (align_down(end_pos, align) - file_pos) as usize;
        let partial_block = dst[block..at].to_vec();
        let split = !st.partial_block.is_empty() && buf_end > st.overwrites_below;
        Some((
            buf,
            FlushJob {
                file_pos,
                end_pos,
                end_offset,
                partial_block,
                split,
            },
        ))
    }

    /// Write, sync and (for a rolled segment) finalize one segment.
    async fn flush_segment(&self, seg: &Rc<Segment>) -> io::Result<()> {
        let commit_started = Instant::now();
        let file = self.segment_file(seg).await?;
        let job = match self.build_job(seg, &file) {
            Some((buf, job)) => {
                let len = buf.len();
                self.ensure_allocated(seg, &file, job.file_pos + len as u64)
                    .await?;
                let started = Instant::now();
                if job.split {
                    self.metrics.commits_split_total.fetch_add(1, Relaxed);
                }
                let written = write_commit(&file, buf, job.file_pos, job.split).await?;
                self.metrics.write_latency.record(started.elapsed());
                self.metrics
                    .written_bytes_total
                    .fetch_add(written as u64, Relaxed);
                if written != len {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write: {written} of {len} bytes"),
                    ));
                }
                Some(job)
            }
            None => None,
        };
        let finalize = {
            let st = seg.state.borrow();
            let written = job.as_ref().map_or(st.written, |j| j.end_pos);
            st.closed && !st.sealed && written == st.size
        };
        // A segment opened for durable writes has its data on stable storage once the write completed; only sealing
        // it still takes an fdatasync (cheap then: nothing is dirty).
        let wrote_durably = job.is_some() && seg.durable_writes();
        let sync = finalize
            || (job.is_some() && !wrote_durably && self.config().flush != FlushPolicy::Never);
        if sync {
            let started = Instant::now();
            file.fdatasync().await?;
            self.metrics.fdatasync_latency.record(started.elapsed());
        }
        if let Some(job) = job {
            self.metrics.commit_latency.record(commit_started.elapsed());
            self.inner.borrow_mut().commits += 1;
            self.complete(seg, job, sync || wrote_durably);
        }
        if finalize {
            seg.state.borrow_mut().sealed = true;
            // Trimming, its indexes, the producer snapshot and retention run off the commit path.
            self.spawn_after_roll(seg);
        }
        Ok(())
    }

    /// Grow the preallocation in large steps so writes never extend the file.
    async fn ensure_allocated(&self, seg: &Segment, file: &DmaFile, end: u64) -> io::Result<()> {
        let allocated = seg.state.borrow().allocated;
        if end <= allocated {
            return Ok(());
        }
        let align = io_alignment(file);
        let cap = align_up(self.segment_bytes_max(), align);
        let target = align_up(preallocation_target(allocated, end, cap), align);
        file.pre_allocate(target, false).await?;
        seg.state.borrow_mut().allocated = target;
        Ok(())
    }

    /// Publish a finished write: offsets, tail eviction, waiters.
    fn complete(&self, seg: &Segment, job: FlushJob, synced: bool) {
        {
            let mut st = seg.state.borrow_mut();
            assert!(
                job.end_pos > st.written && job.end_offset > st.written_offset,
                "commits move forward"
            );
            st.written = job.end_pos;
            st.written_offset = job.end_offset;
            st.partial_block = job.partial_block;
        }
        let mut inner = self.inner.borrow_mut();
        inner.written_offset = job.end_offset;
        if synced {
            inner.durable_offset = inner.durable_offset.max(job.end_offset);
        }
        let written = inner.written_offset;
        inner.tail.evict(self.config().tail_cache_bytes, written);
        drop(inner);
        self.tail_budget.committed(self);
        if synced && self.config().flush == FlushPolicy::Durable {
            self.durable_waiters.wake_all();
            self.data_waiters.wake_all();
        }
    }

    /// Whether the tail holds batches already in their segment file (what the shard's tail budget may shed).
    pub(crate) fn tail_holds_written(&self) -> bool {
        let inner = self.inner.borrow();
        inner.tail.holds_written(inner.written_offset)
    }

    /// Drops written batches from the front of the tail until `bytes` are freed or none is left; returns the bytes
    /// dropped. Readers of those offsets go to the segment file.
    pub(crate) fn shed_written_tail(&self, bytes: usize) -> usize {
        let mut inner = self.inner.borrow_mut();
        let keep = inner.tail.bytes().saturating_sub(bytes);
        let written = inner.written_offset;
        inner.tail.evict(keep, written)
    }

    fn fail(&self, e: io::Error) {
        tracing::error!(dir = %self.dir.display(), error = %e, "partition write failed; refusing appends");
        self.inner.borrow_mut().failure = Some(e);
        self.durable_waiters.wake_all();
    }
}

/// Write one commit's buffer at `pos`. With `split` (the buffer starts with the old partial last block, already
/// written on disk, and goes on into blocks that are preallocated and still unwritten, as in a fresh segment) it goes
/// as two writes at once: that block, and the rest. ext4 will not start one direct write that spans both kinds without
/// blocking, so io_uring would hand every such commit to an io-wq worker thread; each half alone starts inline
/// (bench/EXPERIMENTS.md, "Commit writes split at the rewritten block"). Over a recycled file's written blocks one
/// write starts inline too, and saves the disk a second durable write ("One write per commit over recycled files").
async fn write_commit(
    file: &DmaFile,
    mut buf: DmaBuffer,
    pos: u64,
    split: bool,
) -> io::Result<usize> {
    let block = io_alignment(file) as usize;
    if !split || buf.len() <= block {
        return Ok(file.write_at(buf, pos).await?);
    }
    let mut head = file.alloc_dma_buffer(block);
    head.as_bytes_mut()
        .copy_from_slice(&buf.as_bytes()[..block]);
    buf.trim_front(block);
    let (head_written, rest_written) = futures_lite::future::zip(
        file.write_at(head, pos),
        file.write_at(buf, pos + block as u64),
    )
    .await;
    let head_written = head_written?;
    let rest_written = rest_written?;
    if head_written != block {
        // A short first half leaves a gap before the second: report it as a short write of the whole.
        return Ok(head_written);
    }
    Ok(head_written + rest_written)
}

async fn run(log: Rc<PartitionLog>) {
    if let FlushPolicy::Interval { interval_ms } = log.config().flush {
        let early = log.flush_wakeup.wait_until(|| log.inner.borrow().flush_now);
        futures_lite::future::or(
            glommio::timer::sleep(Duration::from_millis(interval_ms)),
            early,
        )
        .await;
    }
    loop {
        if log.inner.borrow().failure.is_some() {
            break;
        }
        let Some(seg) = log.first_dirty_segment() else {
            break;
        };
        if let Err(e) = log.flush_segment(&seg).await {
            log.fail(e);
            break;
        }
    }
    log.inner.borrow_mut().flusher_running = false;
    log.idle_waiters.wake_all();
}

#[cfg(test)]
mod tests {
    use super::write_commit;
    use crate::segment::{io_alignment, open_log};
    use crate::tests::{run, temp_dir};

    /// A commit that rewrites the partial last block goes as two writes; the file must hold exactly the buffer.
    #[test]
    fn a_commit_split_at_the_rewritten_block_lands_whole() {
        run(|| async {
            let dir = temp_dir();
            let path = dir.path().join("split.log");
            let file = open_log(&path, true).await.unwrap();
            let block = io_alignment(&file) as usize;
            file.pre_allocate(8 * block as u64, false).await.unwrap();
            let mut first = file.alloc_dma_buffer(block);
            first.as_bytes_mut().fill(0xAA);
            assert_eq!(write_commit(&file, first, 0, false).await.unwrap(), block);

            let mut commit = file.alloc_dma_buffer(3 * block);
            for (i, b) in commit.as_bytes_mut().iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            let expected = commit.as_bytes().to_vec();
            let written = write_commit(&file, commit, 0, true).await.unwrap();
            assert_eq!(written, 3 * block, "both halves counted");

            let back = std::fs::read(&path).unwrap();
            assert_eq!(back.len(), 8 * block, "the preallocation stays");
            assert_eq!(&back[..3 * block], &expected[..], "head and rest in place");
            assert!(
                back[3 * block..].iter().all(|&b| b == 0),
                "nothing past the commit"
            );
            file.close().await.unwrap();
        });
    }
}
