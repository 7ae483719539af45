//! `PartitionLog`: one partition's log on one shard. Everything here runs on the shard's
//! glommio executor; state lives in one `RefCell<Inner>` that is never borrowed across an
//! `.await`.
//!
//! Write path, top to bottom:
//! 1. `append` validates every batch of the request (all-or-nothing): CRC and sizes, keys on
//!    compacted topics, idempotent producer sequences and epochs (`producer_state.rs`; a
//!    retried batch is answered with its original offsets and nothing is appended). It patches
//!    baseOffset/partitionLeaderEpoch in the request's own buffer, which the tail then keeps
//!    (and, on LogAppendTime topics, the timestamp, re-sealing the CRC), rolls the segment if
//!    size or age demand it (queueing a producer state snapshot), accounts each batch in its
//!    segment (indexes) and producer state and pushes it to the tail cache. No await: it
//!    returns the assigned offsets at once.
//! 2. It then makes sure a group-commit task exists (see `group_commit.rs`), which writes the
//!    dirty bytes and fdatasyncs them, batching every append that arrives meanwhile.
//! 3. The commit advances the written / durable offsets and wakes `wait_durable` and
//!    `wait_for_data_any` waiters.
//!
//! Read path: offsets at or above the tail's first batch are served from memory; older ones by
//! aligned DMA reads located through the sparse offset index. Compaction leaves offset gaps
//! (and may empty a segment's end): a read continues with the next offset that exists.

use crate::batch::{self, HEADER_BYTES};
use crate::config::{FlushPolicy, LogConfig, TimestampType, SEGMENT_JITTER_PERCENT_MAX};
use crate::error::{copy_io_error, AppendError, EngineError, ReadError};
use crate::log_start;
use crate::metrics::StorageMetrics;
use crate::producer_snapshot;
use crate::producer_state::{BatchMeta, ProducerStateMap, Staged, Verdict};
use crate::readahead::Readahead;
use crate::record_set::RecordSet;
use crate::records;
use crate::recovery;
use crate::recycle::{self, FreeFile};
use crate::segment::{align_down, align_up, io_alignment, Retired, Segment, SEGMENT_BYTES_MAX};
use crate::tail::{Tail, TailEntry};
use crate::tail_budget::TailBudget;
use crate::wait::WaitList;
use bytes::{Bytes, BytesMut};
use glommio::io::DmaFile;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// Smallest DMA read on the fetch path.
const READ_CHUNK_BYTES: u64 = 64 << 10;
/// Largest DMA read on the fetch path (a bigger first batch is still read whole).
const READ_BYTES_MAX: u64 = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// An idempotent retry of batches already in the log: nothing was appended and the offsets
    /// are the original ones (Kafka answers NONE with them).
    pub duplicate: bool,
    /// The timestamp the leader stamped on LogAppendTime topics; -1 for CreateTime.
    pub log_append_time_ms: i64,
}

