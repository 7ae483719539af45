//! In-memory tail of the log: every batch not yet written to its segment file, plus the most
//! recent written ones up to `tail_cache_bytes`, so fetches of fresh data never touch the disk
//! and the group commit copies dirty bytes from here into its DMA buffer.
//!
//! Each produce request is copied once into one buffer (`chunk`); its batches are slices of it.
//! A read is answered with a zero-copy slice of one chunk unless that chunk holds less than
//! [`ZERO_COPY_RUN_MIN`] bytes of the answer. Copying a large read out of many chunks into a
//! new buffer made a catch-up from a large tail slower than reading the disk (bench/EXPERIMENTS.md,
//! "Serving the catch-up from memory").

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

/// Bytes of one chunk that a read returns by reference even when the next chunk would continue
/// the answer: the client's next fetch costs less than copying (a fetch of a partition is up to
/// 1 MiB, and the producers' batches of one request are usually 16 KiB to 1 MiB).
pub const ZERO_COPY_RUN_MIN: usize = 64 << 10;

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
    /// The answer is a slice of one produce request's buffer whenever that buffer holds the whole
    /// answer or at least [`ZERO_COPY_RUN_MIN`] bytes of it; in the second case the read is short
    /// and the client fetches the rest next. Only a run of small requests is copied.
    pub fn read(&self, offset: i64, end_offset: i64, max_bytes: usize) -> Option<Bytes> {
        if self.first_offset()? > offset {
            return None;
        }
        let first = self.find(offset);
        let mut last = first;
        let mut total = 0usize;
        // Bytes of the answer that lie back to back in the first entry's chunk.
        let mut run = 0usize;
        for e in self.entries.range(first..) {
            if e.base_offset >= end_offset || (total > 0 && total + e.len > max_bytes) {
                break;
            }
            if run == total && (last == first || self.entries[last - 1].continued_by(e)) {
                run += e.len;
            }
            total += e.len;
            last += 1;
        }
        if last == first {
            return Some(Bytes::new());
        }
        let head = &self.entries[first];
        if run == total || run >= ZERO_COPY_RUN_MIN {
            return Some(head.chunk.slice(head.start..head.start + run));
        }
        let mut out = BytesMut::with_capacity(total);
        for e in self.entries.range(first..last) {
            out.extend_from_slice(e.bytes());
        }
        Some(out.freeze())
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
            r.as_ptr(),
            a[10..].as_ptr(),
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
    fn a_large_run_in_one_request_is_answered_by_reference_and_short() {
        let run = ZERO_COPY_RUN_MIN;
        let a = Bytes::from(vec![1u8; run]);
        let b = Bytes::from(vec![2u8; 100]);
        let c = Bytes::from(vec![3u8; 100]);
        let mut t = tail_without_shard_bound();
        t.push(entry(&b, 0, 0, 100));
        t.push(entry(&a, 1, 0, run / 2));
        t.push(entry(&a, 2, run / 2, run / 2));
        t.push(entry(&c, 3, 0, 100));
        let from_large = t.read(1, 4, 1 << 20).unwrap();
        assert_eq!(
            from_large.len(),
            run,
            "short read: the next chunk is left to the next fetch"
        );
        assert_eq!(from_large.as_ptr(), a.as_ptr(), "not copied");
        let from_small = t.read(0, 4, 1 << 20).unwrap();
        assert_eq!(
            from_small.len(),
            100 + run + 100,
            "a small first run is copied with the rest"
        );
        assert_eq!(&from_small[..100], &b[..]);
        assert_eq!(&from_small[100..100 + run], &a[..]);
        assert_eq!(&from_small[100 + run..], &c[..]);
        assert!(
            t.read(4, 4, 100).unwrap().is_empty(),
            "nothing at the end offset"
        );
    }
}
