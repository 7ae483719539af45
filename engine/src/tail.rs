//! In-memory tail of the log: every batch not yet written to its segment file, plus the most
//! recent written ones up to `tail_cache_bytes`, so fetches of fresh data never touch the disk
//! and the group commit copies dirty bytes from here into its DMA buffer.
//!
//! Each produce request is copied once into one buffer (`chunk`); its batches are slices of it.
//! A read is answered with the batches' runs in place (a [`RecordSet`] of slices of the chunks),
//! and only runs smaller than [`REFER_RUN_MIN`] are copied, together, into one new piece. Copying
//! a large read out of many chunks made a catch-up from a large tail slower than reading the disk,
//! and cutting the read short at a chunk's end left tailing consumers a standing lag
//! (bench/EXPERIMENTS.md, "Serving the catch-up from memory" and "Short reads by reference").

use crate::record_set::RecordSet;
use crate::tail_budget::TailBudget;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::rc::Rc;

pub struct TailEntry {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Base offset of the segment that holds this batch.
    pub segment_base: i64,
    /// Byte position of the batch inside its segment file.
    pub position: u64,
    /// The whole produce request buffer this batch is a slice of.
    pub chunk: Bytes,
    pub start: usize,
    pub len: usize,
}

impl TailEntry {
    pub fn bytes(&self) -> &[u8] {
        &self.chunk[self.start..self.start + self.len]
    }

    /// Whether `next` starts in the same buffer right where this entry ends.
    fn continued_by(&self, next: &TailEntry) -> bool {
        self.chunk.as_ptr() == next.chunk.as_ptr() && self.start + self.len == next.start
    }
}

/// Runs of an answer (batches back to back in one chunk) at least this large are answered by
/// reference; smaller ones are copied, because sending a piece costs an iovec and a frame split.
/// Equal to the Fetch encoder's own threshold for copying a record set into the frame.
pub const REFER_RUN_MIN: usize = 4096;

pub struct Tail {
    entries: VecDeque<TailEntry>,
    bytes: usize,
    /// The shard's count of tail bytes, kept in step with `bytes`.
    budget: Rc<TailBudget>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.budget.sub(self.bytes);
    }
}