#[derive(Clone, Debug)]
pub struct ReadOutcome {
    pub records: RecordSet,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

pub(crate) struct Inner {
    /// Ordered by base offset; the last one is the active segment.
    pub segments: Vec<Rc<Segment>>,
    pub tail: Tail,
    /// Log end offset: the next offset to assign.
    pub next_offset: i64,
    /// Every batch below this is written to its file.
    pub written_offset: i64,
    /// Every batch below this is written and fdatasync'ed.
    pub durable_offset: i64,
    /// The high watermark never goes below this: set when the flush policy becomes `Durable`, so records already
    /// visible under the old policy stay visible while they are made durable.
    pub visible_floor: i64,
    pub log_start: i64,
    pub flusher_running: bool,
    /// Skip the Interval delay (close is waiting).
    pub flush_now: bool,
    /// First write failure; the log refuses appends from then on.
    pub failure: Option<io::Error>,
    pub closed: bool,
    /// Group commits that wrote data (each one write, then an fdatasync unless the write was durable).
    pub commits: u64,
    pub producers: ProducerStateMap,
    /// A producer state snapshot (offset, encoded) for the group-commit task to write.
    pub pending_snapshot: Option<(i64, Vec<u8>)>,
    /// Offsets of the snapshot files on disk, ascending.
    pub snapshots: VecDeque<i64>,
    /// The log start offset the checkpoint file holds (or the first segment's base implies).
    pub log_start_persisted: i64,
    pub checkpoint_writing: bool,
    /// Retention or compaction is changing segment files (see `maintenance.rs`).
    pub maintenance: bool,
    /// Closed segments below this were compacted since open (the dirty-ratio trigger).
    pub cleaned_up_to: i64,
    /// Segments retention or DeleteRecords took out of the log, whose files `reap.rs` has yet to free.
    pub retired: Vec<Retired>,
    /// Deleted segments' files waiting to be written over by the next segments (`recycle.rs`), oldest first.
    pub free: VecDeque<FreeFile>,
    /// The task persisting the last rolled segment's indexes and applying retention after it (`recycle.rs`).
    pub after_roll: Option<glommio::Task<()>>,
}

pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    /// This partition's share of the segment size jitter, out of 2^16 (see [`PartitionLog::segment_bytes_max`]).
    pub(crate) segment_jitter_draw: u64,
    /// Read through [`PartitionLog::config`]; replaced whole by [`PartitionLog::set_config`].
    pub(crate) config: Cell<LogConfig>,
    pub(crate) me: Weak<PartitionLog>,
    pub(crate) inner: RefCell<Inner>,
    /// Woken when `durable_offset` advances or a write fails.
    pub(crate) durable_waiters: WaitList,
    /// Woken when the high watermark advances.
    pub(crate) data_waiters: WaitList,
    /// Woken to cut an Interval delay short.
    pub(crate) flush_wakeup: WaitList,
    /// Woken when the group-commit task exits.
    pub(crate) idle_waiters: WaitList,
    /// Woken when a log start checkpoint write ends.
    pub(crate) checkpoint_waiters: WaitList,
    /// The next window of a sequential disk reader, read in the background.
    pub(crate) readahead: RefCell<Readahead>,
    /// The shard's storage metrics (shared by its partitions, read by the metrics endpoint).
    pub(crate) metrics: Arc<StorageMetrics>,
    /// The shard's bound on all its tails (`tail_budget.rs`).
    pub(crate) tail_budget: Rc<TailBudget>,
    /// This partition's place in the tail budget's order of last commits, while its tail holds written bytes.
    pub(crate) tail_stamp: Cell<Option<u64>>,
}

impl PartitionLog {
    /// Open (creating the dir if missing) and recover; see `recovery.rs`. Then the log start
    /// checkpoint is applied and the producer state rebuilt: the newest snapshot not beyond the
    /// recovered end, plus the batches after it.
    pub async fn open(dir: &Path, config: LogConfig) -> Result<Rc<PartitionLog>, EngineError> {
        let metrics = Arc::<StorageMetrics>::default();
        Self::open_in_shard(dir, config, metrics.clone(), TailBudget::unlimited(metrics)).await
    }

