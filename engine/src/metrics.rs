//! Operator metrics the engine records: a lock-free latency histogram (also used by `net` for request latency)
//! and the storage figures of one shard, the write and fdatasync latency of the group commit.
//!
//! One `StorageMetrics` per shard, written only by that shard's logs (relaxed atomics: no lock, one writer) and
//! read by the metrics endpoint's thread. Recording costs a few atomic adds per group commit, not per record.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Histogram bucket upper bounds grow by 2x from 16 µs; the last finite bound is ~67 s.
const LATENCY_BUCKETS: usize = 23;
const LATENCY_BUCKET_FIRST_US: u64 = 16;

#[derive(Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    overflow: AtomicU64,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    pub fn record(&self, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        let index = (us.max(1).div_ceil(LATENCY_BUCKET_FIRST_US))
            .next_power_of_two()
            .trailing_zeros() as usize;
        match self.buckets.get(index) {
            Some(bucket) => bucket.fetch_add(1, Relaxed),
            None => self.overflow.fetch_add(1, Relaxed),
        };
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum::<u64>() + self.overflow.load(Relaxed)
    }

    fn bound_seconds(index: usize) -> f64 {
        (LATENCY_BUCKET_FIRST_US << index) as f64 / 1e6
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of the Prometheus text format for `name{labels}`.
    pub fn write_prometheus(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let le = Self::bound_seconds(b);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// The group commit's disk figures of one shard, summed over its partitions.
#[derive(Default)]
pub struct StorageMetrics {
    /// One O_DIRECT write of a group commit (submit to completion). On a segment opened for durable writes (the
    /// default flush policy) the write includes its sync.
    pub write_latency: LatencyHistogram,
    /// One fdatasync the group commit issued separately: per commit on segments not opened for durable writes, and
    /// once when a segment is sealed.
    pub fdatasync_latency: LatencyHistogram,
    /// One group commit, from its start until its data is durable (written, under flush policy never). A produce with
    /// acks=all waits for one per partition it touches, so the tail of this histogram is the floor of the produce
    /// latency tail.
    pub commit_latency: LatencyHistogram,
    /// Bytes the group commit wrote, including the rewritten partial last block.
    pub written_bytes_total: AtomicU64,
    /// Group-commit buffers taken from the heap because the shard's I/O arena was full or off
    /// (`shard_io_memory_bytes`): such a write reaches the device in 4 KiB-page segments and is slower.
    pub write_buffers_outside_arena_total: AtomicU64,
    /// New segments written over a deleted segment's file instead of a new one (`recycle.rs`).
    pub segments_recycled_total: AtomicU64,
    /// Deleted partitions whose files are not freed yet (`doomed.rs`): their space is still taken.
    pub deleted_partitions_pending: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_rendering() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(20));
        h.record(Duration::from_secs(1000));
        assert_eq!(h.buckets[0].load(Relaxed), 1, "10 µs <= 16 µs");
        assert_eq!(h.buckets[1].load(Relaxed), 1, "20 µs <= 32 µs");
        assert_eq!(h.overflow.load(Relaxed), 1);
        assert_eq!(h.count(), 3);
        let mut text = String::new();
        h.write_prometheus(&mut text, "x_seconds", "shard=\"0\"");
        assert!(
            text.contains("x_seconds_bucket{shard=\"0\",le=\"0.000016\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{shard=\"0\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{shard=\"0\"} 3\n"), "{text}");
    }
}