impl Tail {
    pub fn new(budget: Rc<TailBudget>) -> Tail {
        Tail {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether any batch below `written_offset` (in its segment file) is still held.
    pub fn holds_written(&self, written_offset: i64) -> bool {
        self.entries
            .front()
            .is_some_and(|e| e.last_offset < written_offset)
    }

    pub fn push(&mut self, entry: TailEntry) {
        if let Some(last) = self.entries.back() {
            assert_eq!(
                entry.base_offset,
                last.last_offset + 1,
                "tail offsets contiguous"
            );
        }
        self.bytes += entry.len;
        self.budget.add(entry.len);
        self.entries.push_back(entry);
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.entries.front().map(|e| e.base_offset)
    }

    /// Index of the entry containing `offset` (or the first one after it).
    pub fn find(&self, offset: i64) -> usize {
        self.entries.partition_point(|e| e.last_offset < offset)
    }

    pub fn get(&self, i: usize) -> Option<&TailEntry> {
        self.entries.get(i)
    }

    /// Drop written entries from the front while the cache is over budget; returns the bytes dropped.
    /// `written_offset`: every batch below it is in its segment file.
    pub fn evict(&mut self, budget_bytes: usize, written_offset: i64) -> usize {
        let before = self.bytes;
        while self.bytes > budget_bytes && self.holds_written(written_offset) {
            self.pop_front();
        }
        before - self.bytes
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.len;
            self.budget.sub(e.len);
        }
    }

    /// Drop entries below `log_start` (retention deleted their segments).
    pub fn drop_before(&mut self, log_start: i64) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.last_offset < log_start)
        {
            self.pop_front();
        }
    }

    /// Whole batches from the one containing `offset`, stopping before `end_offset` and at
    /// `max_bytes` (the first batch always whole). `None` if the tail does not reach back to
    /// `offset`.
    ///
    /// Runs of at least [`REFER_RUN_MIN`] bytes are pieces of the answer by reference; the smaller
    /// runs between them are copied into one piece each time.
    pub fn read(&self, offset: i64, end_offset: i64, max_bytes: usize) -> Option<RecordSet> {
        if self.first_offset()? > offset {
            return None;
        }
        let first = self.find(offset);
        let mut end = first;
        let mut total = 0usize;
        let mut one_run = true;
        for e in self.entries.range(first..) {
            if e.base_offset >= end_offset || (total > 0 && total + e.len > max_bytes) {
                break;
            }
            one_run &= end == first || self.entries[end - 1].continued_by(e);
            total += e.len;
            end += 1;
        }
        if end == first {
            return Some(RecordSet::default());
        }
        let head = &self.entries[first];
        if one_run {
            // However small, one run needs no copy here (the Fetch encoder copies small ones into its frame).
            return Some(head.chunk.slice(head.start..head.start + total).into());
        }
        let mut answer = RecordSet::default();
        let mut copied = BytesMut::new();
        let (mut run_first, mut run_len) = (head, 0);
        for (i, e) in self.entries.range(first..end).enumerate() {
            if i > 0 && !self.entries[first + i - 1].continued_by(e) {
                Self::add_run(&mut answer, &mut copied, run_first, run_len);
                (run_first, run_len) = (e, 0);
            }
            run_len += e.len;
        }
        Self::add_run(&mut answer, &mut copied, run_first, run_len);
        answer.push(copied.split().freeze());
        Some(answer)
    }

    /// Adds the run of `len` bytes that starts with `first`: by reference if it is large (after the small runs
    /// copied before it), else to `copied`.
    fn add_run(answer: &mut RecordSet, copied: &mut BytesMut, first: &TailEntry, len: usize) {
        let bytes = first.chunk.slice(first.start..first.start + len);
        if len >= REFER_RUN_MIN {
            answer.push(copied.split().freeze());
            answer.push(bytes);
        } else {
            copied.extend_from_slice(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tail_without_shard_bound() -> Tail {
        Tail::new(TailBudget::unlimited(Arc::default()))
    }

    fn entry(chunk: &Bytes, base: i64, start: usize, len: usize) -> TailEntry {
        TailEntry {
            base_offset: base,
            last_offset: base,
            segment_base: 0,
            position: start as u64,
            chunk: chunk.clone(),
            start,
            len,
        }
    }

    #[test]
    fn reads_whole_entries_and_evicts_only_written() {
        let a = Bytes::from(vec![1u8; 30]);
        let b = Bytes::from(vec![2u8; 10]);
        let mut t = tail_without_shard_bound();
        t.push(entry(&a, 0, 0, 10));
        t.push(entry(&a, 1, 10, 20));
        t.push(entry(&b, 2, 0, 10));
        let r = t.read(1, 3, 25).unwrap();
        assert_eq!(r.len(), 20);
        assert_eq!(
            r.as_one_piece().map(|p| p.as_ptr()),
            Some(a[10..].as_ptr()),
            "single chunk read is zero-copy"
        );
        assert_eq!(
            t.read(0, 3, 5).unwrap().len(),
            10,
            "first batch always whole"
        );
        assert_eq!(t.read(0, 3, 1000).unwrap().len(), 40);
        assert_eq!(t.read(0, 1, 1000).unwrap().len(), 10, "stops at end offset");
        t.evict(0, 1);
        assert_eq!(t.first_offset(), Some(1));
        assert!(t.read(0, 3, 100).is_none());
    }

    #[test]
    fn large_runs_by_reference_small_runs_copied_together() {
        let run = REFER_RUN_MIN;
        let a = Bytes::from(vec![1u8; run]);
        let b = Bytes::from(vec![2u8; 100]);
        let c = Bytes::from(vec![3u8; 100]);
        let d = Bytes::from(vec![4u8; run]);
        let mut t = tail_without_shard_bound();
        t.push(entry(&b, 0, 0, 100));
        t.push(entry(&a, 1, 0, run / 2));
        t.push(entry(&a, 2, run / 2, run / 2));
        t.push(entry(&c, 3, 0, 50));
        t.push(entry(&c, 4, 50, 50));
        t.push(entry(&b, 5, 0, 100)); // another request's buffer at the same place: a run of its own
        t.push(entry(&d, 6, 0, run));
        let whole = t.read(0, 7, 1 << 20).unwrap();
        let pieces: Vec<&Bytes> = whole.pieces().collect();
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![100, run, 200, run],
            "the whole answer, not cut short at a chunk's end"
        );
        assert_eq!(pieces[1].as_ptr(), a.as_ptr(), "a large run is referred to");
        assert_eq!(pieces[3].as_ptr(), d.as_ptr(), "a large run is referred to");
        let mut want = b.to_vec();
        want.extend_from_slice(&a);
        want.extend_from_slice(&c);
        want.extend_from_slice(&b);
        want.extend_from_slice(&d);
        assert_eq!(whole.clone().into_contiguous(), want);
        let limited = t.read(1, 7, run + 150).unwrap();
        assert_eq!(limited.len(), run + 100, "whole batches within max_bytes");
        assert_eq!(
            t.read(1, 3, 1 << 20)
                .unwrap()
                .as_one_piece()
                .map(|p| p.as_ptr()),
            Some(a.as_ptr()),
            "one run: one piece, not copied"
        );
        assert!(
            t.read(7, 7, 100).unwrap().is_empty(),
            "nothing at the end offset"
        );
    }
}