    /// [`PartitionLog::open`] as one of a shard's partitions: the group commit's disk latencies go to the shard's
    /// `metrics`, and the tail counts against the shard's `tail_budget`.
    pub async fn open_in_shard(
        dir: &Path,
        config: LogConfig,
        metrics: Arc<StorageMetrics>,
        tail_budget: Rc<TailBudget>,
    ) -> Result<Rc<PartitionLog>, EngineError> {
        let segments = recovery::recover_dir(dir, &config).await?;
        let next_offset = segments
            .last()
            .expect("at least one segment")
            .state
            .borrow()
            .next_offset;
        let checkpoint = log_start::load(dir)
            .await
            .map_err(|e| EngineError::io("reading the log start checkpoint", dir, e))?;
        let first_base = segments[0].base_offset;
        let log_start = checkpoint.map_or(first_base, |c| c.max(first_base).min(next_offset));
        let (snapshot, snapshots) = producer_snapshot::load(dir, next_offset)
            .await
            .map_err(|e| EngineError::io("loading producer snapshots", dir, e))?;
        let (replay_from, producers) = snapshot.unwrap_or((log_start, ProducerStateMap::default()));
        let (free, retired) = recycle::adopt_free_files(dir)
            .map_err(|e| EngineError::io("listing recycled segment files", dir, e))?;
        let log = Rc::new_cyclic(|me| PartitionLog {
            dir: dir.to_path_buf(),
            segment_jitter_draw: jitter_draw(dir),
            config: Cell::new(config),
            me: me.clone(),
            inner: RefCell::new(Inner {
                segments,
                tail: Tail::new(tail_budget.clone()),
                next_offset,
                written_offset: next_offset,
                durable_offset: next_offset,
                visible_floor: 0,
                log_start,
                flusher_running: false,
                flush_now: false,
                failure: None,
                closed: false,
                commits: 0,
                producers,
                pending_snapshot: None,
                snapshots,
                log_start_persisted: checkpoint.unwrap_or(first_base),
                checkpoint_writing: false,
                maintenance: false,
                retired,
                free,
                after_roll: None,
                cleaned_up_to: i64::MIN,
            }),
            durable_waiters: WaitList::default(),
            data_waiters: WaitList::default(),
            flush_wakeup: WaitList::default(),
            idle_waiters: WaitList::default(),
            checkpoint_waiters: WaitList::default(),
            readahead: RefCell::default(),
            metrics,
            tail_budget,
            tail_stamp: Cell::new(None),
        });
        let replayed = log
            .replay_producer_state(replay_from.max(log_start))
            .await
            .map_err(|e| EngineError::io("replaying producer state", dir, e))?;
        tracing::info!(
            dir = %dir.display(),
            segments = log.inner.borrow().segments.len(),
            log_start,
            next_offset,
            producers = log.inner.borrow().producers.len(),
            replayed_batches = replayed,
            "partition log opened"
        );
        Ok(log)
    }

