//! Operator metrics the engine records: a lock-free latency histogram (also used by `net` for request latency)
//! and the storage figures of one shard, the write and fdatasync latency of the group commit.
//!
//! One `StorageMetrics` per shard, written only by that shard's logs (relaxed atomics: no lock, one writer) and
//! read by the metrics endpoint's thread. Recording costs a few atomic adds per group commit, not per record.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Histogram bucket upper bounds: 16 µs, then each doubling split into 4 equal steps (20, 24, 28, 32, 40, 48, ...
/// µs), so a percentile read off the buckets is at most 25 % above the true one; the last finite bound is ~67 s.
/// Plain doublings were too coarse to tell a 4.1 ms commit tail from an 8 ms one.
const LATENCY_STEPS_PER_DOUBLING: usize = 4;
const LATENCY_BUCKET_FIRST_US: u64 = 16;
const LATENCY_DOUBLINGS: usize = 22;
const LATENCY_BUCKETS: usize = 1 + LATENCY_DOUBLINGS * LATENCY_STEPS_PER_DOUBLING;

pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    overflow: AtomicU64,
    sum_us: AtomicU64,
}

// By hand: `Default` is derived for arrays of at most 32 elements.
impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        match self.buckets.get(Self::bucket_index(us)) {
            Some(bucket) => bucket.fetch_add(1, Relaxed),
            None => self.overflow.fetch_add(1, Relaxed),
        };
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum::<u64>() + self.overflow.load(Relaxed)
    }

    /// The first bucket whose upper bound is at least `us` (an index past the last bucket means overflow).
    fn bucket_index(us: u64) -> usize {
        if us <= LATENCY_BUCKET_FIRST_US {
            return 0;
        }
        // `us` lies in (2^doubling_top / 2, 2^doubling_top]; that doubling's steps are 2^doubling_top / 8 apart.
        let doubling_top = u64::BITS - (us - 1).leading_zeros();
        let step_shift = doubling_top - 3;
        // A rounded-up division by the step, as a shift (this runs once per request).
        let step = ((us - 1) >> step_shift) as usize + 1 - LATENCY_STEPS_PER_DOUBLING;
        let doubling = (doubling_top - 1 - LATENCY_BUCKET_FIRST_US.trailing_zeros()) as usize;
        doubling * LATENCY_STEPS_PER_DOUBLING + step
    }

    /// Upper bound of bucket `index` in µs.
    fn bound_us(index: usize) -> u64 {
        if index == 0 {
            return LATENCY_BUCKET_FIRST_US;
        }
        let (doubling, step) = (
            (index - 1) / LATENCY_STEPS_PER_DOUBLING,
            (index - 1) % LATENCY_STEPS_PER_DOUBLING + 1,
        );
        let base = LATENCY_BUCKET_FIRST_US << doubling;
        base + base * step as u64 / LATENCY_STEPS_PER_DOUBLING as u64
    }

    fn bound_seconds(index: usize) -> f64 {
        Self::bound_us(index) as f64 / 1e6
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
    /// Commits written as two writes, the rewritten partial block apart from the rest, because the rest reaches
    /// preallocated blocks never written (`group_commit::write_commit`); a commit over a recycled file's written
    /// blocks goes as one.
    pub commits_split_total: AtomicU64,
    /// Deleted partitions whose files are not freed yet (`doomed.rs`): their space is still taken.
    pub deleted_partitions_pending: AtomicU64,
    /// Bytes the shard's partitions keep in their tails (unwritten batches and recent written ones), bounded by
    /// `tail_cache_shard_bytes` plus what is not written yet (`tail_budget.rs`).
    pub tail_cache_bytes: AtomicU64,
    /// Written bytes the tails dropped because the shard was over `tail_cache_shard_bytes`: reads of them go to disk.
    pub tail_cache_shed_bytes_total: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_step_a_quarter_of_each_doubling() {
        let bounds: Vec<u64> = (0..10).map(LatencyHistogram::bound_us).collect();
        assert_eq!(bounds, [16, 20, 24, 28, 32, 40, 48, 56, 64, 80]);
        assert_eq!(
            LatencyHistogram::bound_us(LATENCY_BUCKETS - 1),
            16 << LATENCY_DOUBLINGS,
            "~67 s"
        );
        // Every latency lands in the first bucket whose bound holds it.
        for us in 0..200_000u64 {
            let i = LatencyHistogram::bucket_index(us);
            assert!(us <= LatencyHistogram::bound_us(i), "{us} µs in bucket {i}");
            if i > 0 {
                assert!(
                    us > LatencyHistogram::bound_us(i - 1),
                    "{us} µs in bucket {i}"
                );
            }
        }
        assert_eq!(
            LatencyHistogram::bucket_index((16 << LATENCY_DOUBLINGS) + 1),
            LATENCY_BUCKETS,
            "past the last bound: overflow"
        );
        assert_eq!(LatencyHistogram::bucket_index(3000), 30, "3 ms <= 3.072 ms");
        assert_eq!(LatencyHistogram::bound_us(30), 3072);
    }

    #[test]
    fn histogram_buckets_and_rendering() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(20));
        h.record(Duration::from_secs(1000));
        assert_eq!(h.buckets[0].load(Relaxed), 1, "10 µs <= 16 µs");
        assert_eq!(h.buckets[1].load(Relaxed), 1, "20 µs <= 20 µs");
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