    /// Record every idempotent batch from `from` to the log end into the producer state.
    async fn replay_producer_state(&self, from: i64) -> io::Result<u64> {
        let mut offset = from;
        let mut batches = 0;
        while offset < self.high_watermark() {
            let chunk = self
                .read(offset, READ_BYTES_MAX as usize)
                .await
                .map_err(ReadError::into_io)?
                .records
                .into_contiguous();
            if chunk.is_empty() {
                break;
            }
            let mut pos = 0;
            let mut inner = self.inner.borrow_mut();
            while let Some(h) = batch::peek(&chunk[pos..]) {
                if h.is_idempotent() && h.base_offset >= from {
                    inner.producers.record(&h);
                }
                batches += 1;
                offset = h.last_offset() + 1;
                pos += h.total_bytes;
            }
        }
        Ok(batches)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`PartitionLog::append`] of a copy of `records` (callers that do not own a buffer).
    pub fn append_slice(
        &self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, AppendError> {
        self.append(BytesMut::from(records), leader_epoch, now_ms)
    }

    /// Validate, assign offsets, append to the tail and schedule a group commit. No await.
    /// `records` (the produce request's bytes, owned) are patched in place and kept by the tail: no copy.
    pub fn append(
        &self,
        mut records: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, AppendError> {
        {
            let inner = self.inner.borrow();
            if let Some(e) = &inner.failure {
                return Err(AppendError::Storage(copy_io_error(e)));
            }
            if inner.closed {
                return Err(AppendError::Closed);
            }
        }
        if records.is_empty() {
            return Err(AppendError::CorruptMessage(
                "no record batch in produce data".into(),
            ));
        }
        if let Some(original) = self.check_request(&records)? {
            return Ok(AppendOutcome {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
                log_start_offset: self.log_start_offset(),
                duplicate: true,
                log_append_time_ms: self.log_append_time(original.max_timestamp),
            });
        }
        let mut inner = self.inner.borrow_mut();
        let base_offset = inner.next_offset;
        let mut next = base_offset;
        let mut pos = 0;
        while pos < records.len() {
            let h = batch::peek(&records[pos..]).expect("validated above");
            batch::patch(&mut records[pos..], next, leader_epoch);
            if self.config().timestamp_type == TimestampType::LogAppendTime {
                batch::stamp_log_append_time(&mut records[pos..pos + h.total_bytes], now_ms);
            }
            next += i64::from(h.last_offset_delta) + 1;
            pos += h.total_bytes;
        }
        let chunk = records.freeze();
        let mut pos = 0;
        while pos < chunk.len() {
            let h = batch::peek(&chunk[pos..]).expect("validated above");
            let seg = self.segment_for(&mut inner, h.total_bytes as u64, h.last_offset(), now_ms);
            let position = {
                let mut st = seg.state.borrow_mut();
                let position = st.size;
                st.account_batch(
                    seg.base_offset,
                    position,
                    &h,
                    self.config().index_interval_bytes,
                    now_ms,
                );
                position
            };
            inner.tail.push(TailEntry {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                segment_base: seg.base_offset,
                position,
                chunk: chunk.clone(),
                start: pos,
                len: h.total_bytes,
            });
            if h.is_idempotent() {
                inner.producers.record(&h);
            }
            pos += h.total_bytes;
        }
        inner.next_offset = next;
        let log_start_offset = inner.log_start;
        drop(inner);
        if self.config().flush != FlushPolicy::Durable {
            self.data_waiters.wake_all();
        }
        self.schedule_flush();
        Ok(AppendOutcome {
            base_offset,
            last_offset: next - 1,
            log_start_offset,
            duplicate: false,
            log_append_time_ms: self.log_append_time(now_ms),
        })
    }

    fn log_append_time(&self, stamped_ms: i64) -> i64 {
        match self.config().timestamp_type {
            TimestampType::LogAppendTime => stamped_ms,
            TimestampType::CreateTime => -1,
        }
    }

    /// Validate every batch of a produce request. `Some(original)` when it retries batches
    /// already appended (Kafka: the first duplicate found answers for the whole request).
    fn check_request(&self, records: &[u8]) -> Result<Option<BatchMeta>, AppendError> {
        let inner = self.inner.borrow();
        // The producers' previous batches in this request: allocated only for multi-batch
        // idempotent requests.
        let mut staged: Vec<Staged> = Vec::new();
        let mut duplicate = None;
        let mut pos = 0;
        while pos < records.len() {
            let h = batch::validate(&records[pos..], self.config().max_batch_bytes)?;
            if self.config().cleanup_policy.compacts() {
                records::require_keys(&records[pos..], &h)?;
            }
            pos += h.total_bytes;
            if !h.is_idempotent() {
                continue;
            }
            let previous = staged
                .iter()
                .rev()
                .find(|s| s.producer_id == h.producer_id)
                .copied();
            match inner.producers.check(&h, previous)? {
                Verdict::Duplicate(original) => {
                    duplicate.get_or_insert(original);
                }
                Verdict::Append if pos < records.len() => staged.push(Staged {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    last_seq: h.last_sequence(),
                }),
                Verdict::Append => {}
            }
        }
        Ok(duplicate)
    }

    /// The active segment for a batch, rolling first if size or age demand it.
    fn segment_for(
        &self,
        inner: &mut Inner,
        batch_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Rc<Segment> {
        let active = inner.segments.last().expect("at least one segment").clone();
        let roll = {
            let st = active.state.borrow();
            let size_max = self.segment_bytes_max();
            let too_big = st.size + batch_bytes > size_max;
            let too_old = st
                .created_ms
                .is_some_and(|c| now_ms.saturating_sub(c) >= self.config().segment_ms as i64);
            let offsets_full = last_offset - active.base_offset > i64::from(u32::MAX);
            st.size > 0 && (too_big || too_old || offsets_full)
        };
        if !roll {
            return active;
        }
        let base = active.state.borrow().next_offset;
        active.state.borrow_mut().closed = true;
        tracing::debug!(dir = %self.dir.display(), base, "rolling segment");
        let seg = Rc::new(Segment::new(&self.dir, base));
        inner.segments.push(seg.clone());
        inner.pending_snapshot = Some((base, self.snapshot_producers(inner, base, now_ms)));
        seg
    }

    /// Expire idle producers and encode the state, which covers every batch below `offset`.
    fn snapshot_producers(&self, inner: &mut Inner, offset: i64, now_ms: i64) -> Vec<u8> {
        let expired = inner
            .producers
            .expire(now_ms, self.config().producer_id_expiration_ms);
        if expired > 0 {
            tracing::debug!(dir = %self.dir.display(), expired, "expired idle producers");
        }
        producer_snapshot::encode(&inner.producers, offset)
    }

    /// Resolve when everything up to `last_offset` is durable under the flush policy.
    pub async fn wait_durable(&self, last_offset: i64) -> Result<(), io::Error> {
        if self.config().flush != FlushPolicy::Durable {
            return Ok(());
        }
        self.durable_waiters
            .wait_until(|| {
                let inner = self.inner.borrow();
                inner.durable_offset > last_offset
                    || inner.failure.is_some()
                    || self.config().flush != FlushPolicy::Durable
            })
            .await;
        let inner = self.inner.borrow();
        match &inner.failure {
            Some(e) if inner.durable_offset <= last_offset => Err(copy_io_error(e)),
            _ => Ok(()),
        }
    }

    /// Resolve when any of the logs has `high_watermark() > offset`: a fetch's long-poll over its partitions on
    /// this shard, one future for all of them.
    pub async fn wait_for_data_any(waits: &[(Rc<PartitionLog>, i64)]) {
        let conds = waits
            .iter()
            .map(|(log, offset)| {
                let log: &PartitionLog = log;
                (&log.data_waiters, move || log.high_watermark() > *offset)
            })
            .collect();
        WaitList::wait_until_any(conds).await
    }

    /// Bytes of record batches on disk and in memory, over all segments (DescribeLogDirs).
    pub fn size_bytes(&self) -> u64 {
        Self::segments_bytes(&self.inner.borrow())
    }

    pub(crate) fn segments_bytes(inner: &Inner) -> u64 {
        inner.segments.iter().map(|s| s.state.borrow().size).sum()
    }

    /// The partition's settings now (a copy, so no change lands in the middle of an append).
    pub fn config(&self) -> LogConfig {
        self.config.get()
    }

    /// The size this partition rolls at: `segment_bytes` less its share of the jitter. Partitions of one topic
    /// fill at the same rate; without the jitter they would all roll, allocate and sync their directories in the
    /// same moment, every time (as Redpanda's `log_segment_size_jitter_percent`; Kafka jitters only age rolls).
    /// The share comes from the directory name, so it is the same across restarts.
    pub(crate) fn segment_bytes_max(&self) -> u64 {
        let config = self.config();
        let segment_bytes = config.segment_bytes.min(SEGMENT_BYTES_MAX);
        let percent = u64::from(
            config
                .segment_jitter_percent
                .min(SEGMENT_JITTER_PERCENT_MAX),
        );
        segment_bytes - segment_bytes * percent / 100 * self.segment_jitter_draw / (1 << 16)
    }

    /// Applies changed topic settings at once (AlterConfigs): the next append, roll, retention or compaction pass
    /// uses them. A flush policy change keeps the high watermark from moving back and wakes everyone waiting under
    /// the old policy.
    pub fn set_config(&self, config: LogConfig) {
        let old = self.config.replace(config);
        if old.flush == config.flush {
            return;
        }
        if config.flush == FlushPolicy::Durable {
            let mut inner = self.inner.borrow_mut();
            inner.visible_floor = inner.next_offset;
        }
        self.durable_waiters.wake_all();
        self.data_waiters.wake_all();
        self.flush_wakeup.wake_all();
        self.schedule_flush();
    }

    pub fn high_watermark(&self) -> i64 {
        let inner = self.inner.borrow();
        match self.config().flush {
            FlushPolicy::Durable => inner.durable_offset.max(inner.visible_floor),
            _ => inner.next_offset,
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.borrow().next_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.borrow().log_start
    }

    /// How many group commits wrote data (metrics, tests).
    pub fn commit_count(&self) -> u64 {
        self.inner.borrow().commits
    }

    /// What a read can answer without the disk: an offset out of range, nothing past `offset` yet, or records still
    /// in the tail cache. `None` when the records are on disk only (`read` goes on there). A consumer tailing many
    /// partitions is answered here every time, with no task per partition.
    pub fn read_in_memory(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Option<Result<ReadOutcome, ReadError>> {
        let (hw, log_start) = match self.read_bounds(offset) {
            Ok(bounds) => bounds,
            Err(err) => return Some(Err(err)),
        };
        let outcome = |records| ReadOutcome {
            records,
            high_watermark: hw,
            log_start_offset: log_start,
        };
        if offset == hw {
            return Some(Ok(outcome(RecordSet::default())));
        }
        let cached = self.inner.borrow().tail.read(offset, hw, max_bytes);
        cached.map(|records| Ok(outcome(records)))
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (first batch whole).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, ReadError> {
        if let Some(answer) = self.read_in_memory(offset, max_bytes) {
            return answer;
        }
        // Nothing was awaited since `read_in_memory`: the same bounds, and `offset` is below the high watermark.
        let (hw, log_start) = self.read_bounds(offset)?;
        let outcome = |records| ReadOutcome {
            records,
            high_watermark: hw,
            log_start_offset: log_start,
        };
        let mut offset = offset;
        loop {
            let (file, start, limit, next_base) = self.locate(offset)?;
            let records: RecordSet =
                read_from_file(&file, &self.readahead, start, limit, offset, hw, max_bytes)
                    .await?
                    .into();
            match next_base {
                // Compaction emptied the rest of this segment: go on with the next one.
                Some(next) if records.is_empty() && next < hw => {
                    offset = next;
                    let cached = self.inner.borrow().tail.read(offset, hw, max_bytes);
                    if let Some(records) = cached {
                        return Ok(outcome(records));
                    }
                }
                _ => return Ok(outcome(records)),
            }
        }
    }

    /// `(high watermark, log start)` if `offset` may be read, else OFFSET_OUT_OF_RANGE.
    fn read_bounds(&self, offset: i64) -> Result<(i64, i64), ReadError> {
        let hw = self.high_watermark();
        let log_start = self.log_start_offset();
        if offset < log_start || offset > hw {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start,
                hw,
            });
        }
        Ok((hw, log_start))
    }

    /// File, index-located scan start and written length of the segment holding `offset`
    /// (the first segment if compaction emptied the log's start), and the next segment's base.
    fn locate(&self, offset: i64) -> Result<(Rc<DmaFile>, u64, u64, Option<i64>), ReadError> {
        let inner = self.inner.borrow();
        let i = inner
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        let seg = &inner.segments[i];
        let st = seg.state.borrow();
        let file = seg.file().ok_or_else(|| {
            ReadError::Storage(io::Error::other("segment file missing (log closed?)"))
        })?;
        let relative = u32::try_from((offset - seg.base_offset).max(0)).unwrap_or(u32::MAX);
        let (_, position) = st.index.lookup(relative);
        let next_base = inner.segments.get(i + 1).map(|s| s.base_offset);
        Ok((file, u64::from(position), st.written, next_base))
    }

    /// First offset whose batch maxTimestamp >= `ts`, with that timestamp.
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, ReadError> {
        let hw = self.high_watermark();
        let inner = self.inner.borrow();
        for seg in &inner.segments {
            let st = seg.state.borrow();
            if let Some((found_ts, relative)) = st.time_index.lookup(ts) {
                let offset = (seg.base_offset + i64::from(relative)).max(inner.log_start);
                return Ok((offset < hw).then_some((offset, found_ts)));
            }
        }
        Ok(None)
    }

    /// Flush everything, write indexes, close files. Appends fail afterwards.
    pub async fn close(&self) -> Result<(), io::Error> {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.closed {
                return Ok(());
            }
            inner.closed = true;
            inner.flush_now = true;
        }
        self.readahead.borrow_mut().clear();
        self.flush_wakeup.wake_all();
        self.schedule_flush();
        self.idle_waiters
            .wait_until(|| !self.inner.borrow().flusher_running)
            .await;
        self.after_roll_done().await;
        if let Some(e) = &self.inner.borrow().failure {
            return Err(copy_io_error(e));
        }
        self.write_final_snapshot().await;
        self.tail_budget.forget(self);
        let segments = self.inner.borrow().segments.clone();
        let active = segments.last().expect("at least one segment");
        if let Some(file) = active.file() {
            if self.config().flush != FlushPolicy::Durable {
                file.fdatasync().await?;
            }
            active.persist_indexes().await?;
        }
        for seg in &segments {
            if let Some(file) = seg.take_file() {
                file.close_rc().await?;
            }
        }
        // Closing is no time to pace: retired files are freed at once.
        self.reap_retired(&|| true).await?;
        tracing::info!(dir = %self.dir.display(), "partition log closed");
        Ok(())
    }
}

impl PartitionLog {
    /// Close: the producer state at the log end, so the next open replays nothing. A failure
    /// only costs a longer replay at the next open.
    async fn write_final_snapshot(&self) {
        let now_ms = wall_clock_ms();
        let (offset, bytes, mut on_disk) = {
            let mut inner = self.inner.borrow_mut();
            let offset = inner.next_offset;
            let bytes = self.snapshot_producers(&mut inner, offset, now_ms);
            (offset, bytes, std::mem::take(&mut inner.snapshots))
        };
        let written = producer_snapshot::write(&self.dir, offset, &bytes, &mut on_disk).await;
        self.inner.borrow_mut().snapshots = on_disk;
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing the producer snapshot at close failed");
        }
    }
}

/// Milliseconds since the Unix epoch (close has no caller-supplied clock).
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whole batches from the one containing `offset`, read with aligned DMA reads starting at the
/// index position `start` and never past the written length `limit`.
async fn read_from_file(
    file: &Rc<DmaFile>,
    readahead: &RefCell<Readahead>,
    start: u64,
    limit: u64,
    offset: i64,
    end_offset: i64,
    max_bytes: usize,
) -> Result<Bytes, ReadError> {
    let corrupt = |what: &str| {
        ReadError::Storage(io::Error::new(io::ErrorKind::InvalidData, what.to_string()))
    };
    let align = io_alignment(file);
    let mut pos = start;
    let mut need = (max_bytes as u64).clamp(READ_CHUNK_BYTES, READ_BYTES_MAX);
    while pos < limit {
        let buf_start = align_down(pos, align);
        let len = align_up(pos + need, align).min(align_up(limit, align)) - buf_start;
        let ahead = readahead.borrow_mut().take(file, buf_start);
        let read_ahead = match ahead {
            // A failed read-ahead is only a missed optimisation: read again below.
            Some(window) => window.finish().await.ok(),
            None => None,
        };
        let data = match read_ahead {
            Some(data) => data,
            None => file
                .read_at_aligned(buf_start, len as usize)
                .await
                .map_err(|e| ReadError::Storage(e.into()))?,
        };
        let avail_end = (buf_start + data.len() as u64).min(limit);
        let at = |p: u64| &data[(p - buf_start) as usize..(avail_end - buf_start) as usize];
        while pos + HEADER_BYTES as u64 <= avail_end {
            let h = batch::peek(at(pos))
                .ok_or_else(|| corrupt("bad batch header in written segment data"))?;
            if h.last_offset() < offset {
                pos += h.total_bytes as u64;
                continue;
            }
            if pos + h.total_bytes as u64 > avail_end {
                if pos + h.total_bytes as u64 > limit {
                    return Err(corrupt("batch extends past the written segment data"));
                }
                need = h.total_bytes as u64;
                break;
            }
            let first = pos;
            let mut end = pos + h.total_bytes as u64;
            while end + HEADER_BYTES as u64 <= avail_end {
                let Some(next) = batch::peek(at(end)) else {
                    break;
                };
                let next_end = end + next.total_bytes as u64;
                if next.base_offset >= end_offset
                    || next_end > avail_end
                    || (next_end - first) as usize > max_bytes
                {
                    break;
                }
                end = next_end;
            }
            readahead.borrow_mut().after_read(
                file,
                buf_start,
                align_down(end, align),
                len,
                align_up(limit, align),
            );
            let from = (first - buf_start) as usize;
            return Ok(Bytes::copy_from_slice(
                &data[from..from + (end - first) as usize],
            ));
        }
        if pos + HEADER_BYTES as u64 > avail_end && avail_end == limit {
            break;
        }
    }
    Ok(Bytes::new())
}

/// A partition's share of the segment size jitter, out of 2^16: from its directory's name (`<topic>-<partition>`)
/// alone, so neither a restart nor a moved data dir changes it.
fn jitter_draw(dir: &Path) -> u64 {
    let name = dir.file_name().unwrap_or(dir.as_os_str());
    u64::from(crc32c::crc32c(name.as_bytes()) >> 16)
}
